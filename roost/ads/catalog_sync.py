"""Replicas on one ads database each hold the catalog in memory: follow the edits the others make.

A decision reads what changes with every request (status, budget, spend) from
the database, so a pause or a budget change holds everywhere at once; what a
replica keeps in memory is the targeting, bids and creatives (the catalog and
its creative index). A campaign created or retargeted through one replica's
admin API reaches the others through this poller: every ``every_s`` seconds it
asks the database which campaigns' ``updated_at`` changed and refreshes those.

It compares (id, updated_at) pairs it has seen, over a window reaching
``overlap_s`` before the newest it knows, so an edit stamped by a replica whose
clock is a little behind is not missed.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.ads.service import AdService

log = logging.getLogger(__name__)


class CatalogSync:
    def __init__(self, service: AdService, every_s: float = 2.0, overlap_s: float = 300.0):
        self.service, self.every_s, self.overlap_s = service, every_s, overlap_s
        self.seen: dict[str, float] = dict(service.store.campaign_versions())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ads-catalog-sync", daemon=True)
        self._thread.start()

    def poll_once(self) -> list[str]:
        """Refresh the campaigns created or edited since the last poll; returns their ids."""
        since = max(self.seen.values(), default=0.0) - self.overlap_s
        changed = [(cid, ts) for cid, ts in self.service.store.campaign_versions(since) if self.seen.get(cid) != ts]
        if changed:
            self.service.refresh([cid for cid, _ in changed])
            self.seen.update(changed)
        return [cid for cid, _ in changed]

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.poll_once()
            except Exception:  # a database that is away for a moment: try again at the next tick
                log.warning("ads catalog sync failed; retrying in %.0f s", self.every_s, exc_info=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

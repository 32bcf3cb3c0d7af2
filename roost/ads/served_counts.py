"""Each campaign's impressions, clicks and expected clicks so far, for the pCTR's historical-CTR feature and
the campaign's click propensity (:func:`roost.ads.pctr.campaign_propensity`), as an array over the catalog's rows.

Why an array: every candidate of a decision (a hundred and more at 100k campaigns) needs its counts, and one
gather by catalog row costs less than a dict lookup per candidate. The counts are kept by campaign id too, so
a new catalog version (campaigns added or edited: :class:`roost.ads.catalog.CampaignArrays` is swapped whole)
gets its own table built from them.
"""

from __future__ import annotations

import threading

import numpy as np

from roost.ads.catalog import CampaignArrays

IMPRESSIONS, CLICKS, EXPECTED = 0, 1, 2  # EXPECTED: the sum of the click model's pCTR of the impressions


class ServedCounts:
    def __init__(self, counts: dict[str, tuple[int, int, float]]):
        """``counts``: campaign id -> (impressions, clicks, expected clicks) from the database
        (:meth:`roost.ads.store.AdStore.click_counts`), so a campaign's propensity survives a restart."""
        self._lock = threading.Lock()
        self._by_id = {cid: [float(n) for n in row] for cid, row in counts.items()}
        # (catalog version, its table): one attribute, swapped whole, so a decision never pairs a new version's
        # rows with the old table
        self._current: tuple[CampaignArrays | None, np.ndarray] = (None, np.zeros((0, 3)))

    def of(self, arrays: CampaignArrays, rows: np.ndarray) -> np.ndarray:
        """(impressions, clicks, expected clicks) of the campaigns at these rows of ``arrays``, one row each."""
        known, table = self._current
        return (table if arrays is known else self._rebuild(arrays))[rows]

    def _rebuild(self, arrays: CampaignArrays) -> np.ndarray:
        with self._lock:
            table = np.zeros((len(arrays.ids), 3))
            for cid, counts in self._by_id.items():
                row = arrays.row.get(cid)
                if row is not None:
                    table[row] = counts
            self._current = (arrays, table)
        return table

    def add(self, campaign_id: str, column: int, amount: float = 1.0) -> None:
        """One more impression (``IMPRESSIONS``) or click (``CLICKS``) of this campaign, or ``amount`` more
        expected clicks (``EXPECTED``)."""
        with self._lock:
            self._by_id.setdefault(campaign_id, [0.0, 0.0, 0.0])[column] += amount
            known, table = self._current
            row = known.row.get(campaign_id) if known is not None else None
            if row is not None:
                table[row, column] += amount

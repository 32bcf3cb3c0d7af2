"""A context text seen lately costs neither an embedding nor a brand-safety scoring, and scores the same."""

import numpy as np
from test_ads_service import spec

from roost.ads.brand_safety import SafetyProbes
from roost.ads.clicks import ClickSigner
from roost.ads.embedder import HashingEmbedder
from roost.ads.service import AdRequest, AdService
from roost.ads.store import AdStore

SAFE = ["what a lovely morning run", "sunny walk in the park", "calm coffee with friends", "crisp autumn hike"]
UNSAFE = ["what a zorblax morning run", "sunny zorblax in the park", "calm zorblax with friends", "zorblax autumn hike"]


def test_repeated_context_texts_are_embedded_and_scored_once(tmp_path):
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns([spec("shoes", "running shoes for the park", ["park"])])
    h = HashingEmbedder()
    texts = SAFE * 5 + UNSAFE * 5
    probes = SafetyProbes(space=h.space).bind(h)
    probes.add("zorblax", texts, h(texts), np.array([0] * 20 + [1] * 20), {1})
    embedded, scored = [], []

    def embed(batch):
        embedded.append(list(batch))
        return h(batch)

    real = probes.scores

    def scores(batch, vecs, sentences=True):
        if sentences:  # a served context's call (it calls itself again for the sentences)
            scored.append(list(batch))
        return real(batch, vecs, sentences)

    probes.scores = scores
    svc = AdService(store, ClickSigner(b"0123456789abcdef0123456789abcdef"), embed=embed, space=h.space, safety=probes)
    embedded.clear()
    unsafe = "zorblax in the park"
    first = svc.context(AdRequest(context_text=unsafe))
    again = svc.context(AdRequest(context_text=unsafe))
    assert embedded == scored == [[unsafe]]  # the second time from the cache
    assert again.unsafe == first.unsafe > 0.5 and np.array_equal(again.vec, first.vec)
    assert first.unsafe == float(real([unsafe], h([unsafe]))[0])
    safe = svc.context(AdRequest(query="a lovely walk in the park"))
    assert safe.unsafe < 0.5 and scored[-1] == ["a lovely walk in the park"]
    assert len(svc.serve(AdRequest(context_text=unsafe))) == 0 and len(scored) == 2  # too unsafe, not rescored
    assert [ad.campaign_id for ad in svc.serve(AdRequest(query="a lovely walk in the park"))] == ["shoes"]

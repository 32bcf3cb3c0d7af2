"""Context the model understands: a context that matches nothing gets no targeted ad, against a similarity floor
calibrated on the catalog's own off-topic creative pairs; a topical one still gets its ad."""

from test_ads_service import service, spec

from roost.ads.service import AdRequest, AdsConfig

TOPICS = {
    "running": [
        "trail running shoes for muddy hills",
        "marathon training plan and fast shoes",
        "running socks that never blister",
        "lightweight running jacket for rain",
        "a watch that counts your strides",
    ],
    "coffee": [
        "single origin espresso beans roasted weekly",
        "pour over coffee kettle with gooseneck",
        "cold brew coffee concentrate",
        "burr grinder for coffee at home",
        "oat milk that froths like dairy",
    ],
}


def catalog() -> list:
    return [
        spec(f"{topic}-{i}", text, keywords=[topic], targeting={"topics": [topic], "keywords": [topic]})
        for topic, texts in TOPICS.items()
        for i, text in enumerate(texts)
    ]


def test_a_context_that_matches_nothing_gets_no_ad_and_a_topical_one_does(tmp_path):
    svc = service(tmp_path, catalog(), config=AdsConfig(default_frequency_cap=None))
    assert svc._min_similarity is not None  # calibrated on the 25 pairs of creatives on different topics
    assert svc.serve(AdRequest(context_text="xylophonequantum zzyzx")) == []
    [ad] = svc.serve(AdRequest(context_text="new espresso beans for my coffee grinder"))
    assert ad.campaign_id.startswith("coffee")
    no_floor = service(tmp_path / "2", catalog(), config=AdsConfig(default_frequency_cap=None, no_match_quantile=None))
    assert no_floor.serve(AdRequest(context_text="xylophonequantum zzyzx"))  # the floor is what held it back
    filled = service(tmp_path / "3", catalog(), config=AdsConfig(default_frequency_cap=None, fill=True))
    assert filled.serve(AdRequest(context_text="xylophonequantum zzyzx"))  # run-of-network when asked for

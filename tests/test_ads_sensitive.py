"""Sensitive events (roost.ads.sensitive): phrases, not words, and no brand-safe ad next to them without any probe."""

from test_ads_service import served, service, spec

from roost.ads.sensitive import sensitive_categories, sensitive_score


def test_phrases_of_sensitive_events_are_found_and_everyday_senses_are_not():
    assert sensitive_categories("Mass shooting downtown, 5 people killed") == {"violent crime", "death and injury"}
    assert sensitive_categories("Terror attack: the death toll rises") == {"terrorism", "death and injury"}
    assert sensitive_categories("#ChildAbuse child abuse scandal at the school") == {"abuse"}
    for harmless in (
        "this workout killed me",
        "shooting hoops after school",
        "the band killed it last night",
        "this level is murder on hard mode",
        "a shooting star",
        "",
    ):
        assert sensitive_categories(harmless) == frozenset(), harmless
    assert sensitive_score(["lovely morning", "earthquake death toll rises to 300"]) == 1.0
    assert sensitive_score(["lovely morning"]) == 0.0


def test_no_brand_safe_ad_next_to_a_sensitive_event_even_without_probes(tmp_path):
    specs = [
        spec("careful", "running shoes for the city marathon"),
        spec("bold", "running shoes for the city marathon", brand_safety_threshold=1.0),  # opted out
    ]
    svc = service(tmp_path, specs)  # no safety probes at all
    assert svc.safety is None
    news = "mass shooting at the city marathon, people killed"
    assert served(svc, context_text=news, slots=2) == ["bold"]
    assert sorted(served(svc, context_text="the city marathon, running shoes", slots=2)) == ["bold", "careful"]
    svc.config.sensitive_phrases = False  # the list off: only probes (none here) judge the context
    assert sorted(served(svc, context_text=news, slots=2)) == ["bold", "careful"]

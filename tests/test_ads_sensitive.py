"""Sensitive events (roost.ads.sensitive): phrases, not words, and no brand-safe ad next to them without any probe."""

import pytest
from test_ads_service import served, service, spec

from roost.ads.sensitive import SensitivePhrases
from roost.ads.setup import ads_dir, open_service
from roost.ads.store import AdStore
from roost.errors import UserError
from roost.workspace import Workspace


def test_phrases_of_sensitive_events_are_found_and_everyday_senses_are_not():
    phrases = SensitivePhrases()
    assert phrases.categories("Mass shooting downtown, 5 people killed") == {"violent crime", "death and injury"}
    assert phrases.categories("Terror attack: the death toll rises") == {"terrorism", "death and injury"}
    assert phrases.categories("#ChildAbuse child abuse scandal at the school") == {"abuse"}
    for harmless in (
        "this workout killed me",
        "shooting hoops after school",
        "the band killed it last night",
        "this level is murder on hard mode",
        "a shooting star",
        "",
    ):
        assert phrases.categories(harmless) == frozenset(), harmless
    assert phrases.score(["lovely morning", "earthquake death toll rises to 300"]) == 1.0
    assert phrases.score(["lovely morning"]) == 0.0


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


def test_a_workspace_adds_its_own_phrases_and_a_bad_line_says_where(tmp_path):
    ws = Workspace(tmp_path)
    AdStore(ws.ads_db).add_campaigns([spec("shoes", "laufschuhe running shoes for the marathon")])
    news = "Amoklauf beim Marathon, viele Tote"
    assert served(open_service(ws, embedder="hashing"), context_text=news) == ["shoes"]
    ads_dir(ws).mkdir(exist_ok=True)
    path = ads_dir(ws) / "sensitive_phrases.txt"
    path.write_text("# our own events, and German\nviolent crime: Amoklauf\nDeath and injury: viele Tote\n\n")
    svc = open_service(ws, embedder="hashing")
    assert svc.sensitive.categories(news) == {"violent crime", "Death and injury"}
    assert served(svc, context_text=news) == []
    assert svc.sensitive.categories("mass shooting") == {"violent crime"}  # the built-in list stays
    path.write_text("violent crime: Amoklauf\njust a phrase without its category\n")
    with pytest.raises(UserError, match=r"sensitive_phrases.txt:2: expected 'category: phrase'"):
        open_service(ws, embedder="hashing")

"""Interest matching: topics learned from users' posts, the per-post interest feature, and durability settings."""

import pytest
from test_ads_service import NOON, served, service, spec, write_posts

from roost.ads.catalog import Catalog
from roost.ads.context import UserHistory
from roost.ads.service import AdRequest
from roost.ads.setup import open_store
from roost.ads.store import AdStore
from roost.ads.topics import TopicModel
from roost.workspace import Workspace

# Posts name a campaign keyword ("espresso", "gambit") only now and then; the rest use the topic's other words.
POSTS = [
    ("c1", "espresso before work", "ann", 1),
    ("c2", "the crema was thick and nutty", "ann", 2),
    ("c3", "grinding beans for crema again", "ann", 3),
    ("c4", "nutty beans from a new roaster", "ann", 4),
    ("h1", "a wild gambit today", "bo", 1),
    ("h2", "the rook endgame went badly", "bo", 2),
    ("h3", "blitz rook endgame practice", "bo", 3),
    ("h4", "lost on time in the blitz endgame", "bo", 4),
    ("y1", "thick crema and nutty beans", "cy", 5),
    ("y2", "a new roaster, great beans", "cy", 6),  # never "espresso"
]


def topic_specs(coffee_bid=0.4, chess_bid=0.5):
    return [
        spec(
            "coffee",
            "Fresh coffee delivered",
            bid=coffee_bid,
            targeting={"keywords": ["espresso"], "topics": ["coffee"]},
        ),
        spec("chess", "Chess sets and clocks", bid=chess_bid, targeting={"keywords": ["gambit"], "topics": ["chess"]}),
    ]


def test_topic_model_learns_words_no_campaign_names(tmp_path):
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns(topic_specs(), now=NOON)
    catalog = Catalog(store)
    assert catalog.match_topics(frozenset(["crema"])) == set()  # no campaign says "crema"
    users = {"ann": [p[1] for p in POSTS if p[2] == "ann"], "bo": [p[1] for p in POSTS if p[2] == "bo"]}
    model = TopicModel.fit(users.values(), catalog)
    assert model.topics == ["chess", "coffee"]
    assert model.posterior("thick nutty crema")[1] > 0.9
    assert model.posterior("rook endgame in blitz")[0] > 0.9
    assert not model.posterior("nothing known here").any()
    assert not TopicModel.fit([["no topic words at all"]], catalog).vocab  # nothing seeded: nothing learned


def test_a_users_interest_outbids_a_higher_bid_off_their_topic(tmp_path):
    write_posts(tmp_path / "corpus", POSTS)
    history = UserHistory.from_corpus(tmp_path / "corpus")
    svc = service(tmp_path, topic_specs(coffee_bid=0.4, chess_bid=0.5), history=history)
    # cy never names a coffee keyword, but posts about coffee: the topic brings the campaign in and the
    # interest feature (share of cy's posts on coffee) lets it beat the higher chess bid
    [ad] = svc.serve(AdRequest(user_id="cy"))
    assert ad.campaign_id == "coffee"
    assert ad.why["interest_share"] > 0.9
    assert served(svc, user_id="bo") == ["chess"]
    # keyword retrieval sees only the named keywords; the feature still measures the share of posts on topic
    svc.config.retrieval = "keyword"
    context = svc.context(AdRequest(user_id="ann"))
    assert len(context.texts) == 4
    assert context.term_shares(svc.catalog, ["chess"])[0] < 0.1


def test_server_durability_survives_a_process_crash_by_default_and_power_loss_on_request(tmp_path, monkeypatch):
    ws = Workspace(tmp_path)

    def sync_mode():
        return open_store(ws)._conn().execute("PRAGMA synchronous").fetchone()[0]

    monkeypatch.delenv("ROOST_ADS_DURABILITY", raising=False)
    assert sync_mode() == 1  # NORMAL: with WAL, a SIGKILL of the server loses nothing acknowledged
    monkeypatch.setenv("ROOST_ADS_DURABILITY", "power")
    assert sync_mode() == 2  # FULL: one fsync per commit
    monkeypatch.setenv("ROOST_ADS_DURABILITY", "disk")
    with pytest.raises(ValueError, match="durability must be one of"):
        open_store(ws)


def test_em_moves_a_word_to_the_topic_of_its_posts_not_all_its_users_topics(tmp_path):
    store = AdStore(tmp_path / "ads.db", synchronous="NORMAL")
    store.add_campaigns(topic_specs(), now=NOON)
    catalog = Catalog(store)
    users = [
        ["espresso before work", "thick crema, nutty beans"],  # coffee only
        ["a wild gambit today", "rook endgame in blitz"],  # chess only
        # both: the first fit labels each of these posts half coffee, half chess
        ["espresso and a gambit", "nutty beans from the roaster", "rook endgame at the club"],
    ] * 3
    first = TopicModel.fit(users, catalog, rounds=0)
    em = TopicModel.fit(users, catalog)
    coffee, chess = em.topics.index("coffee"), em.topics.index("chess")
    assert 0.4 < first.posterior("roaster")[coffee] < 0.6  # only ever in the two-topic user's posts
    assert em.posterior("roaster")[coffee] > 0.9  # the post's other words are coffee's
    assert em.posterior("club")[chess] > 0.9
    assert em.posterior("thick nutty crema")[coffee] > first.posterior("thick nutty crema")[coffee] > 0.9

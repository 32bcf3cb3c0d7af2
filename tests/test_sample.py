import csv
import difflib
import json
import re
from collections import Counter

import ftfy
import pytest

from roost.cli import main
from roost.sample import TOPICS, ClickModel, generate
from roost.sample.topics import BANKS

USERS, POSTS, CAMPAIGNS, SEED = 100, 2000, 60, 7
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    summary = generate(out, users=USERS, posts=POSTS, seed=SEED, campaigns=CAMPAIGNS)
    pages = [json.loads(line) for line in (out / "posts.jsonl").read_text(encoding="utf-8").splitlines()]
    tweets = [t for page in pages for t in page["data"]]
    truth = {r["id"]: r for r in map(json.loads, (out / "truth/post_topics.jsonl").read_text().splitlines())}
    return {
        "dir": out,
        "summary": summary,
        "pages": pages,
        "tweets": tweets,
        "by_id": {t["id"]: t for t in tweets},
        "truth": truth,
    }


def _files(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(sample, tmp_path):
    generate(tmp_path / "again", users=USERS, posts=POSTS, seed=SEED, campaigns=CAMPAIGNS)
    assert _files(tmp_path / "again") == _files(sample["dir"])
    generate(tmp_path / "other", users=USERS, posts=POSTS, seed=SEED + 1, campaigns=CAMPAIGNS)
    other = _files(tmp_path / "other")
    for name in ("posts.jsonl", "users.jsonl", "follows.csv", "ads.json", "truth/click_model.json"):
        assert other[name] != _files(sample["dir"])[name], name


def test_every_line_is_an_api_v2_page(sample):
    users = {u["id"]: u for u in map(json.loads, (sample["dir"] / "users.jsonl").read_text().splitlines())}
    assert len(users) == USERS and len(sample["tweets"]) == POSTS == sample["summary"].posts
    assert len(sample["by_id"]) == POSTS, "tweet ids are unique"
    for page in sample["pages"]:
        assert 1 <= len(page["data"]) <= 100
        included = {u["id"] for u in page["includes"]["users"]}
        for u in page["includes"]["users"]:
            assert u == users[u["id"]]
            assert ISO.match(u["created_at"]) and u["username"] and u["name"]
            assert isinstance(u["public_metrics"]["followers_count"], int)
        for t in page["data"]:
            assert t["id"].isdigit() and t["author_id"] in included
            assert isinstance(t["text"], str) and ISO.match(t["created_at"])
            assert t["lang"] in ("en", "es", "fr", "de", "pt", "und")
            assert t["conversation_id"] in sample["by_id"]
            assert set(t["public_metrics"]) == {"like_count", "retweet_count", "reply_count", "quote_count"}
            assert all(isinstance(v, int) and v >= 0 for v in t["public_metrics"].values())
            for ref in t.get("referenced_tweets", []):
                assert ref["type"] in ("replied_to", "retweeted", "quoted") and ref["id"] in sample["by_id"]
            ents = t.get("entities", {})
            for h in ents.get("hashtags", []):
                assert t["text"][h["start"] : h["end"]] == "#" + h["tag"]
            for m in ents.get("mentions", []):
                assert t["text"][m["start"] : m["end"]] == "@" + m["username"]
                assert users[m["id"]]["username"] == m["username"]
            for u in ents.get("urls", []):
                assert t["text"][u["start"] : u["end"]] == u["url"] and u["expanded_url"].startswith("https://")
    times = [t["created_at"] for t in sample["tweets"]]
    assert times == sorted(times), "pages run in time order"


def test_follow_graph_matches_user_counts(sample):
    users = [json.loads(line) for line in (sample["dir"] / "users.jsonl").read_text().splitlines()]
    with open(sample["dir"] / "follows.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["follower_id", "followee_id"]
    edges = [tuple(r) for r in rows[1:]]
    ids = {u["id"] for u in users}
    assert len(edges) == len(set(edges)) > USERS
    assert all(a in ids and b in ids and a != b for a, b in edges)
    indeg, outdeg = Counter(b for _, b in edges), Counter(a for a, _ in edges)
    for u in users:
        assert u["public_metrics"]["followers_count"] == indeg[u["id"]]
        assert u["public_metrics"]["following_count"] == outdeg[u["id"]]
    # People follow people who share their interests more than chance would have it.
    interests = json.loads((sample["dir"] / "truth/user_interests.json").read_text())
    shared = sum(bool(set(interests[a]) & set(interests[b])) for a, b in edges) / len(edges)
    pairs = [(a, b) for a in sorted(ids) for b in sorted(ids) if a != b]
    base = sum(bool(set(interests[a]) & set(interests[b])) for a, b in pairs) / len(pairs)
    assert shared > base + 0.15


def test_popular_authors_get_more_engagement(sample):
    followers = {
        u["id"]: u["public_metrics"]["followers_count"]
        for u in map(json.loads, (sample["dir"] / "users.jsonl").read_text().splitlines())
    }
    organic = [t for t in sample["tweets"] if sample["truth"][t["id"]]["kind"] in ("post", "reply")]
    organic.sort(key=lambda t: followers[t["author_id"]])
    q = len(organic) // 4
    likes = [sum(t["public_metrics"]["like_count"] for t in part) / q for part in (organic[:q], organic[-q:])]
    assert likes[1] > 2 * likes[0]


def test_replies_answer_their_parent_in_its_topic(sample):
    by_id, truth = sample["by_id"], sample["truth"]
    users = {u["id"]: u for u in map(json.loads, (sample["dir"] / "users.jsonl").read_text().splitlines())}
    depth, answered = {}, set()
    for t in sample["tweets"]:  # time order: parents come first
        refs = {r["type"]: r["id"] for r in t.get("referenced_tweets", [])}
        if "replied_to" not in refs:
            depth[t["id"]] = 0
            continue
        parent = by_id[refs["replied_to"]]
        assert parent["created_at"] < t["created_at"]
        assert t["in_reply_to_user_id"] == parent["author_id"]
        assert t["conversation_id"] == parent["conversation_id"]
        assert t["text"].startswith("@" + users[parent["author_id"]]["username"] + " ")
        if truth[t["id"]]["kind"] == "spam":  # a bot's pitch under a post: no topic, no answer
            assert truth[t["id"]]["topic"] is None and "act" not in truth[t["id"]]
            continue
        assert truth[t["id"]]["topic"] == truth[parent["id"]]["topic"] in TOPICS
        if truth[parent["id"]].get("question"):
            assert truth[t["id"]]["act"] == "answer"
            if parent["lang"] == t["lang"] == "en" and "subject" in truth[parent["id"]]:  # it takes up what was asked
                assert truth[t["id"]]["subject"] == truth[parent["id"]]["subject"]
                assert truth[t["id"]]["subject"].lower() in t["text"].lower()
            answered.add(parent["id"])
        depth[t["id"]] = depth[parent["id"]] + 1
        assert depth[t["id"]] <= 6
    assert max(depth.values()) >= 4
    questions = [i for i, row in truth.items() if row.get("question") and row["kind"] in ("post", "reply")]
    assert len(questions) > 0.1 * POSTS and len(answered) >= len(questions) - 1, "a question gets an answer"
    n_replies = Counter(
        r["id"] for t in sample["tweets"] for r in t.get("referenced_tweets", []) if r["type"] == "replied_to"
    )
    assert all(t["public_metrics"]["reply_count"] == n_replies[t["id"]] for t in sample["tweets"])


def test_dirt_of_each_kind_is_present(sample):
    by_id, truth, tweets = sample["by_id"], sample["truth"], sample["tweets"]
    kinds = Counter(r["kind"] for r in truth.values())
    for kind in ("retweet", "quote", "duplicate", "near_duplicate", "spam", "empty"):
        assert 0.005 * POSTS <= kinds[kind] <= 0.08 * POSTS, (kind, kinds[kind])
    for t in tweets:
        row, text = truth[t["id"]], t["text"]
        refs = {r["type"]: r["id"] for r in t.get("referenced_tweets", [])}
        if row["kind"] == "retweet":
            src = by_id[refs["retweeted"]]
            assert text.startswith("RT @") and text.split(": ", 1)[1] == src["text"]
        elif row["kind"] == "quote":
            assert refs["quoted"] in by_id and t["entities"]["urls"][0]["expanded_url"].endswith(refs["quoted"])
        elif row["kind"] == "duplicate":
            assert row["copy_of"] != t["id"] and text == by_id[row["copy_of"]]["text"]
        elif row["kind"] == "near_duplicate":
            src = by_id[row["copy_of"]]["text"]
            ops = difflib.SequenceMatcher(None, src.split(" "), text.split(" ")).get_opcodes()
            assert text != src and sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal") <= 2
        elif row["kind"] == "spam":  # stuffing, a campaign pitch with one link, or a pitch as a reply
            urls, tags = len(t["entities"]["urls"]), len(t["entities"].get("hashtags", []))
            replies = "referenced_tweets" in t
            assert (urls >= 2 and tags >= 5) or (urls == 1 and tags <= 2 and not replies) or (urls == 1 and replies)
        elif row["kind"] == "empty":
            assert text.strip() == ""
    dirt = Counter(d for r in truth.values() if r["kind"] in ("post", "reply") for d in r.get("dirt", []))
    assert min(dirt[k] for k in ("pii", "html_entities", "mojibake")) >= 0.01 * POSTS
    texts = {k: [t["text"] for t in tweets if k in truth[t["id"]].get("dirt", [])] for k in dirt}
    email, phone = re.compile(r"[\w.]+@[\w.]+\.\w+"), re.compile(r"\+?[\d() -]{7,}\d")
    assert all(email.search(s) or phone.search(s) for s in texts["pii"])
    assert any(email.search(s) for s in texts["pii"]) and any(phone.search(s) for s in texts["pii"])
    assert all(re.search(r"&(amp|lt|gt);", s) for s in texts["html_entities"])
    # Real mojibake: UTF-8 lead bytes shown as cp1252, and ftfy can undo it (bar rare ambiguous cases like '⚽').
    assert all(re.search("[ÂÃâð][\u0080-\u00ff\u0152-\u2122]", s) for s in texts["mojibake"])
    fixed = [ftfy.fix_encoding(s) for s in texts["mojibake"]]
    assert sum(
        f != s and not re.search("[Ãð][\u0080-\u00ff]", f) for f, s in zip(fixed, texts["mojibake"])
    ) >= 0.8 * len(fixed)


def test_topic_is_recognizable_from_words(sample):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.naive_bayes import ComplementNB

    rows = [
        (t["text"], sample["truth"][t["id"]]["topic"])
        for t in sample["tweets"]
        if sample["truth"][t["id"]]["kind"] in ("post", "reply") and t["lang"] == "en"
    ]
    cut = len(rows) * 2 // 3
    vec = TfidfVectorizer(token_pattern=r"(?u)\b[a-zA-Z]{3,}\b")
    clf = ComplementNB().fit(vec.fit_transform([r[0] for r in rows[:cut]]), [r[1] for r in rows[:cut]])
    accuracy = (clf.predict(vec.transform([r[0] for r in rows[cut:]])) == [r[1] for r in rows[cut:]]).mean()
    assert accuracy > 0.8, accuracy


def test_ads_json_campaigns_validate(sample):
    campaigns = json.loads((sample["dir"] / "ads.json").read_text())["campaigns"]
    assert len(campaigns) == CAMPAIGNS and len({c["id"] for c in campaigns}) == CAMPAIGNS
    shape = {
        "id",
        "advertiser",
        "name",
        "budget",
        "daily_budget",
        "bid_type",
        "bid",
        "max_bid",
        "targeting",
        "frequency_cap",
        "creatives",
    }
    assert {t for c in campaigns for t in c["targeting"]["topics"]} == set(TOPICS)
    for c in campaigns:
        assert shape <= set(c) <= shape | {"brand_safety_threshold"}
        assert 0 < c["daily_budget"] <= c["budget"] and isinstance(c["budget"], float)
        assert c["bid_type"] in ("cpc", "cpm") and 0 < c["bid"] <= c["max_bid"]
        assert isinstance(c["frequency_cap"], int) and c["frequency_cap"] >= 1
        assert 0 <= c.get("brand_safety_threshold", 0) <= 1
        tg = c["targeting"]
        assert set(tg) == {"keywords", "topics", "languages"} and tg["keywords"] and tg["languages"]
        assert set(tg["topics"]) <= set(TOPICS)
        assert 1 <= len(c["creatives"]) <= 3
        words = set(BANKS[tg["topics"][0]].products) | {tg["topics"][0], tg["topics"][0].upper()}
        for cr in c["creatives"]:
            assert cr["landing_url"].startswith("https://") and any(w in cr["text"] for w in words), cr


def test_click_model_prefers_interested_users(sample):
    model = ClickModel.load(sample["dir"])
    interests = json.loads((sample["dir"] / "truth/user_interests.json").read_text())
    assert all(abs(sum(w.values()) - 1) < 1e-6 and set(w) <= set(TOPICS) for w in interests.values())
    campaigns = json.loads((sample["dir"] / "ads.json").read_text())["campaigns"]
    wins = 0
    for c in campaigns:
        topics = set(c["targeting"]["topics"])
        fans = [u for u, w in interests.items() if max(w.get(t, 0) for t in topics) >= 0.3]
        others = [u for u, w in interests.items() if not topics & set(w)]
        if fans and others:
            p_fan = sum(model.p_click(u, c["id"], 0) for u in fans) / len(fans)
            p_other = sum(model.p_click(u, c["id"], 0) for u in others) / len(others)
            wins += p_fan > 2 * p_other
    assert wins >= 0.9 * len(campaigns)
    user, cid = next(iter(interests)), campaigns[0]["id"]
    ps = [model.p_click(user, cid, k) for k in range(4)]
    assert all(0 < p < 1 for p in ps) and ps == sorted(ps, reverse=True) and ps[0] > ps[3]
    with pytest.raises(ValueError, match="unknown campaign"):
        model.p_click(user, "cmp-nope", 0)
    with pytest.raises(ValueError, match="unknown user"):
        model.p_click("123", cid, 0)
    with pytest.raises(FileNotFoundError, match="roost sample"):
        ClickModel.load(sample["dir"] / "nowhere")


def test_cli(tmp_path, capsys):
    assert main(["sample", "-w", str(tmp_path / "ws"), "--users", "30", "--posts", "120", "--campaigns", "5"]) == 0
    out = capsys.readouterr().out
    assert "30 users" in out and "120 posts" in out and "5 campaigns" in out
    assert sum(len(json.loads(line)["data"]) for line in (tmp_path / "ws/sample/posts.jsonl").open()) == 120
    assert main(["sample", "--out", str(tmp_path / "bad"), "--users", "1"]) == 2
    assert "users must be at least 2" in capsys.readouterr().err
    assert main(["sample", "--out", str(tmp_path / "bad"), "--start", "2024-13-01"]) == 2
    assert "start must be a date" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    (tmp_path / "file").write_text("x")
    assert main(["sample", "--out", str(tmp_path / "file"), "--users", "5", "--posts", "10"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_organic_posts_seldom_repeat_so_ingest_drops_about_what_was_injected(sample, tmp_path):
    from roost.corpus import IngestConfig, ingest
    from roost.workspace import Workspace

    truth = sample["truth"]
    bodies = Counter(
        re.sub(r"^(@\w+\s*)+", "", t["text"]).lower()
        for t in sample["tweets"]
        if truth[t["id"]]["kind"] in ("post", "reply")
    )
    organic = sum(bodies.values())
    assert sum(n - 1 for n in bodies.values()) <= 0.01 * organic  # template collisions were ~20% once
    injected = sum(r["kind"] in ("duplicate", "near_duplicate") for r in truth.values())
    rep = ingest([sample["dir"] / "posts.jsonl"], Workspace(tmp_path / "ws"), IngestConfig(workers=1), progress=False)
    dropped = rep.dropped.get("duplicate", 0) + rep.dropped.get("near_duplicate", 0)
    assert abs(dropped - injected) <= 0.1 * injected, (dropped, injected)

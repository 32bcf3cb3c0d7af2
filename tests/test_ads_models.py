"""Click model, brand-safety probes, the simulator, and the `roost ads` commands."""

import json
import random

import numpy as np
import pytest
from test_ads_service import write_posts

from roost.ads.campaign import CampaignSpec
from roost.ads.context import UserHistory
from roost.ads.embedder import HashingEmbedder
from roost.ads.pctr import CTRModel, train
from roost.ads.simulator import SimConfig, simulate
from roost.cli import main
from roost.labelled import read_labelled

TOPICS = {  # common words, then three rare product words (the campaigns' keywords)
    "coffee": "espresso latte beans roast barista grinder moka aeropress",
    "running": "marathon trail sprint pace miles spikes gaiters treadmill",
    "garden": "tomatoes compost seedlings soil weeds trowel cloche mulcher",
    "chess": "opening gambit endgame rook bishop clock scoresheet notation",
}


class Truth:
    """Users click ads about their one interest, less so further down the page."""

    def __init__(self, interests: dict[str, str]):
        self.interests = interests

    def p_click(self, user_id, campaign_id, position):
        return (0.35 if campaign_id.startswith(self.interests[user_id]) else 0.01) * 0.7**position


def world(root, users=40):
    rng = random.Random(0)
    interests, rows = {}, []
    for u in range(users):
        topic = rng.choice(sorted(TOPICS))
        interests[f"u{u}"] = topic
        vocab = TOPICS[topic].split()
        for k in range(3):
            text = "today " + " ".join(rng.sample(vocab[:5], 3))
            if rng.random() < 0.1:  # product words are rare: keyword targeting alone misses most users
                text += " " + rng.choice(vocab[5:])
            rows.append((f"p{u}-{k}", text, f"u{u}", u * 10 + k))
    write_posts(root / "corpus", rows)
    campaigns = []
    for topic, vocab in TOPICS.items():
        words = vocab.split()
        for j in range(3):
            campaigns.append(
                {
                    "id": f"{topic}-{j}",
                    "advertiser": f"{topic} co",
                    "name": f"{topic} {j}",
                    "budget": 50,
                    "bid_type": "cpc",
                    "bid": round(0.2 + 0.1 * j, 2),
                    "targeting": {"keywords": [words[5 + j]]},
                    "creatives": [
                        {"text": f"the best {' '.join(words[:5])} deals", "landing_url": f"https://{topic}.example/{j}"}
                    ],
                }
            )
    return campaigns, Truth(interests)


def test_simulator_model_matching_beats_keywords_and_random(tmp_path):
    campaigns, truth = world(tmp_path)
    specs = [CampaignSpec.model_validate(c) for c in campaigns]
    h = HashingEmbedder()
    rows = simulate(
        specs, UserHistory.from_corpus(tmp_path / "corpus"), truth, h, h.space, SimConfig(requests=300, slots=2)
    )
    by = {r["policy"]: r for r in rows}
    assert set(by) == {"random", "keyword", "model+pctr"}
    assert all(r["requests"] == 300 and 0 < r["budget_use"] < 1 for r in rows)
    assert by["model+pctr"]["ctr"] > 2 * by["random"]["ctr"]
    assert by["model+pctr"]["rpm"] > by["keyword"]["rpm"]
    assert by["model+pctr"]["pctr_auc"] > 0.55  # its own traffic is all well matched: position is what is left


def test_simulator_counts_strict_ads_next_to_unsafe_posts_and_safety_probes_stop_them(tmp_path):
    """Half the campaigns set a strict brand-safety threshold (0.2); a probe scoring every context 0.3 passes the
    default (0.5) but not theirs. The users whose posts are ground-truth unsafe get none of their ads with the
    probe, and some without it (so the count can fail)."""
    from roost.ads.brand_safety import SafetyProbes

    campaigns, truth = world(tmp_path)
    for c in campaigns[::2]:
        c["brand_safety_threshold"] = 0.2
    specs = [CampaignSpec.model_validate(c) for c in campaigns]
    h, history = HashingEmbedder(), UserHistory.from_corpus(tmp_path / "corpus")
    unsafe = frozenset(f"p{u}-0" for u in range(0, 40, 2))
    dim = len(h(["x"])[0])
    constant = {"vocab": ["x"], "idf": [1.0], "token_weights": [0.0], "emb_weights": [0.0] * dim}
    constant.update(emb_weight=1.0, bias=float(np.log(0.3 / 0.7)), chosen={})
    probe = SafetyProbes(h.space, names=["all"], probes=[constant]).bind(h)
    cfg = SimConfig(requests=200, slots=2)
    (without,) = simulate(specs, history, truth, h, h.space, cfg, ("random",), unsafe_posts=unsafe)
    (with_probe,) = simulate(specs, history, truth, h, h.space, cfg, ("random",), probe, unsafe)
    assert without["unsafe_requests"] == with_probe["unsafe_requests"] > 50
    assert without["strict_next_to_unsafe"] > 20 and with_probe["strict_next_to_unsafe"] == 0
    assert with_probe["impressions"] == without["impressions"]  # the other half still fills every slot


def test_click_model_learns_and_reports_time_split_metrics():
    rng = np.random.default_rng(0)
    n = 2000
    raw = np.stack(
        [
            rng.uniform(0, 1, n),
            rng.integers(0, 2, n),
            rng.integers(0, 3, n),
            rng.uniform(0.005, 0.1, n),
            rng.integers(0, 50, n),
        ],
        axis=1,
    ).astype(float)
    p = 1 / (1 + np.exp(-(-4 + 4 * raw[:, 0] + 0.8 * raw[:, 1] - 0.5 * raw[:, 2])))
    y = (rng.uniform(size=n) < p).astype(int)
    model = train(raw, y)
    test = model.metrics["test"]
    assert test["n"] == 400 and test["auc"] > 0.7 and test["rce"] > 5
    assert model.weights[0] > 2  # similarity matters most, as in the truth


def test_click_model_refuses_too_little_data_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="at least 50"):
        train(np.zeros((20, 5)), np.zeros(20, int))
    with pytest.raises(ValueError, match="both clicks and non-clicks"):
        train(np.zeros((100, 5)), np.zeros(100, int))
    (tmp_path / "m.json").write_text(json.dumps({"features": ["x"], "weights": [1], "bias": 0}))
    with pytest.raises(ValueError, match="train-ctr"):
        CTRModel.load(tmp_path / "m.json")


def test_cli_load_train_ctr_and_train_safety(tmp_path, capsys):
    ws = tmp_path / "ws"
    campaigns, truth = world(ws)
    bad = [dict(campaigns[0]), {**campaigns[1], "bid": "lots"}]
    (tmp_path / "bad.json").write_text(json.dumps({"campaigns": bad}))
    assert main(["ads", "load", str(tmp_path / "bad.json"), "-w", str(ws)]) == 2
    assert "campaign #1 (coffee-1): bid:" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text('{"campaigns": [\n{,}]}')
    assert main(["ads", "load", str(tmp_path / "broken.json"), "-w", str(ws)]) == 2
    assert "broken.json:2:2: not valid JSON" in capsys.readouterr().err

    (tmp_path / "ads.json").write_text(json.dumps({"campaigns": campaigns}))
    assert main(["ads", "load", str(tmp_path / "ads.json"), "-w", str(ws)]) == 0
    assert "loaded 12 campaigns" in capsys.readouterr().out
    assert main(["ads", "load", str(tmp_path / "ads.json"), "-w", str(ws)]) == 2  # ids already there
    assert "already in" in capsys.readouterr().err

    assert main(["ads", "train-ctr", "-w", str(ws)]) == 2  # no events yet
    assert "need at least 50" in capsys.readouterr().err
    from roost.ads.service import AdRequest
    from roost.ads.setup import open_service
    from roost.workspace import Workspace

    Workspace(ws).write_manifest("corpus")  # world() wrote the posts shard
    svc = open_service(Workspace(ws), embedder="hashing")
    rng = random.Random(0)
    for i in range(300):
        user = f"u{i % 40}"
        for ad in svc.serve(AdRequest(user_id=user, slots=2)):
            if rng.random() < truth.p_click(user, ad.campaign_id, ad.position):
                svc.click(ad.click_token)
    assert main(["ads", "train-ctr", "-w", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "AUC" in out and (ws / "ads" / "ctr_model.json").exists() and "restated the expected clicks of" in out
    # the expected clicks in ads.db are now the new model's, which the next server start reads
    from roost.ads.pctr import CTRModel, events_to_arrays

    events = svc.store.events()
    new_model_p = CTRModel.load(ws / "ads" / "ctr_model.json").predict(events_to_arrays(events)[0])
    stored = svc.store.click_counts()
    for cid in {e["campaign_id"] for e in events}:
        mine = [p for e, p in zip(events, new_model_p) if e["campaign_id"] == cid]
        assert stored[cid][2] == pytest.approx(sum(mine))

    texts = [f"i hate you, you {w} trash" for w in ["vile", "filthy", "stupid", "ugly", "rotten"]] * 4 + [
        f"what a {w} morning run" for w in ["lovely", "sunny", "calm", "crisp", "happy"]
    ] * 4
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    (tmp_path / "l.txt").write_text("\n".join(["1"] * 20 + ["0"] * 20) + "\n")
    args = [
        "ads",
        "train-safety",
        "--embedder",
        "hashing",
        "-w",
        str(ws),
        "--train",
        "hate",
        str(tmp_path / "t.txt"),
        str(tmp_path / "l.txt"),
        "--val",
        "hate",
        str(tmp_path / "t.txt"),
        str(tmp_path / "l.txt"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "hate: 40 held-out examples: AUC 1.000" in out
    assert json.loads((ws / "ads" / "safety.json").read_text())["names"] == ["hate"]

    from roost.workspace import file_hash

    manifest = Workspace(ws).read_manifest("ads")  # ads/ has a manifest like every stage, one entry per artifact
    assert manifest["stage"] == "ads" and manifest["counts"] == {"artifacts": 2}
    made = {name: (a["made_by"], a["sha256"], a["inputs"]) for name, a in manifest["artifacts"].items()}
    assert made == {
        "ctr_model.json": ("roost ads train-ctr", file_hash(ws / "ads" / "ctr_model.json"), {}),
        "safety.json": ("roost ads train-safety", file_hash(ws / "ads" / "safety.json"), {}),
    }


def test_labelled_files_errors_name_file_and_line(tmp_path):
    (tmp_path / "t.txt").write_text("a\nb\nc\n")
    (tmp_path / "l.txt").write_text("0\n1\n")
    with pytest.raises(ValueError, match="t.txt has 3 lines but .*l.txt has 2"):
        read_labelled(tmp_path / "t.txt", tmp_path / "l.txt")
    (tmp_path / "l.txt").write_text("0\nhate\n1\n")
    with pytest.raises(ValueError, match=r"l.txt:2: label must be an integer"):
        read_labelled(tmp_path / "t.txt", tmp_path / "l.txt")


def test_help_for_every_ads_command(capsys):
    for cmd in ("load", "train-ctr", "train-safety", "simulate"):
        with pytest.raises(SystemExit) as e:
            main(["ads", cmd, "--help"])
        assert e.value.code == 0 and "--workspace" in capsys.readouterr().out

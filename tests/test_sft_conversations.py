"""Mining conversations from reply threads, and the chat loss mask."""

from __future__ import annotations

import pytest
from test_sft_fixtures import chat_posts, write_corpus

from roost.tokenizer import RoostTokenizer, TokenizerConfig, render_chat, train_bpe
from roost.train.conversations import MiningConfig, mine_conversations

# A hand-built thread (time order = list order):
#   r   (ann)  "hello?"
#   ├── b1 (bob) "@ann hi ann"                 <- the leading @handle is dropped
#   │   ├── a2 (ann) "how are you"
#   │   │   ├── b3 (bob) "<|mention|> @ann fine"
#   │   │   │   └── c4 (cat) "me too"         <- a third voice: cut here
#   │   │   └── b3x (bob) "good"
#   │   │       └── b3y (bob) "thanks"        <- bob twice in a row: one turn
#   │   └── c2 (cat) "hey bob"                <- third voice at turn 3: cut back to r -> b1, a prefix: dropped
#   │       └── d3 (dan) "hi cat"
#   ├── c1 (cat) "yo ann"
#   │   └── e2 (eve) ""                       <- no text: cut, leaves r -> c1
#   └── a1 (ann) "anyone?"                    <- ann replying to herself: merged into the user turn
#       └── d2 (dan) "me"
#           └── a3 (ann) "great"              <- trailing user turn dropped
THREAD = [
    ("r", "ann", "hello?", None),
    ("b1", "bob", "@ann hi ann", "r"),
    ("c1", "cat", "yo ann", "r"),
    ("a1", "ann", "anyone?", "r"),
    ("a2", "ann", "how are you", "b1"),
    ("c2", "cat", "hey bob", "b1"),
    ("d2", "dan", "me", "a1"),
    ("e2", "eve", "", "c1"),
    ("b3", "bob", "<|mention|> @ann fine", "a2"),
    ("b3x", "bob", "good", "a2"),
    ("a3", "ann", "great", "d2"),
    ("c4", "cat", "me too", "b3"),
    ("b3y", "bob", "thanks", "b3x"),
    ("d3", "dan", "hi cat", "c2"),
    ("lonely", "zed", "nobody replies to me", None),
]


def _mine(ws, **kw):
    write_corpus(ws, THREAD)
    return mine_conversations(ws.corpus, MiningConfig(val_fraction=0.0, **kw))


def _turns(conversation):
    return [(m["role"], m["content"]) for m in conversation.messages]


def test_paths_become_alternating_two_party_conversations(ws):
    mined = _mine(ws)
    assert mined.threads == 1 and mined.paths == 5 and mined.val == []
    got = {c.post_ids: _turns(c) for c in mined.train}
    assert got == {
        ("r", "b1", "a2", "b3"): [
            ("user", "hello?"),
            ("assistant", "hi ann"),
            ("user", "how are you"),
            ("assistant", "fine"),
        ],
        ("r", "b1", "a2", "b3x", "b3y"): [
            ("user", "hello?"),
            ("assistant", "hi ann"),
            ("user", "how are you"),
            ("assistant", "good\nthanks"),
        ],
        ("r", "c1"): [("user", "hello?"), ("assistant", "yo ann")],
        ("r", "a1", "d2"): [("user", "hello?\nanyone?"), ("assistant", "me")],
    }
    assert all(c.thread_id == "r" for c in mined.train)
    # thread order: the first reply's paths come first
    assert [c.post_ids for c in mined.train][:2] == [("r", "b1", "a2", "b3"), ("r", "b1", "a2", "b3x", "b3y")]


def test_many_voiced_paths_kept_when_two_party_is_off_and_system_prompt_leads(ws):
    mined = _mine(ws, two_party=False, system_prompt="be kind")
    got = {c.post_ids: _turns(c)[1:] for c in mined.train}
    assert got[("r", "b1", "c2", "d3")] == [
        ("user", "hello?"),
        ("assistant", "hi ann"),
        ("user", "hey bob"),
        ("assistant", "hi cat"),
    ]
    assert ("r", "b1", "a2", "b3") in got  # c4 is a trailing user turn, dropped
    assert len(got) == 5
    assert all(c.messages[0] == {"role": "system", "content": "be kind"} for c in mined.train)


def test_split_is_by_thread_and_deterministic(ws):
    write_corpus(ws, chat_posts(200))
    a = mine_conversations(ws.corpus, MiningConfig(val_fraction=0.1))
    b = mine_conversations(ws.corpus, MiningConfig(val_fraction=0.1))
    assert [c.post_ids for c in a.train] == [c.post_ids for c in b.train] and len(a.val) == len(b.val)
    assert a.threads == 200 and len(a.train) + len(a.val) == 200  # one full-length conversation per thread
    assert 5 <= len(a.val) <= 40
    assert not {c.thread_id for c in a.train} & {c.thread_id for c in a.val}


def test_a_conversation_is_cut_at_the_first_reply_that_does_not_answer(ws):
    write_corpus(
        ws,
        [
            ("q", "ann", "Is the derby worth the tickets?", None),
            ("a1", "bob", "@ann The derby was a masterclass, worth every penny", "q"),
            ("q2", "ann", "@bob And the away kit?", "a1"),
            ("a2", "bob", "@ann lol 😂", "q2"),
            ("x", "cat", "Any good ramen recipes?", None),
            ("x1", "dan", "@cat Me encanta el fútbol.", "x"),
        ],
    )
    mined = mine_conversations(ws.corpus, MiningConfig(val_fraction=0.0, min_shared_words=1))
    assert [_turns(c) for c in mined.train] == [
        [("user", "Is the derby worth the tickets?"), ("assistant", "The derby was a masterclass, worth every penny")]
    ]
    assert len(mine_conversations(ws.corpus, MiningConfig(val_fraction=0.0, min_shared_words=0)).train) == 2
    with pytest.raises(ValueError, match="--min-shared-words must be >= 0"):
        MiningConfig(min_shared_words=-1)


def test_validation_is_drawn_among_threads_that_kept_a_conversation(ws):
    from roost.tokenizer import ValSplit

    roots = [f"t{k}" for k in range(3)]
    lowest = roots[int(ValSplit.hashes(roots).argmin())]  # the thread a 1% split holds out, as it has no other
    posts = []
    for r in roots:
        reply = "@ann lol" if r == lowest else "@ann The derby was a masterclass"
        posts += [(r, "ann", "Is the derby worth it?", None), (f"{r}-a", "bob", reply, r)]
    write_corpus(ws, posts)
    mined = mine_conversations(ws.corpus, MiningConfig(val_fraction=0.01, min_shared_words=1))
    # the lowest-hash thread lost its only reply, so another one is held out rather than none
    assert len(mined.train) == 1 and len(mined.val) == 1
    assert lowest not in {c.thread_id for c in mined.train + mined.val}


def test_no_threads_names_the_command_to_run(ws):
    write_corpus(ws, [("p1", "ann", "just me", None), ("p2", "bob", "and me", None)])
    with pytest.raises(ValueError, match=r"no reply threads .* run `roost ingest`"):
        mine_conversations(ws.corpus)


def test_bad_mining_config_is_refused():
    with pytest.raises(ValueError, match="--val-fraction must be in"):
        MiningConfig(val_fraction=1.0)


def test_loss_mask_covers_exactly_assistant_content_and_its_end_token():
    tok = RoostTokenizer(
        train_bpe(["hello there", "fine thanks", "be brief"], TokenizerConfig(vocab_size=300, min_frequency=1))
    )
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "fine thanks"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "there"},
    ]
    ids, mask = tok.encode_chat(messages)
    assert tok.decode(ids) == render_chat(messages)
    trained = [i for i, m in zip(ids, mask) if m]
    expected = [*tok.encode("fine thanks"), tok.end_id, *tok.encode("there"), tok.end_id]
    assert trained == expected
    assert tok.decode([i for i, m in zip(ids, mask) if not m]) == (
        "<|bos|><|system|>be brief<|end|><|user|>hello there<|end|><|assistant|><|user|>hello<|end|><|assistant|>"
    )

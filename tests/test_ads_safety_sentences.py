"""A context is as unsafe as its worst sentence: an abusive clause inside an ordinary post is not diluted away."""

from functools import cache

import numpy as np

from roost.ads.brand_safety import SafetyProbes, sentence_split
from roost.ads.embedder import HashingEmbedder
from roost.ads.safety_model import word_tokens

UNSAFE = [
    "i will kill you",
    "tonight i will kill that ref",
    "someone should stab my neighbour",
    "i will stab you all",
    "i will break every bone of you",
    "someone should burn down your house",
    "i will hurt your family",
    "you should be wiped out",
]
SAFE = [
    "the match was great fun",
    "we had pizza after the game",
    "lovely sunny day in the park",
    "the new album drops on friday",
    "my cat slept all afternoon",
    "this recipe needs more garlic",
    "the train was late again",
    "what a goal in the final minute",
    "reading a great novel this week",
    "the team played really well tonight",
    "my camera takes sharp photos",
    "the flight landed early",
]


@cache
def probes() -> SafetyProbes:
    h = HashingEmbedder()
    p = SafetyProbes(space=h.space).bind(h)
    texts = UNSAFE + SAFE
    p.add("t", texts, h(texts), np.array([1] * len(UNSAFE) + [0] * len(SAFE)), {1})
    return p


def test_an_abusive_clause_in_an_ordinary_post_scores_as_its_sentence():
    p, h = probes(), HashingEmbedder()
    diluted = (
        "tonight i will stab that ref. The match was great fun. We had pizza after the game. "
        "Lovely sunny day in the park. Reading a great novel this week."
    )
    calm = "The match was great fun. We had pizza after the game. The flight landed early."
    texts = [calm, diluted]
    served = p.scores(texts, h(texts))
    whole = p.scores(texts, h(texts), sentences=False)
    assert served[1] > 0.5 > served[0]  # order kept: one score per text
    assert served[1] > whole[1]  # the whole post dilutes the clause; its sentence does not
    assert np.all(served >= whole)  # the post itself is one of the parts


def test_one_sentence_texts_score_as_before_and_empty_context_is_empty():
    p, h = probes(), HashingEmbedder()
    texts = ["i will kill you", "my cat slept all afternoon"]
    assert np.allclose(p.scores(texts, h(texts)), p.scores(texts, h(texts), sentences=False))
    assert p.scores([], np.zeros((0, h.dim))).shape == (0,)


def test_sentences_and_word_bigrams():
    assert sentence_split("One. Two!  Three? four") == ["One.", "Two!", "Three?", "four"]
    tokens = word_tokens("Tonight I will kill")
    assert "will_kill" in tokens and "kill" in tokens

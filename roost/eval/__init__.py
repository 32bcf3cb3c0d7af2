"""Evaluation: the served model's validation loss and bits per byte (``lm``), TweetEval classification
with the model next to a TF-IDF baseline (``tweeteval``, ``classify``), whether the chat model answers
held-out questions (``chat``), and the HTML report (``report``)
that puts these beside the search and ads figures (``suite`` runs them all)."""

# The parts `roost eval` runs with no target, in report order (kept here, free of heavy imports, for the CLI).
PARTS = ("lm", "chat", "tweeteval", "search", "ads")

"""Hybrid search over posts: lexical (tantivy BM25), semantic (usearch over model embeddings), fused (normalised
scores or RRF) and ranked by recency, engagement and author quality; live adds and deletes; evaluation.

Open an index with :class:`roost.search.engine.SearchIndex`; build one with
:func:`roost.search.build.build_workspace_index` (``roost index``).
"""

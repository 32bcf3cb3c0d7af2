"""The type every text encoder has: texts -> float32 [N, dim] rows of unit length.

Search (post and query encoders), ads (retrieval, brand safety) and the
evaluation probes take one; ``roost.embeddings.TextEmbedder.embed`` and the ads'
hashing embedder are two. Its own module, so numpy-only code (lexical search,
hashed ads) names it without importing torch.
"""

from collections.abc import Callable

import numpy as np

EmbedFn = Callable[[list[str]], np.ndarray]

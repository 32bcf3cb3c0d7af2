"""The built-in sample network: users, follows, posts with threads and dirt, ads, ground truth.

``generate(out_dir, users=..., posts=..., seed=...)`` writes it; ``roost sample`` is the command.
"""

from roost.sample.generate import SampleConfig, SampleSummary, generate
from roost.sample.topics import TOPICS
from roost.sample.truth import ClickModel

__all__ = ["TOPICS", "ClickModel", "SampleConfig", "SampleSummary", "generate"]

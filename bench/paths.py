"""Where the benchmarks find data: ``../shared/`` beside the repository (never an absolute path of one machine)."""

from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
TWEETEVAL = SHARED / "data" / "tweeteval"

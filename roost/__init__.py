"""roost: train a language model on a social network's posts and put it to work."""

__version__ = "0.1.0"

"""Resumable pretraining: ``roost.train.train(workspace, TrainConfig(...))`` (the loop is in ``loop.py``)."""

from roost.train.config import TrainConfig
from roost.train.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]

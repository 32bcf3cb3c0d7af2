"""Inference: KV cache, sampling, continuous batching (see scheduler.py)."""

from roost.engine.kv_cache import KVCache
from roost.engine.sampling import ParamError, SamplingParams, TokenLogprob
from roost.engine.scheduler import ContextLengthError, Engine, EngineConfig, Event, QueueFull, Request

__all__ = [
    "ContextLengthError",
    "Engine",
    "EngineConfig",
    "Event",
    "KVCache",
    "ParamError",
    "QueueFull",
    "Request",
    "SamplingParams",
    "TokenLogprob",
]

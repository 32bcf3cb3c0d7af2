"""The engine: continuous batching of generation requests on one background thread.

Requests wait in a bounded queue until the slots their ``n`` choices need are
free; then one prefill fills the prompt's keys/values (shared by the choices),
and from then on every running sequence advances in one decode forward per
step, each at its own position. Sequences join and leave between steps; a
cancelled request frees its slots before the next step. Tokens go back to the
caller through a queue per request (an asyncio queue when submitted from a loop).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass

import torch

from roost.engine.detok import TextStream
from roost.engine.kv_cache import KVCache
from roost.engine.sampling import ParamError, Sampler, SamplingParams, TokenLogprob

log = logging.getLogger(__name__)


@dataclass
class EngineConfig:
    slots: int = 8  # sequences decoded together
    queue: int = 64  # requests waiting for slots before submit() refuses
    max_len: int | None = None  # cache length per slot; default: the model's context window
    prefill_tokens: int = 4096  # prompts prefilled in one forward, counting padding, at most


class QueueFull(RuntimeError):
    """Every slot is busy and the waiting queue is full: try again later."""

    retry_after = 1


class ContextLengthError(ParamError):
    """Prompt plus max_tokens do not fit the context window."""


@dataclass
class Event:
    """Generated output of one choice: new text, its tokens' logprobs, and the finish reason when done."""

    index: int
    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob]
    finish_reason: str | None = None  # "stop" | "length" | "error"


class Request:
    """A submitted prompt: iterate it (sync or async) for its ``Event``s; ``cancel()`` to stop it."""

    _ids = itertools.count()

    def __init__(self, prompt_ids: list[int], params: SamplingParams, loop: asyncio.AbstractEventLoop | None):
        self.id = next(self._ids)
        self.prompt_ids, self.params = prompt_ids, params
        self.completion_tokens = 0
        self.cancelled = False
        self._open = params.n
        self._loop = loop
        self._queue: asyncio.Queue | queue.SimpleQueue = asyncio.Queue() if loop else queue.SimpleQueue()
        self._engine: Engine | None = None

    def cancel(self) -> None:
        if not self.cancelled and self._open > 0 and self._engine is not None:
            self.cancelled = True
            self._engine._wake()

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    def _put(self, event: Event | None) -> None:
        if self._loop is None:
            self._queue.put(event)
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the caller's loop is gone; nobody is listening
            self.cancelled = True

    def _emit(self, event: Event) -> None:
        self.completion_tokens += len(event.token_ids)
        self._put(event)
        if event.finish_reason is not None:
            self._open -= 1
            if self._open == 0:
                self._put(None)

    def _end(self) -> None:
        """After cancel: end the caller's iteration, which would otherwise wait for events that never come."""
        if self._open > 0:
            self._open = 0
            self._put(None)

    def __iter__(self):
        while (event := self._queue.get()) is not None:
            yield event

    async def __aiter__(self):
        while (event := await self._queue.get()) is not None:
            yield event


@dataclass
class _Sequence:
    request: Request
    index: int
    slot: int
    sampler: Sampler
    stream: TextStream
    length: int = 0  # tokens in the cache
    last_token: int = 0  # sampled, not yet in the cache
    generated: int = 0


class Engine:
    """Generation for many concurrent requests over one model; see the module docstring."""

    def __init__(self, model: torch.nn.Module, tokenizer, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        self.model = model.eval()
        self.tokenizer = tokenizer
        mc = model.config
        self.max_len = self.config.max_len or mc.max_seq_len
        if self.max_len > mc.max_seq_len:
            raise ValueError(f"max_len {self.max_len} is past the model's context window {mc.max_seq_len}")
        p = next(model.parameters())
        self.cache = KVCache(
            mc.n_layer, self.config.slots, mc.n_kv_head, self.max_len, mc.head_dim, dtype=p.dtype, device=p.device
        )
        self.device = p.device
        self.vocab_size = mc.vocab_size
        # A generated end of turn, end of text or new turn ends the choice; its text is never shown.
        self.stop_ids = {
            tokenizer.bos_id,
            tokenizer.eos_id,
            tokenizer.pad_id,
            tokenizer.end_id,
            *tokenizer.role_ids.values(),
        }
        self._free = list(range(self.config.slots))
        self._waiting: deque[Request] = deque()
        self._running: list[_Sequence] = []
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="roost-engine", daemon=True)
        self._thread.start()

    # ---- the caller's side -------------------------------------------------------------------

    @property
    def running_count(self) -> int:
        """Slots in use."""
        return self.config.slots - len(self._free)

    @property
    def waiting_count(self) -> int:
        return len(self._waiting)

    def check(self, prompt_ids: list[int], params: SamplingParams) -> None:
        """Raise ParamError when the request can never run."""
        params.validate()
        if not prompt_ids:
            raise ParamError("prompt", "the prompt is empty")
        if params.n > self.config.slots:
            raise ParamError("n", f"n={params.n} is more than this server's {self.config.slots} slots")
        if len(prompt_ids) + params.max_tokens > self.max_len:
            raise ContextLengthError(
                "max_tokens",
                f"this model's context window is {self.max_len} tokens; the prompt has "
                f"{len(prompt_ids)} and max_tokens asks for {params.max_tokens} more "
                f"({len(prompt_ids) + params.max_tokens} in all). Shorten the prompt or lower max_tokens.",
            )
        bad = [t for t in prompt_ids if not 0 <= t < self.vocab_size]
        if bad:
            raise ParamError("prompt", f"token id {bad[0]} is outside the vocabulary [0, {self.vocab_size})")

    def submit(
        self, prompt_ids: list[int], params: SamplingParams, loop: asyncio.AbstractEventLoop | None = None
    ) -> Request:
        """Queue a request; raises ParamError for bad input and QueueFull when the queue is full."""
        self.check(prompt_ids, params)
        request = Request(list(prompt_ids), params, loop)
        request._engine = self
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if len(self._waiting) >= self.config.queue + len(self._free):  # those about to get a slot don't wait
                raise QueueFull(f"all {self.config.slots} slots are busy and {self.config.queue} requests wait")
            self._waiting.append(request)
            self._cv.notify()
        return request

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> list[str]:
        """Blocking helper: the text of each of the n choices."""
        texts = [""] * params.n
        for event in self.submit(prompt_ids, params):
            texts[event.index] += event.text
        return texts

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=10)

    def _wake(self) -> None:
        with self._cv:
            self._cv.notify()

    # ---- the scheduler thread ----------------------------------------------------------------

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cv:
                    while not self._closed and not self._waiting and not self._running:
                        self._cv.wait()
                    if self._closed:
                        break
                    admitted = self._admit()
                try:
                    for batch in self._prefill_batches(admitted):
                        self._prefill(batch)
                    self._drop_cancelled()
                    if self._running:
                        self._decode()
                except Exception:  # a bug, not bad input: fail what runs, keep serving
                    log.exception("engine step failed")
                    self._fail(admitted)
        for seq in list(self._running):
            self._finish(seq, "error")
        for request in self._waiting:
            for i in range(request.params.n):
                request._emit(Event(i, "", [], [], "error"))

    def _fail(self, admitted: list[tuple[Request, list[int]]]) -> None:
        """End every running choice, and admitted requests not yet running, with finish_reason 'error'."""
        running = {id(seq.request) for seq in self._running}
        for request, slots in admitted:
            if id(request) not in running:
                for slot in slots:
                    heapq.heappush(self._free, slot)
                for i in range(request.params.n):
                    request._emit(Event(i, "", [], [], "error"))
        for seq in list(self._running):
            self._finish(seq, "error")

    def _admit(self) -> list[tuple[Request, list[int]]]:
        """Take waiting requests, in order, while their choices fit the free slots (caller holds the lock)."""
        admitted = []
        while self._waiting:
            request = self._waiting[0]
            if request.cancelled:
                self._waiting.popleft()._end()
                continue
            if request.params.n > len(self._free):
                break
            admitted.append((self._waiting.popleft(), [heapq.heappop(self._free) for _ in range(request.params.n)]))
        return admitted

    def _prefill(self, batch: list[tuple[Request, list[int]]]) -> None:
        """One forward over the prompts (right-padded), then each choice samples its first token.

        Pads write keys past a prompt's end; they are never attended to (a
        query sees only positions up to its own) and decoding overwrites them.
        """
        lengths = [len(request.prompt_ids) for request, _ in batch]
        ids = torch.full((len(batch), max(lengths)), self.tokenizer.pad_id, dtype=torch.long)
        for row, (request, _) in enumerate(batch):
            ids[row, : lengths[row]] = torch.tensor(request.prompt_ids)
        ids = ids.to(self.device)
        positions = torch.arange(ids.shape[1], device=self.device).expand_as(ids)
        self.cache.begin([slots[0] for _, slots in batch], positions)
        hidden = self.model.forward_hidden(ids, kv_cache=self.cache, positions=positions)
        last = hidden[torch.arange(len(batch)), torch.tensor(lengths) - 1]
        logits = self.model.lm_head(last).float().cpu()
        for row, (request, slots) in enumerate(batch):
            p = request.params
            for i, slot in enumerate(slots):
                if i:
                    self.cache.copy_slot(slots[0], slot, lengths[row])
                seed = None if p.seed is None else p.seed + i
                seq = _Sequence(
                    request,
                    i,
                    slot,
                    Sampler(p, self.vocab_size, seed, self.tokenizer.placeholder_ids),
                    TextStream(self.tokenizer.decode, p.stop),
                    length=lengths[row],
                )
                self._running.append(seq)
                self._accept(seq, *seq.sampler(logits[row]))

    def _prefill_batches(self, admitted: list[tuple[Request, list[int]]]) -> list[list[tuple[Request, list[int]]]]:
        """Split admitted requests into prefill batches of at most ``prefill_tokens`` padded tokens."""
        batches: list[list] = []
        for item in admitted:
            longest = max([len(r.prompt_ids) for r, _ in batches[-1]] + [len(item[0].prompt_ids)]) if batches else 0
            if batches and longest * (len(batches[-1]) + 1) <= self.config.prefill_tokens:
                batches[-1].append(item)
            else:
                batches.append([item])
        return batches

    def _decode(self) -> None:
        seqs = sorted(self._running, key=lambda s: s.slot)
        tokens = torch.tensor([[s.last_token] for s in seqs], device=self.device)
        positions = torch.tensor([[s.length] for s in seqs], device=self.device)
        self.cache.begin([s.slot for s in seqs], positions)
        logits = self._last_logits(tokens, positions)
        for row, seq in enumerate(seqs):
            seq.length += 1
            if not seq.request.cancelled:
                self._accept(seq, *seq.sampler(logits[row]))

    def _last_logits(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Float logits [B, V] of each row's last position (the lm_head runs on that position only)."""
        hidden = self.model.forward_hidden(ids, kv_cache=self.cache, positions=positions)
        return self.model.lm_head(hidden[:, -1]).float().cpu()

    def _accept(self, seq: _Sequence, token: int, logprob: TokenLogprob | None) -> None:
        """Take a sampled token: release its text, or finish the sequence."""
        seq.generated += 1
        if token in self.stop_ids and not seq.request.params.ignore_eos:
            self._finish(seq, "stop", [token], [logprob] if logprob else [])
            return
        seq.last_token = token
        text = seq.stream.add(token)
        lps = [logprob] if logprob else []
        if seq.stream.stopped:
            self._finish(seq, "stop", [token], lps, text)
        elif seq.generated >= seq.request.params.max_tokens or seq.length >= self.max_len:
            self._finish(seq, "length", [token], lps, text)
        else:
            seq.request._emit(Event(seq.index, text, [token], lps))

    def _finish(
        self, seq: _Sequence, reason: str, token_ids: list[int] = (), logprobs: list = (), text: str = ""
    ) -> None:
        text += seq.stream.flush() if reason != "error" else ""
        self._running.remove(seq)
        heapq.heappush(self._free, seq.slot)
        seq.request._emit(Event(seq.index, text, list(token_ids), list(logprobs), reason))

    def _drop_cancelled(self) -> None:
        for seq in [s for s in self._running if s.request.cancelled]:
            self._running.remove(seq)
            heapq.heappush(self._free, seq.slot)
            seq.request._end()

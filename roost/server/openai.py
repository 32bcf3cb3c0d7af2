"""The openai surface: /v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings.

Shapes follow OpenAI's API so the official client works unchanged. Generation
goes through the engine's background thread; embeddings through
roost.embeddings.TextEmbedder. Streams are server-sent events ending in
``data: [DONE]``. A client that goes away cancels its request, which frees its
slots before the engine's next step.

Tokenizing and embedding run in the threadpool, never on the event loop, and
only after the text's length is checked against ``Limits.max_prompt_chars``
(and the input count against ``Limits.max_embedding_inputs``): one client's
megabyte prompt must not stall every other route.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from roost.server.auth import require_api_key
from roost.server.errors import APIError
from roost.server.limits import Limits
from roost.server.openai_bodies import ChatRequest, CompletionRequest, EmbeddingRequest, SamplingBody
from roost.server.state import ServedModel, ServerState

if TYPE_CHECKING:
    import numpy as np

    from roost.embeddings import TextEmbedder
    from roost.engine import Engine
    from roost.tokenizer import RoostTokenizer

router = APIRouter(dependencies=[Depends(require_api_key)])


# ---- the service -------------------------------------------------------------------------------


@dataclass
class OpenAIService:
    engine: Engine
    embedder: TextEmbedder  # over the engine's weights
    tokenizer: RoostTokenizer
    model_name: str
    created: int = field(default_factory=lambda: int(time.time()))

    def close(self) -> None:
        self.engine.close()


def open_service(state: ServerState, served: ServedModel | None) -> OpenAIService | None:
    """Start the engine on the served model (loaded once by the app); None without a model."""
    if served is None:
        return None
    from roost.engine import Engine, EngineConfig

    engine = Engine(served.model, served.tokenizer, EngineConfig(slots=state.config.slots, queue=state.config.queue))
    return OpenAIService(engine, served.embedder, served.tokenizer, state.config.model_name)


def _service(request: Request, model: str | None = None) -> OpenAIService:
    state: ServerState = request.app.state.roost
    service = state.services.openai
    if service is None:
        raise APIError(
            404,
            f"this server has no model loaded ({state.workspace.model} is missing); "
            "run `roost train` or `roost export` to make one",
            param="model",
            code="model_not_found",
        )
    if model is not None and model != service.model_name:
        raise APIError(
            404,
            f"The model '{model}' does not exist. This server serves: {service.model_name}.",
            param="model",
            code="model_not_found",
        )
    return service


@router.get("/v1/models")
def list_models(request: Request) -> dict:
    service = request.app.state.roost.services.openai
    return {"object": "list", "data": [_model_card(service)] if service else []}


@router.get("/v1/models/{model}")
def get_model(model: str, request: Request) -> dict:
    return _model_card(_service(request, model))


def _model_card(service: OpenAIService) -> dict:
    return {"id": service.model_name, "object": "model", "created": service.created, "owned_by": "roost"}


# ---- generation --------------------------------------------------------------------------------


def _limits(request: Request) -> Limits:
    return request.app.state.roost.config.limits


def _check_length(size: int, limits: Limits, param: str, what: str = "the prompt") -> None:
    """Refuse text too long to tokenize here before anything reads it (a token is at least one character)."""
    if size > limits.max_prompt_chars:
        raise APIError(
            400,
            f"{param}: {what} is {size} characters (or token ids) long; this server takes at most "
            f"{limits.max_prompt_chars} (--max-prompt-chars)",
            param=param,
            code="context_length_exceeded",
        )


def _sampling(body: SamplingBody, max_tokens: int, logprobs: int | None):
    from roost.engine import SamplingParams

    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > 4:
        raise APIError(400, f"stop: at most 4 stop strings, got {len(stop)}", param="stop")
    if any(not s for s in stop):
        raise APIError(400, "stop: stop strings must not be empty", param="stop")
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_k=body.top_k,
        top_p=body.top_p,
        seed=body.seed,
        stop=stop,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        logprobs=logprobs,
        n=body.n,
        ignore_eos=body.ignore_eos,
    )


def _chat_texts(body: ChatRequest, limits: Limits) -> list[str]:
    """Each message's text; the messages' length together checked against the limit."""
    texts = [
        m.content if isinstance(m.content, str) else "".join(p.text for p in m.content or []) for m in body.messages
    ]
    _check_length(sum(map(len, texts)), limits, "messages", "the conversation")
    return texts


def _chat_prompt(service: OpenAIService, body: ChatRequest, texts: list[str]) -> list[int]:
    """The chat template's token ids (in the threadpool: tokenizing is CPU work)."""
    from roost.tokenizer import SPECIAL_TOKENS

    messages = []
    for i, (m, content) in enumerate(zip(body.messages, texts)):
        bad = next((t for t in SPECIAL_TOKENS if t in content), None)
        if bad:
            raise APIError(
                400, f"messages[{i}].content contains the reserved token {bad!r}", param=f"messages.{i}.content"
            )
        messages.append({"role": "system" if m.role == "developer" else m.role, "content": content})
    return service.tokenizer.encode_chat(messages, add_generation_prompt=True)[0]


def _completion_input(body: CompletionRequest, limits: Limits) -> str | list[int]:
    """The one prompt of the request, its length checked."""
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        if len(prompt) != 1:
            raise APIError(400, f"prompt: one prompt per request, got a batch of {len(prompt)}", param="prompt")
        prompt = prompt[0]
    if body.echo or body.suffix:
        raise APIError(400, "echo and suffix are not supported", param="echo" if body.echo else "suffix")
    _check_length(len(prompt), limits, "prompt")
    return prompt


def _completion_prompt(service: OpenAIService, prompt: str | list[int]) -> list[int]:
    """Token ids of the prompt (in the threadpool when it is text)."""
    if isinstance(prompt, str):
        return [service.tokenizer.bos_id, *service.tokenizer.encode(prompt)]
    return list(prompt)


def _submit(service: OpenAIService, prompt: list[int], params, prompt_param: str):
    from roost.engine import ContextLengthError, ParamError, QueueFull

    try:
        return service.engine.submit(prompt, params, loop=asyncio.get_running_loop())
    except QueueFull as e:
        raise APIError(
            429,
            f"the server is busy: {e}; retry after {e.retry_after} s",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(e.retry_after)},
        ) from None
    except ContextLengthError as e:
        raise APIError(400, str(e), param=prompt_param, code="context_length_exceeded") from None
    except ParamError as e:
        raise APIError(400, str(e), param=prompt_param if e.param == "prompt" else e.param) from None


async def _watch_disconnect(request: Request, job) -> None:
    """Cancel ``job`` when the client goes away (for responses that are not streamed)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancel()


async def _events(request: Request, job) -> AsyncIterator:
    """The job's events, recording time to first token and inter-token latency; cancels the job if abandoned."""
    metrics = request.app.state.metrics
    start = last = time.perf_counter()
    first = True
    try:
        async for event in job:
            now = time.perf_counter()
            if event.token_ids:
                if first:
                    metrics.time_to_first_token.observe(now - start)
                    first = False
                else:
                    metrics.inter_token_latency.observe(now - last)
                last = now
            yield event
    finally:
        job.cancel()
        metrics.prompt_tokens.inc(job.prompt_tokens)
        metrics.generation_tokens.inc(job.completion_tokens)


async def _collect(request: Request, job) -> list[dict]:
    choices = [{"text": "", "token_ids": [], "logprobs": [], "finish_reason": None} for _ in range(job.params.n)]
    watcher = asyncio.create_task(_watch_disconnect(request, job))
    try:
        async for e in _events(request, job):
            c = choices[e.index]
            c["text"] += e.text
            c["logprobs"] += e.logprobs
            c["finish_reason"] = e.finish_reason or c["finish_reason"]
    finally:
        watcher.cancel()
    return choices


def _usage(job) -> dict:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "total_tokens": job.prompt_tokens + job.completion_tokens,
    }


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class _Logprobs:
    """Logprobs in OpenAI's two shapes: chat's ``content`` list and completions' parallel lists."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.byte_of = _byte_table()

    def token_bytes(self, token_id: int) -> list[int]:
        piece = self.tok.hf.id_to_token(token_id) or ""
        if token_id in self.tok.special_ids.values():
            return list(piece.encode())
        return [self.byte_of.get(ch, 0) for ch in piece]

    def text(self, token_id: int) -> str:
        return bytes(self.token_bytes(token_id)).decode("utf-8", errors="replace")

    def chat(self, lps: list) -> dict:
        def entry(tid: int, lp: float) -> dict:
            return {"token": self.text(tid), "logprob": lp, "bytes": self.token_bytes(tid)}

        return {
            "content": [{**entry(x.token_id, x.logprob), "top_logprobs": [entry(t, v) for t, v in x.top]} for x in lps]
        }

    def completion(self, lps: list, offset: int = 0) -> dict:
        tokens = [self.text(x.token_id) for x in lps]
        offsets, pos = [], offset
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
        return {
            "tokens": tokens,
            "token_logprobs": [x.logprob for x in lps],
            "top_logprobs": [{self.text(t): v for t, v in x.top} for x in lps],
            "text_offset": offsets,
        }


def _byte_table() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: the character a byte-level BPE token uses -> the byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, request: Request):
    service = _service(request, body.model)
    prompt = await run_in_threadpool(_chat_prompt, service, body, _chat_texts(body, _limits(request)))
    max_tokens = body.max_completion_tokens or body.max_tokens or max(1, service.engine.max_len - len(prompt))
    top = body.top_logprobs or 0
    if body.top_logprobs is not None and not body.logprobs:
        raise APIError(400, "top_logprobs needs logprobs=true", param="top_logprobs")
    job = _submit(service, prompt, _sampling(body, max_tokens, top if body.logprobs else None), "messages")
    rid, created, lp = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), _Logprobs(service.tokenizer)
    head = {"id": rid, "created": created, "model": service.model_name, "system_fingerprint": None}
    if not body.stream:
        choices = await _collect(request, job)
        return {
            **head,
            "object": "chat.completion",
            "usage": _usage(job),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": c["text"]},
                    "logprobs": lp.chat(c["logprobs"]) if body.logprobs else None,
                    "finish_reason": c["finish_reason"],
                }
                for i, c in enumerate(choices)
            ],
        }

    usage = body.stream_options is not None and body.stream_options.include_usage

    def chunk(choices: list[dict], **extra) -> str:
        return _sse(
            {
                **head,
                "object": "chat.completion.chunk",
                "choices": choices,
                **({"usage": None} if usage else {}),
                **extra,
            }
        )

    async def stream() -> AsyncIterator[str]:
        for i in range(body.n):
            yield chunk(
                [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]
            )
        async for e in _events(request, job):
            if e.text or e.logprobs:
                yield chunk(
                    [
                        {
                            "index": e.index,
                            "delta": {"content": e.text},
                            "logprobs": lp.chat(e.logprobs) if body.logprobs else None,
                            "finish_reason": None,
                        }
                    ]
                )
            if e.finish_reason:
                yield chunk([{"index": e.index, "delta": {}, "logprobs": None, "finish_reason": e.finish_reason}])
        if usage:
            yield chunk([], usage=_usage(job))
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request):
    service = _service(request, body.model)
    prompt = await run_in_threadpool(_completion_prompt, service, _completion_input(body, _limits(request)))
    job = _submit(service, prompt, _sampling(body, body.max_tokens or 16, body.logprobs), "prompt")
    rid, created, lp = f"cmpl-{uuid.uuid4().hex}", int(time.time()), _Logprobs(service.tokenizer)
    head = {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": service.model_name,
        "system_fingerprint": None,
    }
    with_lp = body.logprobs is not None
    if not body.stream:
        choices = await _collect(request, job)
        return {
            **head,
            "usage": _usage(job),
            "choices": [
                {
                    "index": i,
                    "text": c["text"],
                    "logprobs": lp.completion(c["logprobs"]) if with_lp else None,
                    "finish_reason": c["finish_reason"],
                }
                for i, c in enumerate(choices)
            ],
        }

    usage = body.stream_options is not None and body.stream_options.include_usage

    def chunk(choices: list[dict], **extra) -> str:
        return _sse({**head, "choices": choices, **({"usage": None} if usage else {}), **extra})

    async def stream() -> AsyncIterator[str]:
        offsets = [0] * body.n
        async for e in _events(request, job):
            if e.text or e.logprobs:
                yield chunk(
                    [
                        {
                            "index": e.index,
                            "text": e.text,
                            "finish_reason": None,
                            "logprobs": lp.completion(e.logprobs, offsets[e.index]) if with_lp else None,
                        }
                    ]
                )
                offsets[e.index] += len(e.text)
            if e.finish_reason:
                yield chunk([{"index": e.index, "text": "", "logprobs": None, "finish_reason": e.finish_reason}])
        if usage:
            yield chunk([], usage=_usage(job))
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


# ---- embeddings --------------------------------------------------------------------------------


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict:
    service, limits = _service(request, body.model), _limits(request)
    raw = body.input
    if isinstance(raw, str) or (raw and isinstance(raw[0], int)):
        raw = [raw]
    if not raw:
        raise APIError(400, "input: give at least one text", param="input")
    if len(raw) > limits.max_embedding_inputs:
        raise APIError(
            400,
            f"input: {len(raw)} inputs; this server embeds at most {limits.max_embedding_inputs} "
            "per request (--max-embedding-inputs)",
            param="input",
        )
    for i, x in enumerate(raw):
        _check_length(len(x), limits, "input", f"input[{i}]")
    vocab = service.tokenizer.vocab_size
    bad = next((i for i, x in enumerate(raw) if isinstance(x, list) and any(not 0 <= t < vocab for t in x)), None)
    if bad is not None:
        raise APIError(400, f"input[{bad}]: token ids must be in [0, {vocab})", param="input")
    vectors, n_tokens = await run_in_threadpool(_embed, service, raw)

    def encode(v):
        return base64.b64encode(v.tobytes()).decode() if body.encoding_format == "base64" else v.tolist()

    return {
        "object": "list",
        "model": service.model_name,
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }


def _embed(service: OpenAIService, raw: list[str] | list[list[int]]) -> tuple[np.ndarray, int]:
    """Vectors (little-endian float32) and the prompt token count of ``raw`` (in the threadpool)."""
    import numpy as np

    texts = [x if isinstance(x, str) else service.tokenizer.decode(x) for x in raw]
    for i, t in enumerate(texts):
        if not t.strip():
            raise APIError(400, f"input[{i}]: the text is empty", param="input")
    vectors = np.asarray(service.embedder.embed(texts), dtype="<f4")
    return vectors, sum(len(x) if isinstance(x, list) else len(service.tokenizer.encode(x)) for x in raw)

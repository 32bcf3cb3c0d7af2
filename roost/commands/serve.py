"""``roost serve``: the HTTP server (OpenAI-compatible chat, search, ads, metrics)."""

from __future__ import annotations

import argparse

from roost.cli import UserError, add_workspace_arg
from roost.server.limits import Limits


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the model (OpenAI API), search and ads over HTTP",
        description="Serve workspace/model behind an OpenAI-compatible API (/v1/chat/completions, "
        "/v1/completions, /v1/embeddings, /v1/models), plus search, ads, /health and "
        "/metrics (Prometheus). Generation uses continuous batching over --slots.",
        epilog="Ad impressions and clicks are committed so they survive a SIGKILL of the server "
        "(SQLite WAL, synchronous=NORMAL); set ROOST_ADS_DURABILITY=power to also survive "
        "an OS crash or power cut (synchronous=FULL, one fsync per decision). With --ads-db postgresql://..., "
        "the same choice sets synchronous_commit (off, or on with power) and replicas share the money "
        "(docs/serving-replicas.md).",
    )
    add_workspace_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept this API key (repeat for several); without any, the API needs no key",
    )
    p.add_argument("--admin-key", default=None, metavar="KEY", help="key for /admin routes (without it they refuse)")
    p.add_argument("--slots", type=int, default=8, help="sequences generated together (default 8)")
    p.add_argument(
        "--queue",
        type=int,
        default=64,
        help="requests that may wait for a slot; more get 429 with Retry-After (default 64)",
    )
    p.add_argument("--model-name", default="roost", help="the model id clients ask for (default roost)")
    p.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="base URL clients reach this server at, used in the click links it hands out "
        "(default http://HOST:PORT; never taken from a request's Host header)",
    )
    p.add_argument(
        "--search-rerank",
        type=int,
        default=0,
        metavar="N",
        help="hybrid search re-ranks its top N posts by the model's query likelihood: slower, and on "
        "the figures in BENCHMARKS.md not better (default 0: off)",
    )
    p.add_argument(
        "--ads-db",
        default=None,
        metavar="URL_OR_PATH",
        help="the ads database: a postgresql://user@host:port/db URL that several replicas share (run "
        "`roost ads migrate --ads-db URL` first) or a SQLite file (default: WORKSPACE/ads.db)",
    )
    p.add_argument(
        "--llm-url",
        default=None,
        metavar="URL",
        help="send /v1/chat/completions and /v1/completions to this OpenAI-compatible engine (vLLM, "
        "SGLang, another roost serve), e.g. http://gpu-host:8001/v1, instead of the built-in engine",
    )
    p.add_argument(
        "--llm-api-key",
        default=None,
        metavar="KEY",
        help="API key for --llm-url (default $ROOST_LLM_API_KEY; without either, the client's own "
        "Authorization header is forwarded)",
    )
    p.add_argument(
        "--search-partition",
        action="append",
        default=[],
        dest="search_partitions",
        metavar="URLS",
        help="serve search from partition servers (`roost serve-partition`), one flag per partition in "
        "order, its replicas' URLs comma-separated: --search-partition http://h1:8101,http://h2:8101 "
        "--search-partition http://h1:8102 (docs/search-partitions.md)",
    )
    p.add_argument("--search-partition-key", default=None, metavar="KEY", help="the partition servers' --key")
    p.add_argument(
        "--search-deadline",
        type=float,
        default=2.0,
        metavar="S",
        help="a partition that has not answered a query within this many seconds is left out and the "
        "answer marked partial (default 2)",
    )
    p.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, stop accepting connections and give requests in flight this many seconds to "
        "finish, streamed answers included (default 30)",
    )
    limits = Limits()
    g = p.add_argument_group(
        "limits",
        "what one request or one client may ask; past them: 413, 400 or 429 with "
        "Retry-After (a client is its API key, else its address)",
    )
    g.add_argument(
        "--max-body-bytes",
        type=int,
        default=limits.max_body_bytes,
        help=f"largest request body (default {limits.max_body_bytes})",
    )
    g.add_argument(
        "--max-prompt-chars",
        type=int,
        default=limits.max_prompt_chars,
        help="longest prompt, conversation or embedding input, checked before tokenizing "
        f"(default {limits.max_prompt_chars})",
    )
    g.add_argument(
        "--max-embedding-inputs",
        type=int,
        default=limits.max_embedding_inputs,
        help=f"texts per /v1/embeddings request (default {limits.max_embedding_inputs})",
    )
    g.add_argument(
        "--max-concurrency",
        type=int,
        default=limits.concurrency,
        help=f"requests in flight per client (default {limits.concurrency})",
    )
    g.add_argument(
        "--rate-limit",
        type=float,
        default=limits.rate,
        help=f"requests per second per client, sustained; 0 turns it off (default {limits.rate:g})",
    )
    g.add_argument(
        "--rate-burst",
        type=int,
        default=limits.burst,
        help=f"requests a client may send at once (default {limits.burst})",
    )
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from pathlib import Path
    from urllib.parse import urlsplit

    import uvicorn

    from roost.server.app import ServeConfig, create_app

    if args.slots < 1:
        raise UserError(f"--slots must be at least 1, got {args.slots}")
    if args.queue < 0:
        raise UserError(f"--queue must be 0 or more, got {args.queue}")
    if not 0 <= args.search_rerank <= 100:
        raise UserError(f"--search-rerank must be between 0 and 100, got {args.search_rerank}")
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    if any(not k for k in args.api_key):
        raise UserError("--api-key must not be empty")
    if args.public_url is not None and urlsplit(args.public_url).scheme not in ("http", "https"):
        raise UserError(f"--public-url must be an http or https URL, got {args.public_url!r}")
    if args.llm_url is not None and (
        urlsplit(args.llm_url).scheme not in ("http", "https") or not urlsplit(args.llm_url).netloc
    ):
        raise UserError(f"--llm-url must be an http or https URL, got {args.llm_url!r}")
    if (
        args.ads_db is not None
        and "://" in args.ads_db
        and not args.ads_db.startswith(("postgresql://", "postgres://"))
    ):
        raise UserError("--ads-db must be a postgresql:// URL or a file path")
    if args.search_deadline <= 0:
        raise UserError(f"--search-deadline must be more than 0, got {args.search_deadline}")
    for urls in args.search_partitions:
        for url in urls.split(","):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise UserError(f"--search-partition takes http(s) URLs, comma-separated; got {url!r}")
    if args.graceful_timeout < 0:
        raise UserError(f"--graceful-timeout must be 0 or more, got {args.graceful_timeout}")
    try:
        limits = Limits(
            max_body_bytes=args.max_body_bytes,
            max_prompt_chars=args.max_prompt_chars,
            max_embedding_inputs=args.max_embedding_inputs,
            concurrency=args.max_concurrency,
            rate=args.rate_limit,
            burst=args.rate_burst,
        )
    except ValueError as e:
        raise UserError(f"limits: {e}") from None
    config = ServeConfig(
        workspace=Path(args.workspace),
        host=args.host,
        port=args.port,
        api_keys=list(args.api_key),
        admin_key=args.admin_key,
        slots=args.slots,
        queue=args.queue,
        model_name=args.model_name,
        public_url=args.public_url,
        limits=limits,
        search_rerank=args.search_rerank,
        ads_db=args.ads_db,
        llm_url=args.llm_url,
        llm_api_key=args.llm_api_key,
        search_partitions=list(args.search_partitions),
        search_partition_key=args.search_partition_key,
        search_deadline_s=args.search_deadline,
    )
    app = create_app(config)
    if args.public_url is None and args.host in ("0.0.0.0", "::", ""):
        print(
            f"roost serve: click links will point at {config.base_url()}, which clients cannot reach; "
            "pass --public-url with the address they use"
        )
    if app.state.roost.services.openai is None and not args.llm_url:
        print(f"roost serve: no model at {config.workspace / 'model'}; the /v1 routes answer 404 until one exists")
    # SIGTERM: uvicorn closes the listener, lets requests in flight finish (up to the timeout), then shuts down
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=args.graceful_timeout)
    return 0

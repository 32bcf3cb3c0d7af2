"""``roost serve``: the HTTP server (OpenAI-compatible chat, search, ads, metrics)."""

from __future__ import annotations

import argparse

from roost.cli import UserError, add_workspace_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the model (OpenAI API), search and ads over HTTP",
                       description="Serve workspace/model behind an OpenAI-compatible API (/v1/chat/completions, "
                                   "/v1/completions, /v1/embeddings, /v1/models), plus search, ads, /health and "
                                   "/metrics (Prometheus). Generation uses continuous batching over --slots.",
                       epilog="Ad impressions and clicks are committed so they survive a SIGKILL of the server "
                              "(SQLite WAL, synchronous=NORMAL); set ROOST_ADS_DURABILITY=power to also survive "
                              "an OS crash or power cut (synchronous=FULL, one fsync per decision).")
    add_workspace_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="accept this API key (repeat for several); without any, the API needs no key")
    p.add_argument("--admin-key", default=None, metavar="KEY", help="key for /admin routes (without it they refuse)")
    p.add_argument("--slots", type=int, default=8, help="sequences generated together (default 8)")
    p.add_argument("--queue", type=int, default=64,
                   help="requests that may wait for a slot; more get 429 with Retry-After (default 64)")
    p.add_argument("--model-name", default="roost", help="the model id clients ask for (default roost)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    import uvicorn

    from roost.server.app import ServeConfig, create_app

    if args.slots < 1:
        raise UserError(f"--slots must be at least 1, got {args.slots}")
    if args.queue < 0:
        raise UserError(f"--queue must be 0 or more, got {args.queue}")
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    if any(not k for k in args.api_key):
        raise UserError("--api-key must not be empty")
    config = ServeConfig(workspace=Path(args.workspace), host=args.host, port=args.port, api_keys=list(args.api_key),
                         admin_key=args.admin_key, slots=args.slots, queue=args.queue, model_name=args.model_name)
    app = create_app(config)
    if "openai" not in app.state.roost.services:
        print(f"roost serve: no model at {config.workspace / 'model'}; the /v1 routes answer 404 until one exists")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0

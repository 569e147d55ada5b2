"""``serve``: tuning as a service (Kruize-compatible REST, the ``/v1`` API, Katib's gRPC API).

Needs the ``serve`` extra. The token is read from a file (a mounted Secret on a cluster),
never from the command line, where ``ps`` would show it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hpo_kfp.cli._common import add_store_options, store_url, type_prefix
from hpo_kfp.errors import UsageError
from hpo_kfp.store import LOCAL_STORE

__all__ = ["register"]

_KIB = 1024


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="tuning as a service: Kruize-compatible REST, the /v1 REST API, Katib's Suggestion gRPC API",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=8085, help="REST port (default 8085, Kruize's; 0: any free)"
    )
    serve.add_argument(
        "--grpc-port",
        type=int,
        help="serve Katib's Suggestion gRPC API on this port too (Katib uses 6789; 0: any free)",
    )
    serve.add_argument(
        "--grpc-host",
        help="address the gRPC server binds, when not --host (e.g. 0.0.0.0 in a Katib suggestion pod)",
    )
    serve.add_argument(
        "--token-file",
        help="file holding the bearer token every request must carry (Authorization: Bearer TOKEN)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without a token (anyone who reaches the port can tune and delete)",
    )
    serve.add_argument(
        "--max-request-kib",
        type=int,
        default=1024,
        help="largest request body in KiB (default 1024)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="processes serving REST on the port (default 1; one per core)"
    )
    serve.add_argument(
        "--trial-lease",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="a handed-out trial whose client reports nothing for this long is handed out again "
        "(default 3600; 0: never)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request (never its headers)")
    add_store_options(serve, LOCAL_STORE, namespace=False)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        from hpo_kfp.service.server import ServeOptions, serve
    except ImportError as error:
        raise UsageError(f"serve: needs the serve extra: pip install 'hpo-kfp[serve]' ({error})") from None
    for flag, port in (("--port", args.port), ("--grpc-port", args.grpc_port)):
        if port is not None and not 0 <= port < 65536:
            raise UsageError(f"{flag}: must be between 0 and 65535, but got {port}")
    if args.workers < 1:
        raise UsageError(f"--workers: must be at least 1, but got {args.workers}")
    if args.trial_lease < 0:
        raise UsageError(f"--trial-lease: must be 0 (never) or more seconds, but got {args.trial_lease}")
    if args.max_request_kib < 1:
        raise UsageError(f"--max-request-kib: must be at least 1, but got {args.max_request_kib}")
    options = ServeOptions(
        store=store_url(args),
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        grpc_host=args.grpc_host,
        token=_token(args.token_file),
        insecure=args.insecure,
        max_body=args.max_request_kib * _KIB,
        access_log=args.access_log,
        workers=args.workers,
        type_prefix=type_prefix(args),
        trial_lease=args.trial_lease,
    )
    code = 0
    try:
        serve(options)
    except SystemExit as stopped:  # SIGTERM, after the servers' bounded shutdown
        code = stopped.code if isinstance(stopped.code, int) else 1
    # Ended now, whatever a request still computes in a worker thread (gRPC's pool threads
    # are joined at interpreter exit: a long GetSuggestions kept the process up past SIGTERM).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"--token-file: {path} must be a readable UTF-8 file ({type(error).__name__})"
        ) from None
    if not token:
        raise UsageError(f"--token-file: {path} must hold a token, but it is empty")
    return token

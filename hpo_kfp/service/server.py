"""Running the service: the REST application on uvicorn and, when asked, the gRPC server beside it.

Both listen on sockets bound before anything is served, so the ports are known at once
(port 0 picks a free one) and printed, one line each. ``GET /health`` answers 200 once
uvicorn serves and the gRPC server runs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import TextIO

from hpo_kfp.errors import OptionError
from hpo_kfp.service.app import DEFAULT_MAX_BODY, create_app
from hpo_kfp.service.tuning import Tuner
from hpo_kfp.store import Store, open_store

__all__ = ["MIN_TOKEN_LENGTH", "ServeOptions", "check_binding", "is_loopback", "serve"]

MIN_TOKEN_LENGTH = 16
"""The shortest token accepted: a guessable one protects nothing."""


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """How to serve."""

    store: str
    """The store's URL."""
    host: str = "127.0.0.1"
    """The address both servers bind."""
    port: int = 8085
    """The REST port (Kruize's); 0 picks a free one."""
    grpc_port: int | None = None
    """The gRPC port (Katib's suggestion services listen on 6789), or None for no gRPC."""
    grpc_host: str | None = None
    """The address the gRPC server binds, when not ``host`` (a Katib suggestion pod serves
    gRPC to the cluster and REST on loopback only)."""
    token: str | None = None
    """The bearer token every request needs, or None."""
    insecure: bool = False
    """Whether to serve a non-loopback address without a token."""
    max_body: int = DEFAULT_MAX_BODY
    """The largest request body, in bytes."""
    access_log: bool = False
    """Whether to log every request (method, path, status; never headers)."""
    type_prefix: str = "odh."
    """The ML Metadata type prefix, for an ML Metadata store."""
    workers: int = 1
    """Processes serving REST on the one port (a suggestion rebuilds its sampler's study:
    CPU-bound Python, so one process uses one core at most)."""
    trial_lease: float = 3600.0
    """Seconds a handed-out trial stays its client's without a word from it (a report or a
    completion renews it); then the next suggestion hands it out again. 0: for ever."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_binding(options: ServeOptions) -> None:
    """Refuses to serve the network without a token, unless told to.

    Raises:
        OptionError: ``host`` is not a loopback address, no token is set, and ``insecure``
            is False; or the token is too short.
    """
    if options.token is not None and len(options.token) < MIN_TOKEN_LENGTH:
        raise OptionError(
            f"--token-file: the token must be at least {MIN_TOKEN_LENGTH} characters, "
            f"but it has {len(options.token)}"
        )
    if options.token is not None or options.insecure:
        return
    hosts = [("--host", options.host)]
    if options.grpc_port is not None and options.grpc_host is not None:
        hosts.append(("--grpc-host", options.grpc_host))
    for flag, host in hosts:
        if not is_loopback(host):
            raise OptionError(
                f"{flag}: serving {host!r}, a non-loopback address, needs a token (--token-file); "
                "give --insecure to serve it without one"
            )


def serve(options: ServeOptions, *, announce: TextIO = sys.stdout) -> None:
    """Serves until interrupted (SIGINT or SIGTERM).

    With ``workers`` above 1, that many processes serve REST on the one listening socket
    (forked once it is bound, each with its own store connections; the store keeps them
    consistent as it does separate servers), and the first also serves gRPC.

    Raises:
        InputError: See :func:`check_binding`; or the store's URL is unusable.
        StoreError: The store cannot be reached.
        OSError: A port cannot be bound.
    """
    from hpo_kfp.service.katib import start_grpc_server

    check_binding(options)
    listener = _listen(options.host, options.port)
    children = [_fork(options, listener) for _ in range(options.workers - 1)]
    # uvicorn shuts down on SIGTERM, then raises the signal again with the handler it found:
    # this one, so that the cleanup below runs (the default would end the process at once,
    # leaving the workers behind).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    grpc_server = None
    try:
        store = open_store(options.store, type_prefix=options.type_prefix)
        grpc_host = options.grpc_host or options.host
        if options.grpc_port is not None:
            grpc_server, grpc_port = start_grpc_server(grpc_host, options.grpc_port, token=options.token)
        print(
            f"hpo-kfp serve: REST on http://{_shown(options.host)}:{listener.getsockname()[1]}",
            file=announce,
            flush=True,
        )
        if grpc_server is not None:
            print(f"hpo-kfp serve: gRPC on {_shown(grpc_host)}:{grpc_port}", file=announce, flush=True)
        _run_rest(options, listener, store, grpc=grpc_server is not None)
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        for child in children:
            os.waitpid(child, 0)
        if grpc_server is not None:
            grpc_server.stop(grace=2).wait()
        listener.close()


def _exit_on_signal(number: int, _frame: object) -> None:
    raise SystemExit(128 + number)


def _run_rest(options: ServeOptions, listener: socket.socket, store: Store, *, grpc: bool) -> None:
    import uvicorn

    tuner = Tuner(store, owner=f"serve:{socket.gethostname()}:{os.getpid()}", lease=options.trial_lease)
    # The first suggestion imports Optuna's samplers (~0.45 s measured): do it now, beside
    # the start, rather than in the first client's request.
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
    server: uvicorn.Server | None = None

    def ready() -> bool:
        return server is not None and server.started and not server.should_exit

    app = create_app(
        tuner,
        token=options.token,
        max_body=options.max_body,
        ready=ready,
        grpc=grpc,
        local_hosts_only=options.token is None and is_loopback(options.host),
    )
    config = uvicorn.Config(
        app,
        access_log=options.access_log,
        lifespan="off",
        log_level="info" if options.access_log else "warning",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[listener])


def _warm_up() -> None:
    from hpo_kfp.history import History
    from hpo_kfp.spec import parse_experiment
    from hpo_kfp.suggest import suggest

    document = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "warm-up"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "tpe"},
            "maxTrialCount": 1,
            "parallelTrialCount": 1,
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
            ],
        },
    }
    experiment = parse_experiment(document, trial_template=None)
    suggest(experiment, History(experiment="warm-up"), 1)


def _fork(options: ServeOptions, listener: socket.socket) -> int:
    """A worker process serving REST on ``listener``; returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        _run_rest(options, listener, open_store(options.store, type_prefix=options.type_prefix), grpc=False)
    except BaseException as error:  # a worker reports any end and exits; the others go on
        print(f"hpo-kfp serve: worker {os.getpid()}: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        os._exit(code)  # never run the parent's cleanup in a child


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # whose proto is IPPROTO_TCP; with proto 0 every keep-alive reply waited ~40 ms for the
    # client's delayed ACK (measured: 44 ms per request against 1 ms).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener

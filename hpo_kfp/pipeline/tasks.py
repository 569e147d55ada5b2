"""What every hpo-kfp task in a pipeline gets: a name people read, caching off, the store's
password from a Kubernetes Secret where it opens the store; and compiling a pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from kfp import compiler

from hpo_kfp.errors import BuildError

__all__ = ["STORE_PASSWORD_ENV", "compile_pipeline", "name_step", "store_secret"]


STORE_PASSWORD_ENV = "HPO_KFP_STORE_PASSWORD"
"""Where a step finds the store's password (:mod:`hpo_kfp.store.sql`)."""

_STORE_SECRET: ContextVar[str] = ContextVar("store_secret", default="")


@contextlib.contextmanager
def store_secret(name: str) -> Iterator[None]:
    """While a pipeline is defined in the block, every step that opens the store (named
    with ``store=True``) gets the store's password from the Kubernetes Secret ``name`` (its
    key ``password``, as ``HPO_KFP_STORE_PASSWORD``), through kfp-kubernetes: the password
    never enters the compiled pipeline, only the Secret's name does. "" changes nothing."""
    token = _STORE_SECRET.set(name)
    try:
        yield
    finally:
        _STORE_SECRET.reset(token)


def name_step(task: Any, display: str, *, store: bool = False) -> None:
    """Names a step for people and turns its caching off; a step that opens the store
    (``store``) gets its password from the Secret of :func:`store_secret`, if any."""
    # Trials must run every time (the data may have changed); and people read round names.
    task.set_caching_options(False)
    task.set_display_name(display)
    secret = _STORE_SECRET.get()
    if store and secret:
        try:
            from kfp import kubernetes
        except ImportError:
            raise BuildError(
                f"settings.store_secret: a store Secret ({secret!r}) needs kfp-kubernetes: "
                "pip install 'hpo-kfp[cluster]'"
            ) from None
        kubernetes.use_secret_as_env(
            task, secret_name=secret, secret_key_to_env={"password": STORE_PASSWORD_ENV}
        )


def compile_pipeline(pipeline: Any, output: Any) -> int:
    """Compiles ``pipeline`` to ``output`` and returns the file's size in bytes."""
    compiler.Compiler().compile(pipeline, str(output))
    return Path(output).stat().st_size

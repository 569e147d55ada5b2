"""The experiment store: one contract (:class:`Store`), backends chosen by the store's URL.

* ``sqlite:///PATH`` — an SQLite file, the embedded default (``hpo-kfp-runs/hpo-kfp.sqlite``);
* ``postgresql://USER@HOST/DB``, ``mysql://USER@HOST/DB`` (MariaDB too) — a database server
  (the ``postgres`` and ``mysql`` extras carry the drivers); the password comes from
  ``HPO_KFP_STORE_PASSWORD`` or the file ``HPO_KFP_STORE_PASSWORD_FILE`` names, never from
  the URL in a compiled pipeline;
* ``grpc://HOST:PORT`` — an ML Metadata service with the Open Data Hub types, and
  ``mlmd+sqlite:///PATH`` — an embedded ML Metadata file (both need the ``mlmd`` extra).
"""

from __future__ import annotations

import os
import re

from hpo_kfp.errors import StoreInputError
from hpo_kfp.store.base import (
    ExperimentKey,
    ExperimentSummary,
    SearchSpaceChanged,
    Store,
    StoreError,
)

__all__ = [
    "CLUSTER_STORE",
    "LOCAL_STORE",
    "PREFIX_ENV",
    "STORE_ENV",
    "ExperimentKey",
    "ExperimentSummary",
    "SearchSpaceChanged",
    "Store",
    "StoreError",
    "check_store_url",
    "open_store",
    "resolve_store",
    "resolve_type_prefix",
]

STORE_ENV = "HPO_KFP_STORE"
"""The environment variable naming the store when no ``--store`` is given."""

LOCAL_STORE = "sqlite:///hpo-kfp-runs/hpo-kfp.sqlite"
"""The store of commands run on this machine when none is named: a file beside the runs."""
CLUSTER_STORE = "grpc://metadata-grpc-service.kubeflow:8080"
"""The store of compiled pipelines when none is named: KFP's in-cluster ML Metadata service
(KFP up to 2.17, Open Data Hub). On a KFP without it, name an SQL store."""
PREFIX_ENV = "HPO_KFP_MLMD_TYPE_PREFIX"
"""The environment variable with the ML Metadata type names' prefix."""

_SQL = ("sqlite", "postgresql", "mysql", "mariadb")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]*")


def resolve_store(url: str | None, default: str) -> str:
    """The store in effect: ``url``, else ``$HPO_KFP_STORE``, else ``default``; checked.

    Raises:
        StoreInputError: See :func:`check_store_url`.
    """
    chosen = url or os.environ.get(STORE_ENV) or default
    check_store_url(chosen)
    return chosen


def resolve_type_prefix(prefix: str | None = None) -> str:
    """The ML Metadata type names' prefix: ``prefix``, else ``$HPO_KFP_MLMD_TYPE_PREFIX``, else ``odh.``.

    Raises:
        StoreInputError: The prefix has characters other than letters, digits, ``.``, ``_``, ``-``.
    """
    chosen = prefix if prefix is not None else os.environ.get(PREFIX_ENV, "odh.")
    if not _PREFIX.fullmatch(chosen):
        raise StoreInputError(
            f"the metadata type prefix must be letters, digits, '.', '_' or '-', but got {chosen!r}"
        )
    return chosen


def check_store_url(url: str) -> None:
    """Checks the form of a store URL without connecting.

    Raises:
        StoreInputError: No known kind of store, or a password in the URL (a URL travels in
            pipeline arguments and compiled pipelines; the password belongs in
            ``HPO_KFP_STORE_PASSWORD`` or a mounted secret).
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0] if ":" in url else ""
    if scheme not in _SQL and not url.startswith(("grpc://", "mlmd+sqlite://")):
        raise StoreInputError(
            "the store must be sqlite:///PATH, postgresql://..., mysql://..., grpc://HOST:PORT (ML Metadata) "
            f"or mlmd+sqlite:///PATH, but got {url!r}"
        )
    authority = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else ""
    if "@" in authority and ":" in authority.rsplit("@", 1)[0]:
        raise StoreInputError(
            "the store URL must not hold a password (set HPO_KFP_STORE_PASSWORD, or "
            "HPO_KFP_STORE_PASSWORD_FILE for a mounted secret), but it does"
        )
    _check_form(url, scheme)


def _check_form(url: str, scheme: str) -> None:
    """Each kind's URL names what it needs: a file, a database, a service's port."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    if url.startswith(("sqlite:", "mlmd+sqlite:")):
        if not rest.startswith("/") or not rest.lstrip("/"):
            prefix = url.split("://", 1)[0]
            raise StoreInputError(
                f"the store must be {prefix}:///PATH (three slashes before a relative path, four "
                f"before an absolute one), but got {url!r}"
            )
    elif url.startswith("grpc://"):
        host, _, port = rest.split("/", 1)[0].rpartition(":")
        if not host or not port.isdigit():
            raise StoreInputError(f"the store must be grpc://HOST:PORT, but got {url!r}")
    elif scheme in _SQL:
        database = rest.split("/", 1)[1].split("?", 1)[0] if "/" in rest else ""
        if not database:
            raise StoreInputError(
                f"the store must name a database: {scheme}://USER@HOST/DATABASE, but got {url!r}"
            )


def open_store(url: str, *, type_prefix: str = "odh.", read_only: bool = False) -> Store:
    """The store at ``url`` (see the module's docstring); ``read_only`` for a command that only
    reads (an SQL store then opens an SQLite file read-only and creates no table).

    Raises:
        StoreInputError: The URL names no known kind of store, or a driver is missing.
        StoreError: The store cannot be reached or prepared.
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0] if ":" in url else ""
    if scheme in _SQL:
        from hpo_kfp.store.sql import SqlStore

        return SqlStore(url, read_only=read_only)
    check_store_url(url)
    from hpo_kfp.store.mlmd import MlmdStore

    mlmd: Store = MlmdStore(url, prefix=type_prefix)
    return mlmd

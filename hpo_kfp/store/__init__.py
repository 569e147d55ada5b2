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

from hpo_kfp.errors import StoreInputError
from hpo_kfp.store.base import (
    ExperimentKey,
    ExperimentSummary,
    SearchSpaceChanged,
    Store,
    StoreError,
)

__all__ = [
    "STORE_ENV",
    "ExperimentKey",
    "ExperimentSummary",
    "SearchSpaceChanged",
    "Store",
    "StoreError",
    "open_store",
]

STORE_ENV = "HPO_KFP_STORE"
"""The environment variable naming the store when no ``--store`` is given."""

_SQL = ("sqlite", "postgresql", "mysql", "mariadb")


def open_store(url: str, *, type_prefix: str = "odh.") -> Store:
    """The store at ``url`` (see the module's docstring).

    Raises:
        StoreInputError: The URL names no known kind of store, or a driver is missing.
        StoreError: The store cannot be reached or prepared.
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0] if ":" in url else ""
    if scheme in _SQL:
        from hpo_kfp.store.sql import SqlStore

        return SqlStore(url)
    if url.startswith(("grpc://", "mlmd+sqlite://")):
        from hpo_kfp.store.mlmd import MlmdStore

        mlmd: Store = MlmdStore(url, prefix=type_prefix)
        return mlmd
    raise StoreInputError(
        "the store must be sqlite:///PATH, postgresql://..., mysql://..., grpc://HOST:PORT (ML Metadata) "
        f"or mlmd+sqlite:///PATH, but got {url!r}"
    )

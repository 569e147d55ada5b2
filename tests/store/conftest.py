"""Stores to run the contract suite on: an SQLite file, fresh databases on the PostgreSQL
and MariaDB servers of this machine (``.ci/run`` starts them), and an embedded ML Metadata
file. Without a server (or without ml-metadata) a test skips with the reason, except under
CI, where it fails."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

_SERVERS = {
    "postgresql": (
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
    ),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306/test", "mysql+pymysql://root@127.0.0.1:3306/{db}"),
}


def _unavailable(kind: str, error: Exception) -> None:
    reason = f"{kind} is not reachable on 127.0.0.1 ({str(error).strip().splitlines()[0]})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; .ci/run must start it")
    pytest.skip(reason)


def server_database(kind: str) -> Iterator[str]:
    """A fresh, empty database on the ``kind`` server; dropped afterwards."""
    admin_url, template = _SERVERS[kind]
    name = f"hpo_{uuid.uuid4().hex[:12]}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        with admin.connect() as db:
            db.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as error:
        _unavailable(kind, error)
    try:
        yield template.format(db=name)
    finally:
        with admin.connect() as db:
            if kind == "postgresql":
                db.execute(
                    sa.text(
                        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                    )
                )
            db.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()


def mlmd_expected() -> bool:
    """Whether ml-metadata must import: in CI on Python 3.11, where the mlmd group installs it
    (it has no wheels for later Pythons, which CI tests without it)."""
    return os.environ.get("CI") == "true" and sys.version_info < (3, 12)


def _mlmd_unavailable(error: ImportError) -> None:
    reason = f"ml-metadata cannot be imported ({str(error).strip().splitlines()[0]})"
    if mlmd_expected():
        pytest.fail(f"{reason}; CI installs the mlmd extra")
    pytest.skip(reason)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb", "mlmd"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    if request.param == "mlmd":
        try:
            import ml_metadata  # noqa: F401
        except ImportError as error:
            _mlmd_unavailable(error)
        yield f"mlmd+sqlite:///{tmp_path}/mlmd.sqlite"
        return
    yield from server_database(request.param)

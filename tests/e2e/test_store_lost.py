"""A store that goes down mid-run is named as the run's cause, in one line."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from hpo_kfp.store import ExperimentKey, open_store
from tests.store.conftest import server_database
from tests.waiting import wait_for

_HERE = Path(__file__).parent


def test_a_store_lost_mid_run_is_the_runs_one_line_cause(tmp_path: Path) -> None:
    shutil.copy(_HERE / "slow.yaml", tmp_path)
    shutil.copy(_HERE / "slow_trial.py", tmp_path)
    with contextlib.contextmanager(server_database)("postgresql") as url:
        name = url.rsplit("/", 1)[1]
        store = url.replace("postgresql+psycopg://", "postgresql://")
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hpo_kfp",
                "run",
                "slow.yaml",
                "--local",
                "--workdir",
                "runs",
                "--store",
                store,
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            opened = open_store(store)
            wait_for(
                lambda: any(t.values for t in opened.history(ExperimentKey("", "slow")).trials), seconds=60
            )
            # The database server stops taking connections to it, and drops those it had.
            admin = sa.create_engine(
                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
            )
            with admin.connect() as db:
                db.execute(sa.text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                db.execute(
                    sa.text(
                        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                    )
                )
            admin.dispose()
            _, err = run.communicate(timeout=300)
        finally:
            run.kill()
    assert run.returncode == 1
    assert err.count("\n") == 1, err
    assert err.startswith(
        "slow.yaml: the pipeline stopped: the store at postgresql://postgres@127.0.0.1:5432/"
    )
    # The server's words vary with the moment (a session ended, or a new one refused).
    assert " failed: " in err and "/kfp-local.log" in err and "Inner task failed" not in err

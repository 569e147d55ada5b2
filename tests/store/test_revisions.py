"""A store written before revisions: opened by this release, it gains their columns and loses
nothing; opened read-only, it is read as it is."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from hpo_kfp.claim import claim
from hpo_kfp.store import ExperimentKey, open_store
from tests.store.test_contract import _experiment, _succeeded


def _as_before_revisions(path: Path) -> None:
    """Takes the revision columns (and their index) out of an SQLite store."""
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX hpo_trials_revision")
        db.execute("ALTER TABLE hpo_trials DROP COLUMN revision")
        db.execute("ALTER TABLE hpo_experiments DROP COLUMN revision")
        db.execute("ALTER TABLE hpo_experiments DROP COLUMN incarnation")


def _columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def test_an_older_store_gains_revisions_and_keeps_its_trials(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    url = f"sqlite:///{path}"
    experiment = _experiment()
    key = ExperimentKey("", experiment.name)
    store = open_store(url)
    store.open_experiment(experiment, key)
    first = claim(store, experiment, key, 2, owner="old").trials
    store.record(key, _succeeded(first[0], 0.5))
    before = store.history(key)
    _as_before_revisions(path)
    assert "revision" not in _columns(path, "hpo_trials")

    # Read-only, as report does: read whole, nothing added.
    assert open_store(url, read_only=True).history(key) == before
    assert "revision" not in _columns(path, "hpo_trials")

    reader, writer = open_store(url), open_store(url)
    assert {"revision", "incarnation"} <= _columns(path, "hpo_experiments")
    assert "revision" in _columns(path, "hpo_trials")
    assert reader.history(key) == before
    writer.record(key, _succeeded(first[1], 0.25))
    more = claim(writer, experiment, key, 1, owner="new").trials
    assert [(t.number, t.status) for t in reader.history(key).trials] == [
        (0, "Succeeded"),
        (1, "Succeeded"),
        (2, "Pending"),
    ]
    writer.record(key, replace(more[0], status="Running"))
    assert reader.history(key) == writer.history(key)

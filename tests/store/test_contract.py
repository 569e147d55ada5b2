"""The store contract, run over every backend (``store_url`` in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from hpo_kfp.claim import claim
from hpo_kfp.decide import decide
from hpo_kfp.errors import ClaimRefused, SearchSpaceChanged, StoreError
from hpo_kfp.history import TrialRecord
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.store import ExperimentKey, Store, open_store
from tests.conftest import base_spec, with_field

_ROOT = Path(__file__).resolve().parents[2]


def _experiment(max_trials: int = 8, low: str = "0.01") -> Experiment:
    document = base_spec()
    with_field(document, "spec.maxTrialCount", max_trials)
    with_field(document, "spec.maxFailedTrialCount", max_trials)
    with_field(document, "spec.objective.goal", -1.0)  # never reached
    document["spec"]["parameters"][0]["feasibleSpace"]["min"] = low
    del document["metadata"]["namespace"]
    return parse_experiment(document)


def _succeeded(trial: TrialRecord, loss: float) -> TrialRecord:
    return replace(trial, status="Succeeded", values=(loss,), metrics={"loss": loss, "accuracy": 0.5})


def test_every_backend_keeps_the_contract(store_url: str) -> None:
    assert isinstance(open_store(store_url), Store)


def test_an_experiment_is_recorded_and_read_back(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("team-a", experiment.name)
    assert store.load_experiment(key) is None
    assert store.history(key).trials == ()
    assert store.open_experiment(experiment, key) is True  # this call recorded it
    assert store.open_experiment(experiment, key) is False  # again: nothing changes
    loaded = store.load_experiment(key)
    assert loaded is not None and loaded.parameters == experiment.parameters
    assert [(s.namespace, s.name, s.trials) for s in store.experiments()] == [("team-a", "demo", 0)]


def test_one_name_in_two_namespaces_is_two_experiments(store_url: str) -> None:
    store = open_store(store_url)
    first, second = _experiment(), _experiment(low="0.02")
    team_a, team_b = ExperimentKey("team-a", "demo"), ExperimentKey("team-b", "demo")
    store.open_experiment(first, team_a)
    store.open_experiment(second, team_b)  # another space: no conflict across namespaces
    claimed, _ = claim(store, first, team_a, 3, owner="run-a")
    assert len(claimed) == 3
    assert store.history(team_b).trials == ()
    assert [s.trials for s in store.experiments()] == [3, 0]


def test_a_changed_search_space_is_refused_naming_the_change(store_url: str) -> None:
    store = open_store(store_url)
    key = ExperimentKey("", "demo")
    store.open_experiment(_experiment(), key)
    with pytest.raises(SearchSpaceChanged) as caught:
        store.open_experiment(_experiment(low="0.02"), key)
    message = str(caught.value)
    assert "\n" not in message
    assert "but parameter 'lr': feasibleSpace.min 0.01 -> 0.02; start over" in message
    store.open_experiment(_experiment(low="0.02"), key, allow_space_change=True)
    loaded = store.load_experiment(key)
    assert loaded is not None and loaded.parameters[0].min == 0.02


def test_claims_number_trials_densely_and_stop_at_the_budget(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment(max_trials=5)
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    first, _ = claim(store, experiment, key, 3, owner="a")
    second, history = claim(store, experiment, key, 3, owner="b")
    assert [t.number for t in first + second] == [0, 1, 2, 3, 4]
    assert {t.status for t in history.trials} == {"Pending"}
    assert claim(store, experiment, key, 3, owner="c")[0] == []
    names = [t.name for t in history.trials]
    assert names == [f"demo-{n:04d}" for n in range(5)] and len(set(names)) == 5


def test_a_run_limit_caps_a_claim(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment(max_trials=8)
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    claimed, _ = claim(store, experiment, key, 4, owner="a", run_limit=2)
    assert len(claimed) == 2


def test_recording_is_idempotent(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    (trial,), _ = claim(store, experiment, key, 1, owner="a")
    done = _succeeded(trial, 0.25)
    store.record(key, done, run_id="run-1")
    once = store.history(key)
    store.record(key, done, run_id="run-1")
    assert store.history(key) == once
    assert once.trials == (done,)


def test_recording_an_unknown_experiment_is_an_error(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(StoreError, match="must be in the store"):
        store.record(ExperimentKey("", "nobody"), TrialRecord(name="nobody-0000", number=0, parameters={}))


def test_released_trials_are_claimed_again_before_new_ones(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment(max_trials=4)
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    lost, _ = claim(store, experiment, key, 2, owner="killed-run")
    assert sorted(store.release(key)) == [t.name for t in lost]
    assert store.release(key) == []  # already released
    assert store.experiments()[0].stale == 2
    again, history = claim(store, experiment, key, 3, owner="next-run")
    assert [(t.number, t.parameters) for t in again] == [(t.number, t.parameters) for t in lost]
    assert len(history.trials) == 2  # nothing new while released trials were waiting
    assert store.experiments()[0].stale == 0


def test_release_by_heartbeat_age(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    claimed, _ = claim(store, experiment, key, 2, owner="a")
    store.heartbeat(key, [claimed[0].name])
    assert store.release(key, older_than=3600) == []
    assert sorted(store.release(key, older_than=-1)) == sorted(t.name for t in claimed)


def test_release_by_owner_prefix_leaves_other_claimers_trials(store_url: str) -> None:
    """A run that restarts gives back what its killed self left, and nothing a live run holds."""
    store = open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    mine, _ = claim(store, experiment, key, 2, owner="local:host:/runs/a/run-1")
    theirs, _ = claim(store, experiment, key, 1, owner="local:host:/runs/b/run-7")
    assert sorted(store.release(key, owner_prefix="local:host:/runs/a/")) == sorted(t.name for t in mine)
    assert store.release(key, owner_prefix="local:host:/runs/a/", older_than=-1) == []
    assert store.release(key, older_than=3600) == []  # their lease is alive
    assert store.release(key, owner_prefix="local:host:/runs/b/", older_than=-1) == [theirs[0].name]


def test_append_writes_all_or_nothing_when_a_number_is_taken(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    trials = [TrialRecord(name=f"demo-000{n}", number=n, parameters={"lr": 0.1, "layers": 2}) for n in (0, 1)]
    assert store.append_trials(key, trials[:1], owner="a", study_attrs={"seen": 1}) is True
    assert store.append_trials(key, trials, owner="b", study_attrs={"seen": 2}) is False  # 0 is taken
    history = store.history(key)
    assert [t.number for t in history.trials] == [0]
    assert history.study_attrs == {"seen": 1}
    assert store.append_trials(key, trials[1:], owner="b", study_attrs={"seen": 2}) is True
    assert [t.number for t in store.history(key).trials] == [0, 1]


def test_a_released_trial_is_taken_by_one_claimer_only(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    claim(store, experiment, key, 2, owner="gone")
    assert store.take_released(key, 2, owner="x") == []  # nothing released yet
    store.release(key)
    first = store.take_released(key, 1, owner="x")
    assert [t.number for t in first] == [0] and first[0].status == "Pending"
    assert [t.number for t in store.take_released(key, 5, owner="y")] == [1]
    assert store.take_released(key, 5, owner="z") == []


def test_the_primitives_refuse_an_unknown_experiment(store_url: str) -> None:
    store = open_store(store_url)
    nobody = ExperimentKey("", "nobody")
    with pytest.raises(StoreError, match="must be in the store"):
        store.take_released(nobody, 1, owner="a")
    with pytest.raises(StoreError, match="must be in the store"):
        store.append_trials(nobody, [], owner="a", study_attrs={})
    with pytest.raises(StoreError, match="must be in the store"), store.turn(nobody):
        pass


def test_a_claim_names_its_owner(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    with pytest.raises(ClaimRefused, match="must name its owner"):
        claim(store, experiment, key, 1, owner="")


def test_imports_are_idempotent_and_spend_no_budget(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment(max_trials=2)
    key = ExperimentKey("", "demo")
    prior = [
        _succeeded(
            TrialRecord(name="x", number=0, parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"}), 0.5
        ),
        _succeeded(
            TrialRecord(name="y", number=1, parameters={"lr": 0.03, "layers": 4, "optimizer": "adam"}), 0.4
        ),
    ]
    assert store.import_trials(experiment, key, prior) == 2
    assert store.import_trials(experiment, key, prior) == 0
    history = store.history(key)
    assert [(t.name, t.origin) for t in history.trials] == [("demo-0000", "import"), ("demo-0001", "import")]
    claimed, _ = claim(store, experiment, key, 5, owner="a")
    assert [t.number for t in claimed] == [2, 3]


def test_the_decision_and_study_state_are_kept(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment(max_trials=2)
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    claimed, _ = claim(store, experiment, key, 2, owner="a")
    for trial, loss in zip(claimed, (0.3, 0.1), strict=True):
        store.record(key, _succeeded(trial, loss))
    history = store.history(key)
    store.save_decision(key, decide(experiment, history), {"qmc:seed": 7})
    (summary,) = store.experiments()
    assert (summary.status, summary.reason, summary.best_trial, summary.best_objective) == (
        "Succeeded",
        "MaxTrialsReached",
        "demo-0001",
        0.1,
    )
    assert store.history(key).study_attrs == {"qmc:seed": 7}


def test_delete_removes_the_experiment_and_its_trials(store_url: str) -> None:
    store = open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    claim(store, experiment, key, 2, owner="a")
    assert store.delete(key) is True
    assert store.delete(key) is False
    assert store.experiments() == [] and store.history(key).trials == ()
    store.open_experiment(experiment, key)
    assert [t.number for t in claim(store, experiment, key, 1, owner="a")[0]] == [0]


_WORKER = textwrap.dedent(
    """
    import json, sys
    from dataclasses import replace
    from hpo_kfp.claim import claim
    from hpo_kfp.spec import parse_experiment
    from hpo_kfp.store import ExperimentKey, open_store

    url, spec, owner = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    experiment = parse_experiment(spec)
    store = open_store(url)
    key = ExperimentKey("", experiment.name)
    store.open_experiment(experiment, key)
    mine = []
    while True:
        claimed, _ = claim(store, experiment, key, 1, owner=owner)
        if not claimed:
            break
        for trial in claimed:
            loss = float(trial.number)
            store.record(key, replace(trial, status="Succeeded", values=(loss,), metrics={"loss": loss}))
            mine.append(trial.number)
    print(json.dumps(mine))
    """
)


_COUNTING_WORKER = (
    "import atexit, importlib, json\n"
    "_module = importlib.import_module('hpo_kfp.claim')  # the suggest every claim calls\n"
    "_suggest, _calls = _module.suggest, []\n"
    "def _counted(*args, **kwargs):\n"
    "    _calls.append(1)\n"
    "    return _suggest(*args, **kwargs)\n"
    "_module.suggest = _counted\n"
    "atexit.register(lambda: print(json.dumps(len(_calls))))\n"
) + _WORKER


def _claim_in_four_processes(store_url: str, script: str, max_trials: int) -> list[str]:
    """Runs ``script`` (a worker above) in 4 processes at once; returns their outputs."""
    experiment = _experiment(max_trials=max_trials)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, store_url, json.dumps(experiment.source), f"worker-{index}"],
            cwd=_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(4)
    ]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        outputs.append(out)
    return outputs


@pytest.mark.slow
def test_concurrent_claimers_take_turns_and_throw_no_suggestion_away(store_url: str) -> None:
    """Four processes claim at once: each claim suggests once (no claimer suggests, loses the
    race for the numbers and suggests again)."""
    if store_url.startswith("mlmd"):
        pytest.skip("the ML Metadata store claims optimistically only")
    numbers: list[int] = []
    suggestions = 0
    for out in _claim_in_four_processes(store_url, _COUNTING_WORKER, 24):
        mine, calls = out.strip().splitlines()[-2:]
        numbers += json.loads(mine)
        suggestions += json.loads(calls)
    assert sorted(numbers) == list(range(24))
    assert suggestions == 24


def test_many_threads_of_one_process_claim_for_many_experiments_at_once(store_url: str) -> None:
    """As ``hpo-kfp serve``'s worker threads do: a claimer waiting for its turn must not hold a
    connection of the store's pool that another claimer needs (20 > the pool's 5 + 10)."""
    store = open_store(store_url)
    experiment = _experiment()
    keys = [ExperimentKey("", f"exp-{index}") for index in range(20)]
    for key in keys:
        store.open_experiment(experiment, key)
    with ThreadPoolExecutor(max_workers=20) as pool:
        claimed = list(pool.map(lambda key: claim(store, experiment, key, 1, owner="t")[0], keys))
    assert [[t.number for t in trials] for trials in claimed] == [[0]] * 20


def test_a_claim_waits_only_for_claims_of_its_own_experiment(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store_url.startswith("mlmd"):
        pytest.skip("the ML Metadata store claims optimistically only")
    from hpo_kfp.store import sql

    monkeypatch.setattr(sql, "_CLAIM_LOCK_SECONDS", 600.0)
    store = open_store(store_url)
    assert isinstance(store, sql.SqlStore)
    experiment = _experiment()
    first, second = ExperimentKey("", "first"), ExperimentKey("", "second")
    for key in (first, second):
        store.open_experiment(experiment, key)
    done = threading.Event()

    def claim_second() -> None:
        claim(store, experiment, second, 1, owner="b")
        done.set()

    with store.turn(first):  # another claimer's turn on "first"
        worker = threading.Thread(target=claim_second)
        worker.start()
        finished = done.wait(timeout=120)
    worker.join()
    assert finished, "the claim of 'second' waited for the turn on 'first'"


@pytest.mark.slow
def test_concurrent_claimers_share_the_budget_exactly(store_url: str) -> None:
    """Four processes claim and record at once: no number twice, none lost, the budget exact."""
    numbers: list[int] = []
    for out in _claim_in_four_processes(store_url, _WORKER, 24):
        numbers += json.loads(out)
    assert sorted(numbers) == list(range(24))
    history = open_store(store_url).history(ExperimentKey("", "demo"))
    assert [t.number for t in history.trials] == list(range(24))
    assert {t.status for t in history.trials} == {"Succeeded"}


def test_a_new_sqlite_store_opened_by_many_at_once_waits_for_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes switching a new SQLite file to WAL at once: the loser's "database is
    locked" comes at once, not after SQLite's busy timeout (1 of 90 processes opening a new
    store 6 at a time; a server's workers start so). The store waits and tries again."""
    import sqlalchemy as sa

    from hpo_kfp.store import sql

    calls: list[int] = []
    create_all = sql._metadata.create_all

    def locked_once(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise sa.exc.OperationalError("PRAGMA journal_mode=WAL", {}, Exception("database is locked"))
        create_all(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sql._metadata, "create_all", locked_once)
    store = sql.SqlStore(f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert len(calls) == 2 and store.experiments() == []


def test_a_store_object_sees_what_others_wrote_since_it_last_read(store_url: str) -> None:
    # A store object keeps the last history it read and reads only what changed since: every
    # way another writer changes an experiment must show, and a deleted experiment made again
    # under the same name (SQLite may give its row the same id) must not show the old trials.
    reader, writer = open_store(store_url), open_store(store_url)
    experiment = _experiment()
    key = ExperimentKey("", experiment.name)
    writer.open_experiment(experiment, key)
    first = claim(writer, experiment, key, 2, owner="w").trials
    assert [t.number for t in reader.history(key).trials] == [0, 1]
    writer.record(key, _succeeded(first[0], 0.5))
    writer.save_decision(key, decide(experiment, writer.history(key)), {"k": 1})
    seen = reader.history(key)
    assert [t.status for t in seen.trials] == ["Succeeded", "Pending"] and seen.study_attrs == {"k": 1}
    writer.import_trials(experiment, key, [replace(_succeeded(first[0], 0.1), origin="import")])
    assert [t.origin for t in reader.history(key).trials][-1] == "import"
    assert reader.history(key) == writer.history(key) == open_store(store_url).history(key)

    assert writer.delete(key)
    assert reader.history(key).trials == ()
    writer.open_experiment(experiment, key)
    claim(writer, experiment, key, 1, owner="w")
    assert reader.history(key) == writer.history(key)
    assert [(t.number, t.status) for t in reader.history(key).trials] == [(0, "Pending")]

    # Made again while the reader was not looking: its next read must not mix the two, even
    # when the old one had been written more often than the new one.
    for step in range(4):
        writer.record(key, replace(writer.history(key).trials[0], status="Running", reason=f"step {step}"))
    seen = reader.history(key)
    writer.delete(key)
    writer.open_experiment(experiment, key)
    again = claim(writer, experiment, key, 1, owner="w").trials
    writer.record(key, _succeeded(again[0], 0.7))
    assert seen.trials[0].reason == "step 3"
    assert [(t.number, t.status, t.reason) for t in reader.history(key).trials] == [(0, "Succeeded", "")]

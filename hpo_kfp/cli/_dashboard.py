"""``dashboard``: optuna-dashboard on loopback, showing an experiment while it runs.

The store's schema is not Optuna's, so the dashboard reads an in-memory Optuna study that
this command keeps in step with the store: every ``--refresh`` seconds the new trials are
added, running ones as running, and the running ones that have finished since are finished.
Optuna numbers a study's trials in the order they are added: they are added in the store's
order, so that the dashboard's trial 12 is the experiment's trial 12. It may be started
before the run: it waits for the store and the experiment to appear. Needs the ``dashboard``
extra.

optuna-dashboard (0.21) has no read-only mode, and its buttons that create, rename or delete
a study, write a note or tell a trial would change the in-memory copy only. So the command
serves it read-only: every request that is not a read (its API writes with POST, PUT and
DELETE) is refused with 403 and a reason, which the dashboard shows where the button was.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any
from wsgiref.simple_server import make_server

from hpo_kfp.cli._common import add_store_options, store_url, type_prefix
from hpo_kfp.errors import StoreError, UsageError
from hpo_kfp.spec import Experiment
from hpo_kfp.store import LOCAL_STORE, ExperimentKey, Store, open_store

__all__ = ["LiveStudy", "read_only", "register"]


def register(commands: Any) -> None:
    dashboard = commands.add_parser(
        "dashboard", help="optuna-dashboard on loopback, following an experiment while it runs"
    )
    dashboard.add_argument("experiment", help="experiment name")
    dashboard.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    dashboard.add_argument("--refresh", type=float, default=5.0, help="seconds between reads of the store")
    add_store_options(dashboard, LOCAL_STORE)
    dashboard.set_defaults(handler=_dashboard)


class LiveStudy:
    """An in-memory Optuna study that follows one experiment of a store, trial for trial."""

    def __init__(self, store: Store, experiment: Experiment, key: ExperimentKey) -> None:
        import optuna

        from hpo_kfp.study_view import quiet_optuna

        self._store, self._experiment, self._key = store, experiment, key
        self.storage = optuna.storages.InMemoryStorage()
        with quiet_optuna():
            study = optuna.create_study(
                storage=self.storage,
                study_name=str(key),
                directions=[term.direction for term in experiment.objective.terms],
            )
            study.set_metric_names([term.metric for term in experiment.objective.terms])
        self._study_id = self.storage.get_study_id_from_name(study.study_name)
        self._running: dict[int, int] = {}  # a running trial's number -> its Optuna trial id
        self._added = 0  # trials added: the next one added is number self._added
        self.refresh()

    def refresh(self) -> int:
        """Adds the trials new since the last call and finishes those that ended; returns how
        many trials it added or finished."""
        from hpo_kfp.history import FINISHED
        from hpo_kfp.study_view import frozen_trial, quiet_optuna

        changed = 0
        with quiet_optuna():
            for trial in sorted(self._store.history(self._key).trials, key=lambda t: t.number):
                if trial.number in self._running and trial.status in FINISHED:
                    self._finish(self._running.pop(trial.number), frozen_trial(self._experiment, trial))
                    changed += 1
                elif trial.number == self._added:
                    frozen = frozen_trial(self._experiment, trial)
                    made = self.storage.create_new_trial(self._study_id, frozen)
                    if not frozen.state.is_finished():
                        self._running[trial.number] = made
                    self._added += 1
                    changed += 1
                elif trial.number > self._added:
                    break  # numbers are dense: the missing one is recorded at the next read
        return changed

    def _finish(self, trial_id: int, ended: Any) -> None:
        for key, value in ended.user_attrs.items():
            self.storage.set_trial_user_attr(trial_id, key, value)
        for step, value in ended.intermediate_values.items():
            self.storage.set_trial_intermediate_value(trial_id, step, value)
        self.storage.set_trial_state_values(trial_id, ended.state, ended.values)

    def follow(self, every: float, stop: threading.Event) -> None:
        """Refreshes every ``every`` seconds until ``stop`` is set (a store busy for a moment
        is read at the next tick)."""
        from hpo_kfp.errors import HpoKfpError

        while not stop.wait(every):
            try:
                self.refresh()
            except HpoKfpError:
                continue


def _dashboard(args: argparse.Namespace) -> int:
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise UsageError("dashboard: needs optuna-dashboard: pip install 'hpo-kfp[dashboard]'") from None
    if not 0 < args.port < 65536:
        raise UsageError(f"--port: must be between 1 and 65535, but got {args.port}")
    if args.refresh <= 0:
        raise UsageError(f"--refresh: must be a positive number of seconds, but got {args.refresh}")
    found = _experiment_when_there(args)
    said = False
    while found is None:
        if not said:
            print(f"{args.experiment}: waiting for it to appear in {store_url(args)}", flush=True)
            said = True
        time.sleep(args.refresh)
        found = _experiment_when_there(args)
    store, experiment, key = found
    live = LiveStudy(store, experiment, key)
    stop = threading.Event()
    threading.Thread(target=live.follow, args=(args.refresh, stop), daemon=True).start()
    print(f"{key}: optuna-dashboard at http://127.0.0.1:{args.port}/ (refreshing every {args.refresh:g} s)")
    # Loopback only: the dashboard has no authentication.
    server = make_server("127.0.0.1", args.port, read_only(wsgi(live.storage)))
    try:
        server.serve_forever()
    finally:
        stop.set()
        server.server_close()
    return 0


_READ_ONLY = json.dumps(
    {"reason": "this dashboard is read-only: it shows the experiment as hpo-kfp's store keeps it"}
).encode()


def read_only(app: Any) -> Any:
    """The WSGI ``app`` answering reads only: anything else gets 403 with optuna-dashboard's
    error body (``reason``), which its pages show."""

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD"):
            return app(environ, start_response)
        start_response(
            "403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(_READ_ONLY)))]
        )
        return [_READ_ONLY]

    return guarded


def _experiment_when_there(args: argparse.Namespace) -> tuple[Store, Experiment, ExperimentKey] | None:
    """The store and the experiment, or None while either is not there yet (an SQLite file
    not made yet or made but without tables, an experiment not recorded yet)."""
    from hpo_kfp.cli._store import _key, _store_file

    url = store_url(args)
    path = _store_file(url)
    if path is not None and (not path.is_file() or path.stat().st_size == 0):
        return None
    try:
        store = open_store(url, type_prefix=type_prefix(args), read_only=True)
    except StoreError as error:
        if "must hold hpo-kfp's tables" in str(error):
            return None  # the run making the store has not made its tables yet
        raise
    key = _key(store, args, args.experiment)
    experiment = store.load_experiment(key)
    return None if experiment is None else (store, experiment, key)

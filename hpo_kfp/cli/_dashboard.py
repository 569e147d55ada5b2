"""``dashboard``: optuna-dashboard on loopback, showing an experiment while it runs.

The store's schema is not Optuna's, so the dashboard reads an in-memory Optuna study that
this command keeps in step with the store: every ``--refresh`` seconds the trials that have
finished since are added (a finished trial never changes). Needs the ``dashboard`` extra.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from hpo_kfp.cli._common import add_store_options, store_url, type_prefix
from hpo_kfp.errors import UsageError
from hpo_kfp.spec import Experiment
from hpo_kfp.store import LOCAL_STORE, ExperimentKey, Store, open_store

__all__ = ["LiveStudy", "register"]


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
    """An in-memory Optuna study that follows one experiment of a store."""

    def __init__(self, store: Store, experiment: Experiment, key: ExperimentKey) -> None:
        import optuna

        from hpo_kfp.study_view import to_study

        self._store, self._experiment, self._key = store, experiment, key
        self.storage = optuna.storages.InMemoryStorage()
        history = store.history(key)
        self._study = to_study(experiment, history, storage=self.storage, study_name=str(key))
        self._shown = {t.name for t in history.trials if t.status not in ("Pending", "Running")}

    def refresh(self) -> int:
        """Adds the trials that finished since the last call; returns how many."""
        from hpo_kfp.study_view import add_finished_trials

        new = [t for t in self._store.history(self._key).trials if t.name not in self._shown]
        added = add_finished_trials(self._study, self._experiment, new)
        self._shown.update(added)
        return len(added)

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
        from optuna_dashboard import run_server
    except ImportError:
        raise UsageError("dashboard: needs optuna-dashboard: pip install 'hpo-kfp[dashboard]'") from None
    if not 0 < args.port < 65536:
        raise UsageError(f"--port: must be between 1 and 65535, but got {args.port}")
    if args.refresh <= 0:
        raise UsageError(f"--refresh: must be a positive number of seconds, but got {args.refresh}")
    from hpo_kfp.cli._store import _experiment_named

    store = open_store(store_url(args), type_prefix=type_prefix(args), read_only=True)
    experiment, key = _experiment_named(store, args, args.experiment)
    live = LiveStudy(store, experiment, key)
    stop = threading.Event()
    threading.Thread(target=live.follow, args=(args.refresh, stop), daemon=True).start()
    print(f"{key}: optuna-dashboard at http://127.0.0.1:{args.port}/ (refreshing every {args.refresh:g} s)")
    try:
        # Loopback only: the dashboard has no authentication.
        run_server(live.storage, host="127.0.0.1", port=args.port)
    finally:
        stop.set()
    return 0

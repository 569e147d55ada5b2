"""What the service does with the experiment store, whichever API a request came through.

Both REST APIs (Kruize's and ``/v1``) are thin translations onto :class:`Tuner`; the store
holds all state, so any number of server processes can share one store, and a restarted
server carries on where it stopped. Experiments here are the ones ``hpo-kfp report`` and
the pipelines see: a trial the service hands out is a claimed trial of the store (dense,
unique numbers, the budget exact across processes), and every finished trial updates the
experiment's recorded status and best trial as a pipeline's decide step does. A process keeps
what it last read of each experiment (the store object its history, the sampler its study)
and brings it up to date from the store's changes at every call: a call costs what the
sampler costs, and the store still decides everything.

Suggestions are idempotent per client id, as Vizier's are: a client that asks again while
trials it was given are still active gets those trials back, not new ones (a retried
request after a lost reply costs no trial). The client id travels with the trial in its
``sampler_attrs`` under :data:`CLIENT_ATTR`, because that is the part of a trial record
that every store keeps whole; samplers ignore keys they did not write.

Within one process, claims on one experiment take turns, and the requests that arrive while
a claim runs are served together by the next one: claimers racing in the store would all
read and suggest, and all but one retry, while one claim of N trials rebuilds the sampler's
study once (with 8 clients on 2 cores this took the service from 28 to 50-odd calls per
second; see benchmarks/RESULTS.md). The store's uniqueness rule still orders claims across
processes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from hpo_kfp.claim import claim
from hpo_kfp.decide import Decision, decide
from hpo_kfp.early_stopping import StopWatch, stop_rule
from hpo_kfp.errors import Conflict, NotFound, RequestError, SearchSpaceChanged, SpecError
from hpo_kfp.history import ACTIVE, History, TrialRecord, TrialStatus
from hpo_kfp.metrics import MetricLog, observe
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.store import ExperimentKey, ExperimentSummary, Store

__all__ = ["CLIENT_ATTR", "StopAnswer", "Suggestion", "Tuner", "parse_document"]

CLIENT_ATTR = "hpo_kfp.service.client"
"""The key of a trial's ``sampler_attrs`` holding the client id it was handed to."""


@dataclass(frozen=True, kw_only=True)
class Suggestion:
    """The answer to a request for trials."""

    trials: list[TrialRecord]
    """The trials handed out (``Running``); empty when there is none to give now."""
    done: bool
    """Whether the experiment has ended: no trial will be handed out any more."""
    reason: str
    """Why no trial was handed out (empty when some were)."""


@dataclass(frozen=True, kw_only=True)
class StopAnswer:
    """The answer to an intermediate report: whether the trial should stop now."""

    should_stop: bool
    reason: str = ""


def parse_document(document: Any, namespace: str, *, field: str = "body") -> tuple[Experiment, ExperimentKey]:
    """Reads a Katib Experiment (or a Trainer OptimizationJob), as a mapping or YAML text.

    The trial template is optional: the service's trials run wherever its clients run them.

    Raises:
        RequestError: The document breaks a rule (the field path inside ``field``), or its
            ``metadata.namespace`` differs from ``namespace``.
    """
    try:
        experiment = parse_experiment(document, trial_template=None)
    except SpecError as error:
        raise RequestError(f"{field}.{error.path}", f"{error.must}, but got {error.got}") from error
    if namespace and experiment.namespace and experiment.namespace != namespace:
        raise RequestError(
            "namespace",
            f"must match the document's metadata.namespace, but got {namespace!r} and "
            f"{experiment.namespace!r}",
        )
    return experiment, ExperimentKey.of(experiment, namespace)


class Tuner:
    """The service's operations on one store.

    Every method may raise :class:`~hpo_kfp.store.StoreError` when the store fails; the
    errors listed are those of the request.
    """

    def __init__(self, store: Store, *, owner: str, lease: float = 0.0) -> None:
        """``owner`` names this process as a claimer of trials asked for without a client id;
        a trial whose client has said nothing (no report, no completion) for ``lease``
        seconds is handed out again by the next suggestion (0: never)."""
        self.store = store
        self._owner = owner
        self._lease = lease
        self._guard = threading.Lock()
        self._locks: dict[ExperimentKey, threading.Lock] = {}
        self._open: dict[ExperimentKey, _Batch] = {}
        self._decided: dict[ExperimentKey, tuple[str, str, str]] = {}  # see _save_decision
        self._leases_seen: dict[ExperimentKey, float] = {}  # when each was last looked at

    # --- experiments -----------------------------------------------------------------

    def create(self, experiment: Experiment, key: ExperimentKey, *, exist_ok: bool, field: str) -> bool:
        """Records the experiment; returns False when the store held it already.

        Raises:
            Conflict: The store holds it already and ``exist_ok`` is False, or holds it with
                another search space (named at ``field``).
        """
        exists = Conflict(field, f"must name a new experiment, but {str(key)!r} exists")
        if not exist_ok and self.store.load_experiment(key) is not None:
            raise exists  # before the store is asked to check (and keep) the new spec
        try:
            created = self.store.open_experiment(experiment, key)
        except SearchSpaceChanged as error:
            raise Conflict(field, str(error)) from error
        if not created and not exist_ok:
            raise exists  # another client recorded it meanwhile: the store's key decided
        return created

    def experiment(self, key: ExperimentKey, *, field: str) -> Experiment:
        """The stored experiment.

        Raises:
            NotFound: The store does not hold it (named at ``field``).
        """
        experiment = self.store.load_experiment(key)
        if experiment is None:
            raise NotFound(field, f"must name an experiment of the store, but there is no {str(key)!r}")
        return experiment

    def experiments(self) -> list[ExperimentSummary]:
        """Every experiment of the store."""
        return self.store.experiments()

    def delete(self, key: ExperimentKey, *, field: str) -> None:
        """Removes the experiment and its trials.

        Raises:
            NotFound: The store does not hold it.
        """
        if not self.store.delete(key):
            raise NotFound(field, f"must name an experiment of the store, but there is no {str(key)!r}")
        with self._guard:
            self._decided.pop(key, None)

    def decision(self, key: ExperimentKey, *, field: str) -> tuple[Experiment, History, Decision]:
        """The experiment, its history and where it stands (best trial, Pareto front)."""
        experiment = self.experiment(key, field=field)
        history = self.store.history(key)
        return experiment, history, decide(experiment, history)

    # --- trials ----------------------------------------------------------------------

    def suggest(self, key: ExperimentKey, count: int, *, client_id: str = "", field: str) -> Suggestion:
        """Hands out up to ``count`` trials, or the active ones already given to ``client_id``.

        Raises:
            NotFound: No such experiment.
        """
        experiment = self.experiment(key, field=field)
        if client_id:
            history = self.store.history(key)
            mine = [
                t
                for t in history.trials
                if t.status in ACTIVE and t.sampler_attrs.get(CLIENT_ATTR) == client_id
            ]
            if mine:
                return Suggestion(trials=mine[:count], done=False, reason="")
        claimed, history = self._claim(experiment, key, count)
        started = []
        for trial in claimed:
            # A released trial handed out again carries its former client's id: replace it.
            attrs = {k: v for k, v in trial.sampler_attrs.items() if k != CLIENT_ATTR}
            if client_id:
                attrs[CLIENT_ATTR] = client_id
            running = trial if trial.status == "Running" else _running(trial)
            running = replace(running, sampler_attrs=attrs)
            if running != trial:  # the claim wrote new trials as running, for no client
                self.store.record(key, running)
            started.append(running)
        if started:
            return Suggestion(trials=started, done=False, reason="")
        decision = decide(experiment, history)
        if decision.done:
            return Suggestion(trials=[], done=True, reason=f"the experiment has ended ({decision.reason})")
        active = decision.counts.get("active", 0)
        return Suggestion(
            trials=[],
            done=False,
            reason=f"no trial to hand out now: {active} active trials hold the rest of the budget "
            f"(maxTrialCount={experiment.max_trial_count}) or the algorithm waits for them",
        )

    def trial(self, key: ExperimentKey, number: int, *, field: str, experiment_field: str) -> TrialRecord:
        """One trial by number.

        Raises:
            NotFound: No such experiment (``experiment_field``) or trial (``field``).
        """
        try:
            return _find(self.store.history(key), number, key, field)
        except NotFound:
            self.experiment(key, field=experiment_field)  # no such experiment: say that first
            raise

    def report(
        self,
        key: ExperimentKey,
        number: int,
        metrics: Mapping[str, float],
        *,
        field: str,
        trial_field: str,
        experiment_field: str,
    ) -> StopAnswer:
        """Adds intermediate values to an active trial's series and applies the early-stopping
        rule (median stopping); a trial the rule stops is recorded ``EarlyStopped``.

        Raises:
            RequestError: A value is not finite (named under ``field``).
            NotFound: No such experiment or trial.
            Conflict: The trial has finished.
        """
        _check_finite(metrics, field)
        experiment = self.experiment(key, field=experiment_field)
        history = self.store.history(key)
        trial = _find(history, number, key, trial_field)
        if trial.status not in ACTIVE:
            raise Conflict(
                trial_field, f"must name an active trial to report on, but {trial.name} is {trial.status}"
            )
        stamp = _now()
        series = {name: list(points) for name, points in trial.series.items()}
        for name, value in metrics.items():
            series.setdefault(name, []).append((stamp, float(value)))
        updated = replace(trial, status="Running", series=series)
        answer = StopAnswer(should_stop=False)
        rule = stop_rule(experiment, history)
        if rule is not None:
            watch = StopWatch(rule)
            if watch.feed(MetricLog(rule.metric, value) for _, value in series.get(rule.metric, [])):
                updated = replace(updated, status="EarlyStopped", reason=watch.reason, finished=stamp)
                answer = StopAnswer(should_stop=True, reason=watch.reason)
        self.store.record(key, updated)
        if answer.should_stop:
            self._save_decision(experiment, key, history, updated)
        return answer

    def complete(
        self,
        key: ExperimentKey,
        number: int,
        metrics: Mapping[str, float],
        *,
        field: str,
        trial_field: str,
        experiment_field: str,
        experiment: Experiment | None = None,
    ) -> TrialRecord:
        """Ends a trial as ``Succeeded`` with its final metrics; each metric reduces with its
        reported series by the experiment's strategy (the latest value by default). Completing
        it again with the same values changes nothing. ``experiment``: the stored experiment,
        when the caller has just read it.

        Raises:
            RequestError: An objective metric is missing, or a value is not finite.
            NotFound: No such experiment or trial.
            Conflict: The trial has ended otherwise.
        """
        _check_finite(metrics, field)
        if experiment is None:
            experiment = self.experiment(key, field=experiment_field)
        history = self.store.history(key)
        trial = _find(history, number, key, trial_field)
        for term in experiment.objective.terms:
            if term.metric not in metrics and not trial.series.get(term.metric):
                raise RequestError(
                    f"{field}.{term.metric}",
                    f"must be given: {term.metric} is an objective of {experiment.name}, but got nothing",
                )
        if trial.status not in ACTIVE:
            if trial.status == "Succeeded" and all(trial.metrics.get(n) == v for n, v in metrics.items()):
                return trial  # the same completion again (a retried request)
            raise Conflict(
                trial_field,
                f"must name an active trial to complete, but {trial.name} is {trial.status}"
                + (" with other values" if trial.status == "Succeeded" else ""),
            )
        stamp = _now()
        logs = [
            MetricLog(name, value, when) for name, points in trial.series.items() for when, value in points
        ]
        logs += [MetricLog(name, float(value), stamp) for name, value in metrics.items()]
        observation = observe(logs, experiment.objective)
        done = replace(
            trial,
            status="Succeeded",
            values=observation.values,
            metrics=observation.metrics,
            series=observation.series,
            finished=stamp,
        )
        self.store.record(key, done)
        self._save_decision(experiment, key, history, done)
        return done

    def fail(
        self,
        key: ExperimentKey,
        number: int,
        reason: str,
        *,
        status: TrialStatus = "Failed",
        trial_field: str,
        experiment_field: str,
    ) -> TrialRecord:
        """Ends a trial as ``Failed`` (or ``MetricsUnavailable``); failing it again changes nothing.

        Raises:
            NotFound: No such experiment or trial.
            Conflict: The trial has ended otherwise.
        """
        experiment = self.experiment(key, field=experiment_field)
        history = self.store.history(key)
        trial = _find(history, number, key, trial_field)
        if trial.status not in ACTIVE:
            if trial.status == status:
                return trial
            raise Conflict(
                trial_field, f"must name an active trial to fail, but {trial.name} is {trial.status}"
            )
        failed = replace(trial, status=status, reason=reason, finished=_now())
        self.store.record(key, failed)
        self._save_decision(experiment, key, history, failed)
        return failed

    # --- helpers ---------------------------------------------------------------------

    def _claim(
        self, experiment: Experiment, key: ExperimentKey, count: int
    ) -> tuple[list[TrialRecord], History]:
        """Claims ``count`` trials, together with the requests for the same experiment that
        arrived while an earlier claim ran: one claim (one study rebuilt, one write) serves
        them all, and hands each its share in arrival order. Batches of one experiment run
        one after another."""
        with self._guard:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch()
            share = len(batch.counts)
            batch.counts.append(count)
        if leader:
            # The batch's first request runs it once the previous batch is done; the others
            # only wait for its result (waiting on the lock too, they could be overtaken by
            # later batches' leaders again and again: ~0.6 s at the 99th percentile). This
            # lock orders one server's batches; the turn among servers and processes is the
            # store's (Store.turn, taken by claim).
            with self._lock(key):
                with self._guard:
                    del self._open[key]  # requests from now on form the next batch
                try:
                    if self._lease and self._lease_check_due(key):
                        # A client that asked and vanished (or a server killed mid-claim) must
                        # not hold the rest of the budget for ever.
                        self.store.release(key, older_than=self._lease)
                    batch.result = claim(
                        self.store, experiment, key, sum(batch.counts), owner=self._owner, hand_out=_running
                    )
                except Exception as error:
                    batch.error = error
                finally:
                    batch.done.set()
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        assert batch.result is not None
        claimed, history = batch.result
        first = sum(batch.counts[:share])
        return claimed[first : first + count], history

    def _lease_check_due(self, key: ExperimentKey) -> bool:
        """Whether to look for ended leases before this claim: at most once a second (a
        tenth of the lease when shorter), not before every claim (a query each)."""
        now = time.monotonic()
        with self._guard:
            if now - self._leases_seen.get(key, -math.inf) < min(1.0, self._lease / 10):
                return False
            self._leases_seen[key] = now
        return True

    def _lock(self, key: ExperimentKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _save_decision(
        self, experiment: Experiment, key: ExperimentKey, before: History, change: TrialRecord
    ) -> None:
        """Records the experiment's status and best trial when this trial's end changed them.

        Decided from the history this request read, with its own change: another request's
        change made meanwhile is in the decision that request saves. Most trials change
        neither (the best improves now and then), and a write saved is a commit saved (~5 ms
        on SQLite) and one lock fewer for claims to wait on. What it is compared with is the
        decision this process last made for the experiment (decided once from ``before`` when
        there is none): one pass over the history, not two.
        """
        after = before.upsert([change])
        new = decide(experiment, after)
        with self._guard:
            old = self._decided.get(key)
        if old is None:
            made = decide(experiment, before)
            old = (made.status, made.reason or "", _name(made.best))
        now = (new.status, new.reason or "", _name(new.best))
        if now != old:
            self.store.save_decision(key, new, after.study_attrs)
        with self._guard:
            self._decided[key] = now


@dataclass
class _Batch:
    """Requests for trials of one experiment that one claim serves."""

    counts: list[int] = field(default_factory=list)
    """How many trials each request asked for, in arrival order."""
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[list[TrialRecord], History] | None = None
    error: BaseException | None = None


def _running(trial: TrialRecord) -> TrialRecord:
    """A trial as it is handed out to a client."""
    return replace(trial, status="Running", started=_now())


def _name(trial: TrialRecord | None) -> str:
    return trial.name if trial is not None else ""


def _find(history: History, number: int, key: ExperimentKey, field: str) -> TrialRecord:
    for trial in history.trials:
        if trial.number == number:
            return trial
    raise NotFound(field, f"must name a trial of {str(key)!r}, but there is no trial {number}")


def _check_finite(metrics: Mapping[str, float], field: str) -> None:
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise RequestError(f"{field}.{name}", f"must be a finite number, but got {value!r}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")

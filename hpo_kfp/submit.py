"""Starting tuning runs on a KFP cluster: one run now, or a recurring run.

``submit`` starts one run, which holds the whole experiment: its lane tasks loop over the
trials in their own pods, so the run's Argo Workflow does not grow with them
(:mod:`hpo_kfp.pipeline.run_size`). No recurring run is created behind it.

A recurring run (``schedule``) continues the same experiment each time: its first round reads what the
metadata store holds of the experiment, and each run adds up to N trials (its budget), so
e.g. a nightly schedule keeps tuning on fresh data. Caching is off (every trial must run)
and at most one run of a schedule is active at a time.

Before a run starts, the KFP server's release (``tag_name`` of its healthz) is checked
against what the compiled pipeline uses (:mod:`hpo_kfp.backend`): an older backend is
refused in one line instead of failing mid-run.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hpo_kfp.backend import check_backend, required_features
from hpo_kfp.compat import kfp_server_healthz
from hpo_kfp.errors import AccessDenied, ClusterError, HpoKfpError, OptionError
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings

if TYPE_CHECKING:
    from hpo_kfp.pipeline.run_size import RunPlan

__all__ = [
    "ClusterAccess",
    "Submitted",
    "check_kube_context",
    "every_seconds",
    "periodic_window",
    "schedule",
    "schedule_end",
    "schedule_timing",
    "six_field_cron",
    "submit",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, kw_only=True)
class ClusterAccess:
    """How to reach the KFP API and who to be there."""

    host: str | None
    """The KFP API's URL (e.g. ``https://kubeflow.example.com/pipeline``); None to find it
    through the kube config (``kube_context``)."""
    namespace: str | None = None
    """The KFP namespace (a multi-user profile) to run in."""
    token: str | None = None
    """A bearer token (``--token`` or ``KFP_TOKEN``)."""
    kube_context: str | None = None
    """A kube config context whose credentials reach the cluster."""
    service_account_token: str | None = None
    """Path of a projected service-account token (inside a cluster)."""
    verify_ssl: bool = True

    @property
    def where(self) -> str:
        """The API as the user named it: its URL, or the kube context that leads to it."""
        return self.host or f"kube context {self.kube_context!r}"

    def client(self) -> Any:
        """A KFP client for the API.

        Raises:
            OptionError: ``kube_context`` names no context of the kube config.
        """
        import kfp.client  # explicitly: the command line loads kfp without its client (compat)

        if self.kube_context:
            # kfp.Client falls back to localhost when the context is missing: say so first.
            check_kube_context(self.kube_context)
        credentials = None
        if self.service_account_token:
            credentials = kfp.client.ServiceAccountTokenVolumeCredentials(path=self.service_account_token)
        with _quiet(), self.calling():
            return kfp.client.Client(
                host=self.host,
                namespace=self.namespace or "kubeflow",
                existing_token=self.token,
                kube_context=self.kube_context,
                credentials=credentials,
                verify_ssl=self.verify_ssl,
            )

    @contextlib.contextmanager
    def calling(self) -> Any:
        """Turns the KFP client's failures (refused, unreachable, unauthorised) into one line."""
        try:
            yield
        except HpoKfpError:
            raise
        except Exception as error:
            status = getattr(error, "status", None)
            detail = (
                f"HTTP {status} {getattr(error, 'reason', '')}".strip()
                if status
                else str(error).splitlines()[0]
            )
            message = f"the KFP API at {self.where} must accept the request, but it answered: {detail}"
            # A refused credential is the user's input; anything else is the cluster's failure.
            if status in (401, 403):
                raise AccessDenied(message) from error
            raise ClusterError(message) from error

    def run_url(self, run_id: str) -> str:
        return f"{(self.host or '').rstrip('/')}/#/runs/details/{run_id}"

    def check_backend(self, client: Any, package: Path) -> None:
        """Refuses a KFP backend older than the compiled pipeline ``package`` needs.

        Raises:
            BackendTooOld: Naming the feature, the release it needs and the server's.
            ClusterError: The server did not answer its healthz.
        """
        with _quiet(), self.calling():
            tag = kfp_server_healthz(client).get("tag_name")
        with open(package, encoding="utf-8") as stream:
            pipeline_spec = next(yaml.safe_load_all(stream))
        check_backend(str(tag) if tag else None, required_features(pipeline_spec), self.where)


def check_kube_context(context: str) -> None:
    """Refuses a kube config context that is not in the kube config, naming both.

    Raises:
        OptionError: No readable kube config, or no context of that name in it.
    """
    from kubernetes import config

    path = os.environ.get("KUBECONFIG") or None
    where = path or "~/.kube/config"
    try:
        contexts, _ = config.list_kube_config_contexts(config_file=path)
    except (config.ConfigException, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OptionError(
            f"--kube-context: {context!r} must be a context of a readable kube config, but {where} "
            f"gave: {reason}"
        ) from error
    names = sorted(str(c.get("name")) for c in contexts or [])
    if context not in names:
        raise OptionError(
            f"--kube-context: must name a context of the kube config {where} ({', '.join(names) or 'none'}), "
            f"but got {context!r}"
        )


@dataclass(frozen=True, kw_only=True)
class Submitted:
    """A run started on a cluster."""

    run_id: str
    url: str
    plan: RunPlan


def submit(
    experiment: Experiment,
    access: ClusterAccess,
    settings: StepSettings,
    *,
    image: str,
    run_name: str | None = None,
    synchronous: bool = False,
    trials_per_run: int = 0,
) -> Submitted:
    """Compiles the experiment's pipeline and starts one run: the whole experiment, or
    ``trials_per_run`` more trials of it (a later run continues what the store holds)."""
    client = access.client()
    with _compiled(
        experiment, settings, image, synchronous=synchronous, trials_per_run=trials_per_run
    ) as plan:
        access.check_backend(client, plan.path)
        with _quiet(), access.calling():
            result = client.create_run_from_pipeline_package(
                str(plan.path),
                run_name=run_name or experiment.name,
                experiment_name=experiment.name,
                namespace=access.namespace,
                enable_caching=False,
            )
        run_id = str(result.run_id)
    return Submitted(run_id=run_id, url=access.run_url(run_id), plan=plan)


def schedule(
    experiment: Experiment,
    access: ClusterAccess,
    settings: StepSettings,
    *,
    image: str,
    trials_per_run: int,
    cron: str | None = None,
    every: str | None = None,
    name: str | None = None,
    synchronous: bool = False,
    until: str | None = None,
    runs: int | None = None,
) -> str:
    """Creates a recurring run that adds ``trials_per_run`` trials to the experiment each
    time (fewer if that many do not fit one run: the share is then what fits).

    Args:
        until: No run starts after this RFC 3339 time (:func:`schedule_end`); None: never.
            The ScheduledWorkflow controller schedules a run only while its time is not past
            ``end_time`` (``getNextScheduledEpoch`` in KFP's
            ``backend/src/crd/controller/scheduledworkflow/util``, periodic and cron alike).
        runs: Start at most this many runs (``every`` only, :func:`periodic_window`).

    Raises:
        OptionError: Neither or both of ``cron`` and ``every``, either malformed, or
            ``runs`` with ``cron`` or below 1.
    """
    timing = schedule_timing(cron=cron, every=every, until=until, runs=runs)
    client = access.client()
    with _compiled(
        experiment, settings, image, synchronous=synchronous, trials_per_run=trials_per_run
    ) as plan:
        access.check_backend(client, plan.path)
        with _quiet(), access.calling():
            return _create_recurring(
                client,
                access,
                experiment,
                plan,
                name=name or f"{experiment.name}-tuning",
                description=f"hpo-kfp: {plan.share or trials_per_run} more trials of {experiment.name} "
                "per run",
                timing=timing,
            )


def _create_recurring(
    client: Any,
    access: ClusterAccess,
    experiment: Experiment,
    plan: RunPlan,
    *,
    name: str,
    description: str,
    timing: dict[str, Any],
) -> str:
    group = client.create_experiment(name=experiment.name, namespace=access.namespace)
    recurring = client.create_recurring_run(
        experiment_id=group.experiment_id,
        job_name=name,
        description=description,
        pipeline_package_path=str(plan.path),
        max_concurrency=1,
        no_catchup=True,
        enable_caching=False,
        **timing,
    )
    return str(recurring.recurring_run_id)


def schedule_timing(
    *, cron: str | None = None, every: str | None = None, until: str | None = None, runs: int | None = None
) -> dict[str, Any]:
    """The trigger of a recurring run, as ``kfp.Client.create_recurring_run`` takes it: a cron
    expression or an interval, and an end (``until``, an RFC 3339 time, or after ``runs`` runs
    of an interval).

    Raises:
        OptionError: Neither or both of ``cron`` and ``every``, either malformed, or ``runs``
            with ``cron`` or below 1.
    """
    if (cron is None) == (every is None):
        raise OptionError("give one of --cron and --every")
    if every is None:
        if runs is not None:
            raise OptionError(
                "--runs: needs --every (the runs of a cron schedule are not evenly spaced: "
                "end it with --until)"
            )
        timing: dict[str, Any] = {"cron_expression": six_field_cron(str(cron))}
    else:
        timing = {"interval_second": every_seconds(every)}
    if until is not None:
        timing["end_time"] = until
    if runs is not None:
        timing["start_time"], timing["end_time"] = periodic_window(timing["interval_second"], runs)
    return timing


def periodic_window(interval: int, runs: int, *, now: datetime | None = None) -> tuple[str, str]:
    """The ``start_time`` and ``end_time`` of a periodic schedule of ``interval`` seconds that
    starts ``runs`` runs, as RFC 3339 UTC times.

    KFP's ScheduledWorkflow controller schedules a periodic run at ``start_time + k *
    interval`` for k = 1, 2, ... while that time is not past ``end_time``
    (``PeriodicSchedule.getNextScheduledEpoch`` in KFP's
    ``backend/src/crd/controller/scheduledworkflow/util/periodic_schedule.go``): an end half
    an interval after the last wanted run lets exactly ``runs`` start. A run started late
    (the controller catching up, ``no_catchup``) moves the later ones, so at most ``runs``.

    Raises:
        OptionError: ``runs`` below 1.
    """
    if runs < 1:
        raise OptionError(f"--runs: must be at least 1, but got {runs}")
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    end = start + timedelta(seconds=interval * runs + interval // 2)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_end(text: str, *, now: datetime | None = None) -> str:
    """``--until`` as the RFC 3339 UTC time KFP's API takes: a time with its offset (or UTC
    without one), or a date, meaning the end of that day in UTC.

    Raises:
        OptionError: Not a date or time, or not in the future.
    """
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            end = datetime.fromisoformat(text.strip()).replace(hour=23, minute=59, second=59, tzinfo=UTC)
        else:
            end = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    except ValueError:
        raise OptionError(
            "--until: must be an RFC 3339 time (2027-01-31T18:00:00Z) or a date (2027-01-31), "
            f"but got {text!r}"
        ) from None
    if end <= (now or datetime.now(UTC)):
        raise OptionError(f"--until: must be in the future, but got {text!r} ({end:%Y-%m-%dT%H:%M:%SZ})")
    return end.strftime("%Y-%m-%dT%H:%M:%SZ")


def six_field_cron(expression: str) -> str:
    """KFP's cron has a seconds field: a standard 5-field expression gets ``0`` seconds."""
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return expression
    raise OptionError(f"--cron: must have 5 fields (or 6 with seconds), but got {expression!r}")


def every_seconds(duration: str | None) -> int:
    """``30m``, ``6h``, ``1d``, ``1w`` or a number of seconds, as seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", duration or "")
    if match is None or int(match.group(1)) == 0:
        raise OptionError(f"--every: must be a positive duration like 30m, 6h or 1d, but got {duration!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


@contextlib.contextmanager
def _compiled(
    experiment: Experiment, settings: StepSettings, image: str, *, synchronous: bool, trials_per_run: int
) -> Iterator[RunPlan]:
    from hpo_kfp.pipeline.run_size import compile_run

    with tempfile.TemporaryDirectory(prefix="hpo-kfp-") as folder:
        yield compile_run(
            experiment,
            settings,
            Path(folder) / "pipeline.yaml",
            image=image,
            synchronous=synchronous,
            trials_per_run=trials_per_run,
        )


@contextlib.contextmanager
def _quiet() -> Any:
    # kfp.Client prints links and warnings of its own; the command prints what matters.
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield

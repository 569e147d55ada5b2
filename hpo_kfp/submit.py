"""Starting tuning runs on a KFP cluster: one run now, or a recurring run.

A recurring run continues the same experiment each time: its first round reads what the
metadata store holds of the experiment, and each run adds up to N trials (its budget), so
e.g. a nightly schedule keeps tuning on fresh data. Caching is off (every trial must run)
and at most one run of a schedule is active at a time.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo_kfp.errors import ClusterError, HpoKfpError, InputError
from hpo_kfp.planning import check_rounds
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["ClusterAccess", "every_seconds", "six_field_cron", "schedule", "submit"]

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

    def client(self) -> Any:
        import kfp

        credentials = None
        if self.service_account_token:
            credentials = kfp.client.ServiceAccountTokenVolumeCredentials(path=self.service_account_token)
        with _quiet(), self.calling():
            return kfp.Client(
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
            message = (
                f"the KFP API at {self.host or self.kube_context} must accept the request, "
                f"but it answered: {detail}"
            )
            # A refused credential is the user's input; anything else is the cluster's failure.
            if status in (401, 403):
                raise InputError(message) from error
            raise ClusterError(message) from error

    def run_url(self, run_id: str) -> str:
        return f"{(self.host or '').rstrip('/')}/#/runs/details/{run_id}"


def submit(
    experiment: Experiment,
    access: ClusterAccess,
    settings: StepSettings,
    *,
    image: str,
    run_name: str | None = None,
) -> tuple[str, str]:
    """Compiles the experiment's pipeline and starts one run; returns (run id, URL)."""
    client = access.client()
    with _compiled(experiment, settings, image, rounds=None) as package, _quiet(), access.calling():
        result = client.create_run_from_pipeline_package(
            str(package),
            run_name=run_name or experiment.name,
            experiment_name=experiment.name,
            namespace=access.namespace,
            enable_caching=False,
        )
    return str(result.run_id), access.run_url(str(result.run_id))


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
) -> str:
    """Creates a recurring run that adds ``trials_per_run`` trials to the experiment each time.

    Raises:
        InputError: Neither or both of ``cron`` and ``every``, or either malformed.
    """
    if (cron is None) == (every is None):
        raise InputError("give one of --cron and --every")
    budgeted = StepSettings(**{**settings.__dict__, "run_budget": trials_per_run})
    rounds = math.ceil(trials_per_run / experiment.parallel_trial_count)
    check_rounds(rounds)
    timing: dict[str, Any] = (
        {"cron_expression": six_field_cron(cron)}
        if cron is not None
        else {"interval_second": every_seconds(every)}
    )
    client = access.client()
    with _quiet(), access.calling():
        group = client.create_experiment(name=experiment.name, namespace=access.namespace)
    with _compiled(experiment, budgeted, image, rounds=rounds) as package, _quiet(), access.calling():
        recurring = client.create_recurring_run(
            experiment_id=group.experiment_id,
            job_name=name or f"{experiment.name}-tuning",
            description=f"hpo-kfp: {trials_per_run} more trials of {experiment.name} per run",
            pipeline_package_path=str(package),
            max_concurrency=1,
            no_catchup=True,
            enable_caching=False,
            **timing,
        )
    return str(recurring.recurring_run_id)


def six_field_cron(expression: str) -> str:
    """KFP's cron has a seconds field: a standard 5-field expression gets ``0`` seconds."""
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return expression
    raise InputError(f"--cron: must have 5 fields (or 6 with seconds), but got {expression!r}")


def every_seconds(duration: str | None) -> int:
    """``30m``, ``6h``, ``1d``, ``1w`` or a number of seconds, as seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", duration or "")
    if match is None or int(match.group(1)) == 0:
        raise InputError(f"--every: must be a positive duration like 30m, 6h or 1d, but got {duration!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


@contextlib.contextmanager
def _compiled(experiment: Experiment, settings: StepSettings, image: str, rounds: int | None) -> Any:
    from hpo_kfp.pipeline.compact import compact_file
    from hpo_kfp.pipeline.loop import build_pipeline, compile_pipeline

    with tempfile.TemporaryDirectory(prefix="hpo-kfp-") as folder:
        package = Path(folder) / "pipeline.yaml"
        compile_pipeline(
            build_pipeline(experiment, settings=settings, rounds=rounds, base_image=image), package
        )
        compact_file(package)
        yield package


@contextlib.contextmanager
def _quiet() -> Any:
    # kfp.Client prints links and warnings of its own; the command prints what matters.
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield

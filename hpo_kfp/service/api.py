"""hpo-kfp's own REST API, version 1 (``/v1/...``; its OpenAPI document is ``/openapi.json``).

An experiment is created from a Katib Experiment (or a Trainer OptimizationJob), as JSON or
YAML, in a namespace (the ``namespace`` query parameter, else the document's
``metadata.namespace``, else none). Then: ask for trials (``suggestions``; idempotent per
``client_id``), report intermediate values and learn whether to stop (Katib's median
stopping rule, when the experiment has ``earlyStopping``), complete or fail each trial, read
the trials, the best trial and the Pareto front, delete. These are the same experiments
``hpo-kfp report`` and the pipelines read from the store.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hpo_kfp.decide import Decision
from hpo_kfp.errors import RequestError
from hpo_kfp.history import TrialRecord
from hpo_kfp.service.tuning import Tuner, parse_document
from hpo_kfp.store import ExperimentKey, ExperimentSummary

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["v1"])

_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_NAMESPACE = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"
_YAML = ("application/yaml", "application/x-yaml", "text/yaml")

NameParam = Path(..., pattern=_NAME, max_length=40, description="The experiment's metadata.name.")
NumberParam = Path(..., ge=0, le=2**31 - 1, description="The trial's number in the experiment.")
NamespaceQuery = Query("", pattern=_NAMESPACE, max_length=63, description="The experiment's namespace.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Trial(BaseModel):
    """One trial, as the store holds it."""

    name: str
    number: int
    status: str
    parameters: dict[str, int | float | str]
    values: list[float] | None = None
    metrics: dict[str, float] = {}
    started: str | None = None
    finished: str | None = None
    reason: str = ""


class ExperimentInfo(BaseModel):
    """An experiment of the store."""

    namespace: str
    name: str
    status: str
    reason: str
    trials: int
    best_trial: str
    best_objective: float | None = None
    updated: str


class ExperimentDetail(BaseModel):
    """An experiment, its settings and where it stands."""

    namespace: str
    name: str
    status: str
    reason: str
    algorithm: str
    objective: list[dict[str, str]]
    max_trial_count: int
    parallel_trial_count: int
    counts: dict[str, int]
    spec: dict[str, Any]


class SuggestRequest(_Strict):
    """A request for trials."""

    count: int = Field(1, ge=1, le=100, description="How many trials at most.")
    client_id: str = Field(
        "",
        max_length=100,
        pattern=r"^[A-Za-z0-9._:-]*$",
        description="Who asks: while trials given to this id are active, asking again returns them.",
    )


class SuggestReply(BaseModel):
    """The trials handed out."""

    trials: list[Trial]
    done: bool = Field(description="Whether the experiment has ended.")
    reason: str = Field(description="Why no trial was handed out, when none was.")


class MetricsBody(_Strict):
    """Metric values, by name."""

    metrics: dict[str, float] = Field(description="Finite values, by metric name.")


class FailBody(_Strict):
    """How a trial ended without a result."""

    reason: str = Field("", max_length=1000)
    status: Literal["Failed", "MetricsUnavailable"] = "Failed"


class StopReply(BaseModel):
    """Whether the trial should stop now; a stopped trial is recorded EarlyStopped."""

    should_stop: bool
    reason: str


class BestReply(BaseModel):
    """The best trial and, for several objectives, the Pareto front."""

    status: str
    reason: str
    best: Trial | None
    pareto: list[Trial]
    counts: dict[str, int]


_EXPERIMENT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "object", "description": "A Katib Experiment or OptimizationJob"}
        },
        "application/yaml": {"schema": {"type": "string", "description": "The same, as YAML"}},
    },
}


@router.post(
    "/experiments",
    summary="Create an experiment (or find it unchanged)",
    response_model=ExperimentDetail,
    status_code=201,
    responses={200: {"model": ExperimentDetail, "description": "It existed with the same search space"}},
    openapi_extra={"requestBody": _EXPERIMENT_BODY},
)
def create_experiment(
    request: Request, response: Response, namespace: str = NamespaceQuery
) -> ExperimentDetail:
    """201 when created, 200 when the store held it already with the same search space."""
    tuner: Tuner = request.app.state.tuner
    experiment, key = parse_document(_document(request), namespace)
    created = tuner.create(experiment, key, exist_ok=True, field="body.spec.parameters")
    response.status_code = 201 if created else 200
    return _detail(tuner, key)


@router.get("/experiments", summary="List the experiments of the store", response_model=list[ExperimentInfo])
def list_experiments(request: Request) -> list[ExperimentInfo]:
    tuner: Tuner = request.app.state.tuner
    return [_info(summary) for summary in tuner.experiments()]


@router.get("/experiments/{name}", summary="An experiment", response_model=ExperimentDetail)
def get_experiment(
    request: Request, name: str = NameParam, namespace: str = NamespaceQuery
) -> ExperimentDetail:
    return _detail(request.app.state.tuner, ExperimentKey(namespace, name))


@router.delete("/experiments/{name}", summary="Delete an experiment and its trials", status_code=204)
def delete_experiment(request: Request, name: str = NameParam, namespace: str = NamespaceQuery) -> Response:
    tuner: Tuner = request.app.state.tuner
    tuner.delete(ExperimentKey(namespace, name), field="name")
    return Response(status_code=204)


@router.post("/experiments/{name}/suggestions", summary="Hand out trials", response_model=SuggestReply)
def suggest(
    request: Request, body: SuggestRequest, name: str = NameParam, namespace: str = NamespaceQuery
) -> SuggestReply:
    """Up to ``count`` new trials, status Running; none when the budget is held by active
    trials or the experiment has ended (``done``)."""
    tuner: Tuner = request.app.state.tuner
    answer = tuner.suggest(ExperimentKey(namespace, name), body.count, client_id=body.client_id, field="name")
    return SuggestReply(trials=[_trial(t) for t in answer.trials], done=answer.done, reason=answer.reason)


@router.get("/experiments/{name}/trials", summary="Every trial", response_model=list[Trial])
def list_trials(request: Request, name: str = NameParam, namespace: str = NamespaceQuery) -> list[Trial]:
    tuner: Tuner = request.app.state.tuner
    _, history, _ = tuner.decision(ExperimentKey(namespace, name), field="name")
    return [_trial(t) for t in history.trials]


@router.get("/experiments/{name}/trials/{number}", summary="One trial", response_model=Trial)
def get_trial(
    request: Request, name: str = NameParam, number: int = NumberParam, namespace: str = NamespaceQuery
) -> Trial:
    tuner: Tuner = request.app.state.tuner
    return _trial(
        tuner.trial(ExperimentKey(namespace, name), number, field="number", experiment_field="name")
    )


@router.post(
    "/experiments/{name}/trials/{number}/intermediate",
    summary="Report intermediate values; learn whether to stop",
    response_model=StopReply,
)
def report(
    request: Request,
    body: MetricsBody,
    name: str = NameParam,
    number: int = NumberParam,
    namespace: str = NamespaceQuery,
) -> StopReply:
    tuner: Tuner = request.app.state.tuner
    answer = tuner.report(
        ExperimentKey(namespace, name),
        number,
        body.metrics,
        field="body.metrics",
        trial_field="number",
        experiment_field="name",
    )
    return StopReply(should_stop=answer.should_stop, reason=answer.reason)


@router.post(
    "/experiments/{name}/trials/{number}/complete",
    summary="End a trial with its final metrics",
    response_model=Trial,
)
def complete(
    request: Request,
    body: MetricsBody,
    name: str = NameParam,
    number: int = NumberParam,
    namespace: str = NamespaceQuery,
) -> Trial:
    tuner: Tuner = request.app.state.tuner
    trial = tuner.complete(
        ExperimentKey(namespace, name),
        number,
        body.metrics,
        field="body.metrics",
        trial_field="number",
        experiment_field="name",
    )
    return _trial(trial)


@router.post(
    "/experiments/{name}/trials/{number}/fail", summary="End a trial without a result", response_model=Trial
)
def fail(
    request: Request,
    body: FailBody,
    name: str = NameParam,
    number: int = NumberParam,
    namespace: str = NamespaceQuery,
) -> Trial:
    tuner: Tuner = request.app.state.tuner
    trial = tuner.fail(
        ExperimentKey(namespace, name),
        number,
        body.reason,
        status=body.status,
        trial_field="number",
        experiment_field="name",
    )
    return _trial(trial)


@router.get("/experiments/{name}/best", summary="Best trial and Pareto front", response_model=BestReply)
def best(request: Request, name: str = NameParam, namespace: str = NamespaceQuery) -> BestReply:
    tuner: Tuner = request.app.state.tuner
    _, _, decision = tuner.decision(ExperimentKey(namespace, name), field="name")
    return _best(decision)


def _document(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body: bytes = request.state.body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError("body", f"must be UTF-8 text, but byte {error.start} is not") from None
    if kind in _YAML:
        return text
    if kind != "application/json":
        raise RequestError(
            "Content-Type", f"must be application/json or application/yaml, but got {kind or 'nothing'!r}"
        )
    try:
        return json.loads(text)
    except ValueError as error:
        raise RequestError("body", f"must be JSON, but it is not ({error})") from None
    except RecursionError:
        raise RequestError(
            "body", "must be JSON nested at most a few hundred levels deep, but is deeper"
        ) from None


def _trial(trial: TrialRecord) -> Trial:
    return Trial(
        name=trial.name,
        number=trial.number,
        status=trial.status,
        parameters=trial.parameters,
        values=list(trial.values) if trial.values is not None else None,
        metrics=trial.metrics,
        started=trial.started,
        finished=trial.finished,
        reason=trial.reason,
    )


def _info(summary: ExperimentSummary) -> ExperimentInfo:
    return ExperimentInfo(
        namespace=summary.namespace,
        name=summary.name,
        status=summary.status,
        reason=summary.reason,
        trials=summary.trials,
        best_trial=summary.best_trial,
        best_objective=summary.best_objective,
        updated=summary.updated,
    )


def _detail(tuner: Tuner, key: ExperimentKey) -> ExperimentDetail:
    experiment, _, decision = tuner.decision(key, field="name")
    return ExperimentDetail(
        namespace=key.namespace,
        name=key.name,
        status=decision.status,
        reason=decision.reason or "",
        algorithm=experiment.algorithm.name,
        objective=[{"metric": t.metric, "direction": t.direction} for t in experiment.objective.terms],
        max_trial_count=experiment.max_trial_count,
        parallel_trial_count=experiment.parallel_trial_count,
        counts=decision.counts,
        spec=dict(experiment.source or {}),
    )


def _best(decision: Decision) -> BestReply:
    return BestReply(
        status=decision.status,
        reason=decision.reason or "",
        best=_trial(decision.best) if decision.best is not None else None,
        pareto=[_trial(t) for t in decision.pareto],
        counts=decision.counts,
    )

"""Kruize HPO's REST API (kruize/hpo ``design/API.md``), on the experiment store.

Kruize's clients drive an experiment with one endpoint, ``POST /experiment_trials``, whose
``operation`` says what to do: ``EXP_TRIAL_GENERATE_NEW`` (create the experiment from a
``search_space`` and hand out trial 0), ``EXP_TRIAL_GENERATE_SUBSEQUENT`` (hand out the next
trial), ``EXP_TRIAL_RESULT`` (a trial's outcome) and ``EXP_DELETE``; ``GET /experiment_trials``
reads a trial's configuration as ``[{"tunable_name", "tunable_value"}]``. Paths, field names
and the successful replies (a trial number; ``0`` for a result or a delete) are Kruize's, so
its scripts work unchanged. Where this server differs on purpose:

* ``parallel_trials`` may be above 1: ``EXP_TRIAL_GENERATE_SUBSEQUENT`` hands out a new,
  distinct trial while others run, never more than ``total_trials`` in all (across every
  server process on the store). It is recorded as the experiment's ``parallelTrialCount``
  but not enforced: the budget is. When nothing is left to hand out the reply is 400, as
  Kruize's (a duplicate ``EXP_TRIAL_GENERATE_NEW`` and a trial not handed out yet too).
* any trial's configuration can be read, not only the current one's;
* replies are JSON (``application/json``): a trial number is the JSON number; a refusal is
  ``{"error", "field"}`` with a 4xx status (Kruize answers ``-1`` as text/html);
* negative results are accepted; ``failure`` and ``error`` end the trial ``Failed``;
* state lives in the store: a restart loses nothing, and several servers can share it;
* ``experiment_name`` becomes the Katib experiment's ``metadata.name``, so it must be a
  Kubernetes-style name of at most 40 characters (Kruize takes any string);
* ``hpo_algo_impl`` maps ``optuna_tpe`` to Katib's ``tpe``, ``optuna_tpe_multivariate`` to
  ``multivariate-tpe`` and ``optuna_skopt`` to ``bayesianoptimization`` (a Gaussian process,
  as Kruize's scikit-optimize one); any of Katib's algorithm names hpo-kfp runs is accepted too;
* ``GET /health`` answers ``{"status": "ok", "grpc": ...}`` as JSON (Kruize: the text ``OK``);
* ``GET /plot`` answers a PNG drawn by Optuna's matplotlib plots (Kruize: plotly as HTML),
  with the ``plot`` extra installed on the server (else 501).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from hpo_kfp.algorithms import ALGORITHMS
from hpo_kfp.errors import Conflict, NotFound, RequestError, SpecError, Unavailable
from hpo_kfp.service.tuning import Tuner
from hpo_kfp.spec import parse_experiment
from hpo_kfp.spec._reader import INT32_MAX
from hpo_kfp.store import ExperimentKey

__all__ = ["ALGORITHM_NAMES", "PLOTS", "TunableValue", "katib_document", "router"]

ALGORITHM_NAMES = {
    "optuna_tpe": "tpe",
    "optuna_tpe_multivariate": "multivariate-tpe",
    "optuna_skopt": "bayesianoptimization",
}
"""Kruize's ``hpo_algo_impl`` values, and the Katib algorithm that runs each."""

_TYPES = {"double": "double", "integer": "int", "categorical": "categorical"}
_OPERATIONS = ("EXP_TRIAL_GENERATE_NEW", "EXP_TRIAL_GENERATE_SUBSEQUENT", "EXP_TRIAL_RESULT", "EXP_DELETE")
_RESULTS = ("success", "failure", "error")
_NAMESPACE = ""
"""Kruize has no namespaces: its experiments are the store's experiments without one."""

_SPACE = "search_space"
# Katib paths the spec reader names, and the search space fields they came from.
_PATHS = (
    (re.compile(r"^spec\.parameters\[(\d+)\]\.feasibleSpace\.min"), r"tunables[\1].lower_bound"),
    (re.compile(r"^spec\.parameters\[(\d+)\]\.feasibleSpace\.max"), r"tunables[\1].upper_bound"),
    (re.compile(r"^spec\.parameters\[(\d+)\]\.feasibleSpace\.step"), r"tunables[\1].step"),
    (re.compile(r"^spec\.parameters\[(\d+)\]\.feasibleSpace\.list.*"), r"tunables[\1].choices"),
    (re.compile(r"^spec\.parameters\[(\d+)\]\.name"), r"tunables[\1].name"),
    (re.compile(r"^spec\.parameters\[(\d+)\].*"), r"tunables[\1]"),
    (re.compile(r"^spec\.parameters$"), "tunables"),
    (re.compile(r"^spec\.maxTrialCount$"), "total_trials"),
    (re.compile(r"^spec\.parallelTrialCount$"), "parallel_trials"),
    (re.compile(r"^spec\.objective\.type$"), "direction"),
    (re.compile(r"^spec\.objective.*"), "objective_function"),
    (re.compile(r"^spec\.algorithm.*"), "hpo_algo_impl"),
    (re.compile(r"^metadata\.name$"), "experiment_name"),
)

router = APIRouter(tags=["Kruize"])


class TunableValue(BaseModel):
    """One tunable of a trial's configuration."""

    tunable_name: str
    tunable_value: int | float | str


_OPERATION_SCHEMA = {
    "type": "object",
    "required": ["operation"],
    "properties": {
        "operation": {"type": "string", "enum": list(_OPERATIONS)},
        "experiment_name": {"type": "string"},
        "search_space": {"type": "object"},
        "trial_number": {"type": "integer"},
        "trial_result": {"type": "string", "enum": list(_RESULTS)},
        "result_value_type": {"type": "string"},
        "result_value": {"type": "number"},
    },
}


@router.post(
    "/experiment_trials",
    summary="Kruize: create an experiment, hand out a trial, record a result, or delete",
    response_model=int,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _OPERATION_SCHEMA}}}
    },
)
def experiment_trials(request: Request) -> JSONResponse:
    """The body's ``operation`` chooses; the reply is a trial number (or ``0``)."""
    tuner: Tuner = request.app.state.tuner
    document = _json_body(request.headers.get("content-type", ""), request.state.body)
    operation = document.get("operation")
    if operation not in _OPERATIONS:
        raise RequestError("operation", f"must be one of {', '.join(_OPERATIONS)}, but got {operation!r}")
    if operation == "EXP_TRIAL_GENERATE_NEW":
        space = document.get(_SPACE)
        if not isinstance(space, Mapping):
            raise RequestError(_SPACE, f"must be an object, but got {_shown(space)}")
        experiment = _parsed(katib_document(space))
        key = ExperimentKey(_NAMESPACE, experiment.name)
        with _as_kruize():
            tuner.create(experiment, key, exist_ok=False, field=f"{_SPACE}.experiment_name")
        return JSONResponse(_next_trial(tuner, key))
    name = _string(document, "experiment_name", "experiment_name")
    key = ExperimentKey(_NAMESPACE, name)
    if operation == "EXP_TRIAL_GENERATE_SUBSEQUENT":
        return JSONResponse(_next_trial(tuner, key))
    if operation == "EXP_DELETE":
        tuner.delete(key, field="experiment_name")
        return JSONResponse(0)
    number = document.get("trial_number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise RequestError("trial_number", f"must be an integer >= 0, but got {_shown(number)}")
    result = document.get("trial_result")
    if result not in _RESULTS:
        raise RequestError("trial_result", f"must be one of {', '.join(_RESULTS)}, but got {_shown(result)}")
    kind = document.get("result_value_type", "double")
    if kind not in _VALUE_TYPES:
        raise RequestError(
            "result_value_type", f"must be one of {', '.join(_VALUE_TYPES)}, but got {_shown(kind)}"
        )
    if result == "success":
        value = document.get("result_value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError("result_value", f"must be a number for a success, but got {_shown(value)}")
        experiment = tuner.experiment(key, field="experiment_name")
        with _as_kruize():
            tuner.complete(
                key,
                number,
                {experiment.objective.metric: value},
                field="result_value",
                trial_field="trial_number",
                experiment_field="experiment_name",
                experiment=experiment,
            )
    else:
        with _as_kruize():
            tuner.fail(
                key,
                number,
                f"Kruize trial_result: {result}",
                trial_field="trial_number",
                experiment_field="experiment_name",
            )
    return JSONResponse(0)


@router.get(
    "/experiment_trials",
    summary="Kruize: a trial's configuration",
    response_model=list[TunableValue],
)
def trial_configuration(
    request: Request,
    experiment_name: str = Query(..., min_length=1, max_length=253),
    trial_number: int = Query(..., ge=0, le=2**31 - 1),
) -> list[TunableValue]:
    """Any trial's tunables and their values, in the search space's order."""
    tuner: Tuner = request.app.state.tuner
    key = ExperimentKey(_NAMESPACE, experiment_name)
    experiment = tuner.experiment(key, field="experiment_name")
    with _as_kruize():
        trial = tuner.trial(key, trial_number, field="trial_number", experiment_field="experiment_name")
    return [
        TunableValue(tunable_name=p.name, tunable_value=trial.parameters[p.name])
        for p in experiment.parameters
        if p.name in trial.parameters
    ]


PLOTS = ("tunable_importance", "optimization_history", "slice", "parallel_coordinate")
"""The ``type`` values of ``GET /plot``, Kruize's."""

_PLOTTING = threading.Lock()
"""Optuna's matplotlib plots go through pyplot's global state: one figure at a time."""


@router.get(
    "/plot",
    summary="Kruize: a plot of the experiment's finished trials (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The plot, as a PNG image"}},
)
def plot(
    request: Request,
    experiment_name: str = Query(..., min_length=1, max_length=253),
    kind: str = Query(..., alias="type", description=f"one of {', '.join(PLOTS)}"),
) -> Response:
    """The plot Kruize draws with plotly as HTML, here drawn by Optuna with matplotlib as a PNG."""
    if kind not in PLOTS:
        raise RequestError("type", f"must be one of {', '.join(PLOTS)}, but got {_shown(kind)}")
    tuner: Tuner = request.app.state.tuner
    experiment, history, _ = tuner.decision(
        ExperimentKey(_NAMESPACE, experiment_name), field="experiment_name"
    )
    if importlib.util.find_spec("matplotlib") is None:
        raise Unavailable("type", "plots need matplotlib on the server: pip install 'hpo-kfp[plot]'")
    finished = [t for t in history.trials if t.status == "Succeeded"]
    if len(finished) < (2 if kind == "tunable_importance" else 1):
        raise Conflict("experiment_name", f"must have finished trials to plot, but has {len(finished)}")
    return Response(_png(experiment, history, kind), media_type="image/png")


def _png(experiment: Any, history: Any, kind: str) -> bytes:
    import io

    from hpo_kfp.compat import import_optuna_importance_without_sklearn
    from hpo_kfp.study_view import quiet_optuna, to_study

    import_optuna_importance_without_sklearn()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as plots

    study = to_study(experiment, history)
    draw: Callable[[], Any] = {
        "tunable_importance": lambda: plots.plot_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator()
        ),
        "optimization_history": lambda: plots.plot_optimization_history(study),
        "slice": lambda: plots.plot_slice(study),
        "parallel_coordinate": lambda: plots.plot_parallel_coordinate(study),
    }[kind]
    with _PLOTTING, quiet_optuna():
        plt.close("all")
        axes = draw()
        figure: Any = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt.close("all")
    return buffer.getvalue()


def katib_document(space: Mapping[str, Any]) -> dict[str, Any]:
    """The Katib Experiment a Kruize search space describes.

    Raises:
        RequestError: A field of the search space is missing or malformed (named as
            ``search_space.FIELD``).
    """
    name = _string(space, "experiment_name", f"{_SPACE}.experiment_name")
    total = _integer(space, "total_trials", required=True)
    parallel = _integer(space, "parallel_trials", required=False)
    implementation = space.get("hpo_algo_impl", "optuna_tpe")
    algorithm = ALGORITHM_NAMES.get(implementation) if isinstance(implementation, str) else None
    if algorithm is None and implementation in ALGORITHMS:
        algorithm = implementation
    if algorithm is None:
        raise RequestError(
            f"{_SPACE}.hpo_algo_impl",
            f"must be one of {', '.join(ALGORITHM_NAMES)} or a Katib algorithm name "
            f"({', '.join(ALGORITHMS)}), but got {_shown(implementation)}",
        )
    objective = _string(space, "objective_function", f"{_SPACE}.objective_function")
    direction = space.get("direction")
    if direction not in ("minimize", "maximize"):
        raise RequestError(
            f"{_SPACE}.direction", f"must be minimize or maximize, but got {_shown(direction)}"
        )
    value_type = space.get("value_type", "double")
    if value_type not in _VALUE_TYPES:
        raise RequestError(
            f"{_SPACE}.value_type", f"must be one of {', '.join(_VALUE_TYPES)}, but got {_shown(value_type)}"
        )
    field = "tunables" if "tunables" in space or "tuneables" not in space else "tuneables"
    tunables = space.get(field)
    if not isinstance(tunables, list) or not tunables:
        raise RequestError(f"{_SPACE}.{field}", f"must be a non-empty list, but got {_shown(tunables)}")
    spec: dict[str, Any] = {
        "objective": {"type": direction, "objectiveMetricName": objective},
        "algorithm": {"algorithmName": algorithm},
        "parameters": [_parameter(item, f"{_SPACE}.{field}[{index}]") for index, item in enumerate(tunables)],
        "maxTrialCount": total,
        "parallelTrialCount": parallel if parallel is not None else 1,
    }
    metadata: dict[str, Any] = {"name": name}
    if "experiment_id" in space:
        metadata["annotations"] = {"hpo-kfp.kubeflow.org/kruize-experiment-id": str(space["experiment_id"])}
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": metadata, "spec": spec}


def _parameter(item: Any, at: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise RequestError(at, f"must be an object, but got {_shown(item)}")
    name = _string(item, "name", f"{at}.name")
    kind = item.get("value_type")
    if kind not in _TYPES:
        raise RequestError(f"{at}.value_type", f"must be one of {', '.join(_TYPES)}, but got {_shown(kind)}")
    if kind == "categorical":
        choices = item.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise RequestError(
                f"{at}.choices", f"must be a non-empty list of strings, but got {_shown(choices)}"
            )
        return {"name": name, "parameterType": "categorical", "feasibleSpace": {"list": list(choices)}}
    feasible: dict[str, Any] = {}
    for field, target in (("lower_bound", "min"), ("upper_bound", "max"), ("step", "step")):
        value = item.get(field)
        if value is None and field == "step":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(f"{at}.{field}", f"must be a number, but got {_shown(value)}")
        feasible[target] = value
    return {"name": name, "parameterType": _TYPES[kind], "feasibleSpace": feasible}


def _parsed(document: dict[str, Any]) -> Any:
    try:
        return parse_experiment(document, trial_template=None)
    except SpecError as error:
        raise RequestError(_kruize_path(error.path), f"{error.must}, but got {error.got}") from error


def _kruize_path(path: str) -> str:
    for pattern, replacement in _PATHS:
        if pattern.match(path):
            return f"{_SPACE}.{pattern.sub(replacement, path)}"
    return _SPACE


def _next_trial(tuner: Tuner, key: ExperimentKey) -> int:
    suggestion = tuner.suggest(key, 1, field="experiment_name")
    if not suggestion.trials:
        raise RequestError(
            "experiment_name", f"must name an experiment with trials left, but {suggestion.reason}"
        )
    return suggestion.trials[0].number


@contextlib.contextmanager
def _as_kruize() -> Iterator[None]:
    """Kruize answers 400 where the /v1 API says 409 (a name taken, a trial finished otherwise)
    or 404 for a trial (one not handed out yet): its clients branch on the status."""
    try:
        yield
    except (Conflict, NotFound) as error:
        if isinstance(error, NotFound) and error.field != "trial_number":
            raise
        raise RequestError(error.field, str(error).removeprefix(f"{error.field}: ")) from error


def _json_body(content_type: str, body: bytes) -> dict[str, Any]:
    if content_type.split(";", maxsplit=1)[0].strip().lower() != "application/json":
        raise RequestError("Content-Type", f"must be application/json, but got {content_type or 'nothing'!r}")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError("body", f"must be JSON, but it is not ({error})") from None
    except RecursionError:
        raise RequestError(
            "body", "must be JSON nested at most a few hundred levels deep, but is deeper"
        ) from None
    if not isinstance(document, dict):
        raise RequestError("body", f"must be a JSON object, but got {_shown(document)}")
    return document


def _string(document: Mapping[str, Any], key: str, field: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RequestError(field, f"must be a non-empty string, but got {_shown(value)}")
    return value


_VALUE_TYPES = ("double", "float", "integer")
"""What a Kruize objective value may be: a number."""


def _integer(space: Mapping[str, Any], key: str, *, required: bool) -> int | None:
    value = space.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT32_MAX:
        raise RequestError(
            f"{_SPACE}.{key}", f"must be an integer from 1 to {INT32_MAX}, but got {_shown(value)}"
        )
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    text = json.dumps(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."

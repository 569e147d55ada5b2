"""Katib's Suggestion and EarlyStopping gRPC services (``api.v1.beta1``), stateless.

Like Katib's own suggestion services, each call carries the whole experiment and every
trial; nothing is read from or written to the store. The request becomes an
:class:`~hpo_kfp.spec.Experiment` (through the same reader as a Katib Experiment's YAML, so a
refusal names the same field path, e.g. ``spec.algorithm.algorithmSettings[0].value``) and a
:class:`~hpo_kfp.history.History`, and :func:`hpo_kfp.suggest.suggest` proposes. Every
algorithm hpo-kfp runs is served under its Katib name; a Katib installation registers the
server as the image of an algorithm in its ``katib-config`` (see the README).

Sampler state that hpo-kfp keeps in a history (Hyperband's rungs, CMA-ES's optimizer, QMC's
position) cannot travel in Katib's trials. It travels the way Katib's own Hyperband service
keeps its state: in the reply's ``algorithm`` settings, under :data:`STATE_SETTING`, which
Katib stores in the Suggestion's status and sends back in the next request's experiment. The
trials are named by hpo-kfp (the reply's ``trial_name``), so that state finds its trials.

``GetEarlyStoppingRules`` reads each succeeded trial's objective log from Katib's DB manager
(``db_manager_address``), as Katib's medianstop service does, and takes the median of their
averages over the first ``start_step`` values (Katib's takes their mean: see
:mod:`hpo_kfp.early_stopping`).

Differences from Katib's services: a ``goal`` of 0 means no goal (proto3 cannot tell it from
unset); ``max_trial_count`` 0 (unset) lets the algorithm propose as many as asked; fewer
assignments than asked come back when the algorithm has no more now (a Hyperband rung waits
for the previous one; Katib's controller asks again later); without a ``db_manager_address``
the median stopping rule uses each trial's final observation.

``SetTrialStatus`` marks the Trial early-stopped as Katib's medianstop service does
(``pkg/earlystopping/v1beta1/medianstop/service.py``): it adds the condition
``EarlyStopped`` (reason ``TrialEarlyStopped``) to the Trial's status in the service's own
namespace (the pod's, else ``default``), through the pod's service account or the kube
config; Katib's trial controller only reads that condition. It needs ``get`` on
``trials.kubeflow.org`` and ``patch`` on ``trials/status`` there.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import replace
from typing import Any, NoReturn

import grpc

from hpo_kfp.algorithms import get_algorithm, trial_name
from hpo_kfp.early_stopping import StopRule, stop_rule
from hpo_kfp.errors import InputError, SpecError
from hpo_kfp.history import History, TrialRecord, TrialStatus
from hpo_kfp.service._proto import api_pb2, api_pb2_grpc, health_pb2
from hpo_kfp.spec import Experiment, Parameter, parse_experiment
from hpo_kfp.suggest import suggest

__all__ = [
    "HEALTH_SERVICES",
    "STATE_SETTING",
    "KatibEarlyStopping",
    "KatibSuggestion",
    "experiment_from_request",
    "history_from_request",
    "start_grpc_server",
]

STATE_SETTING = "hpo-kfp-state"
"""The algorithm setting that carries hpo-kfp's sampler state between Katib's calls."""

HEALTH_SERVICES = frozenset(
    {"", "manager.v1beta1.Suggestion", "api.v1.beta1.Suggestion", "api.v1.beta1.EarlyStopping"}
)
"""Service names the health check answers SERVING for (Katib's probe asks for the first
named one)."""

_HEALTH = "grpc.health.v1.Health"
_TYPES = {
    api_pb2.DOUBLE: "double",
    api_pb2.INT: "int",
    api_pb2.DISCRETE: "discrete",
    api_pb2.CATEGORICAL: "categorical",
}
_DIRECTIONS = {api_pb2.MINIMIZE: "minimize", api_pb2.MAXIMIZE: "maximize"}
_DISTRIBUTIONS = {
    api_pb2.UNIFORM: "uniform",
    api_pb2.LOG_UNIFORM: "logUniform",
    api_pb2.NORMAL: "normal",
    api_pb2.LOG_NORMAL: "logNormal",
}
_CONDITIONS: dict[int, TrialStatus] = {
    api_pb2.TrialStatus.CREATED: "Pending",
    api_pb2.TrialStatus.RUNNING: "Running",
    api_pb2.TrialStatus.SUCCEEDED: "Succeeded",
    api_pb2.TrialStatus.KILLED: "Failed",
    api_pb2.TrialStatus.FAILED: "Failed",
    api_pb2.TrialStatus.METRICSUNAVAILABLE: "MetricsUnavailable",
    api_pb2.TrialStatus.EARLYSTOPPED: "EarlyStopped",
    api_pb2.TrialStatus.UNKNOWN: "Failed",
}


def experiment_from_request(
    message: api_pb2.Experiment, *, trials: int = 0, requested: int = 0
) -> tuple[Experiment, dict[str, Any]]:
    """The experiment a request describes, and the sampler state it carries back.

    Args:
        message: The request's experiment.
        trials: How many trials the request carries (a budget when ``max_trial_count`` is 0).
        requested: How many suggestions it asks for (likewise).

    Raises:
        SpecError: The experiment breaks a rule of a Katib Experiment (the path is the
            Experiment resource's, as in its YAML).
    """
    spec = message.spec
    if spec.HasField("nas_config"):
        raise SpecError(
            "spec.nasConfig", "neural architecture search is not supported by hpo-kfp", "a nasConfig"
        )
    state: dict[str, Any] = {}
    settings = []
    for index, setting in enumerate(spec.algorithm.algorithm_settings):
        if setting.name == STATE_SETTING:
            state = _decode_state(setting.value, f"spec.algorithm.algorithmSettings[{index}].value")
        else:
            settings.append({"name": setting.name, "value": setting.value})
    objective: dict[str, Any] = {
        "type": _DIRECTIONS.get(spec.objective.type, f"objective type {spec.objective.type}"),
        "objectiveMetricName": spec.objective.objective_metric_name,
    }
    if spec.objective.goal != 0:
        objective["goal"] = spec.objective.goal
    if spec.objective.additional_metric_names:
        objective["additionalMetricNames"] = list(spec.objective.additional_metric_names)
    document_spec: dict[str, Any] = {
        "objective": objective,
        "algorithm": {"algorithmName": spec.algorithm.algorithm_name, "algorithmSettings": settings},
        "parameters": [_parameter(p) for p in spec.parameter_specs.parameters],
        "maxTrialCount": spec.max_trial_count or max(trials + requested, 1),
    }
    parallel = spec.parallel_trial_count or 3  # Katib's default
    if not spec.max_trial_count:
        parallel = min(parallel, document_spec["maxTrialCount"])  # the budget made up above
    document_spec["parallelTrialCount"] = parallel
    if spec.early_stopping.algorithm_name:
        document_spec["earlyStopping"] = {
            "algorithmName": spec.early_stopping.algorithm_name,
            "algorithmSettings": [
                {"name": s.name, "value": s.value} for s in spec.early_stopping.algorithm_settings
            ],
        }
    document = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": message.name},
        "spec": document_spec,
    }
    return parse_experiment(document, trial_template=None), state


def history_from_request(
    experiment: Experiment, trials: Sequence[api_pb2.Trial], state: dict[str, Any]
) -> History:
    """The history the request's trials make, numbered in the order given, with the sampler
    state the reply of the previous call left (see :data:`STATE_SETTING`).

    Raises:
        SpecError: A trial assigns a parameter the experiment does not have, or a value
            that is not of the parameter's type (the path is the request's).
    """
    attrs = state.get("trials") or {}
    records = []
    for number, trial in enumerate(trials):
        at = f"trials[{number}]"
        parameters = {}
        for index, assignment in enumerate(trial.spec.parameter_assignments.assignments):
            where = f"{at}.spec.parameter_assignments.assignments[{index}]"
            try:
                parameter = experiment.parameter(assignment.name)
            except KeyError:
                raise SpecError(
                    f"{where}.name", "must name a parameter of the experiment", repr(assignment.name)
                ) from None
            parameters[assignment.name] = _value(parameter, assignment.value, f"{where}.value")
        status = _CONDITIONS.get(trial.status.condition, "Failed")
        observed = {m.name: m.value for m in trial.status.observation.metrics}
        values = None
        metrics: dict[str, float] = {}
        for name, text in observed.items():
            try:
                metrics[name] = float(text)
            except ValueError:
                continue  # Katib writes "unavailable" for a metric never reported
        if status == "Succeeded":
            try:
                values = tuple(metrics[term.metric] for term in experiment.objective.terms)
            except KeyError:
                status = "MetricsUnavailable"
        series: dict[str, list[tuple[str | None, float]]] = {n: [(None, v)] for n, v in metrics.items()}
        records.append(
            TrialRecord(
                name=trial.name or f"{experiment.name}-{number:04d}",
                number=number,
                parameters=parameters,
                status=status,
                values=values,
                metrics=metrics if status == "Succeeded" else {},
                series=series,
                sampler_attrs=dict(attrs.get(trial.name) or {}),
            )
        )
    return History(
        experiment=experiment.name, trials=tuple(records), study_attrs=dict(state.get("study") or {})
    )


MAX_REQUEST_NUMBER = 1000
"""Most suggestions one ``GetSuggestions`` call may ask for: Katib's controller asks for the
trials it may start at once (``parallelTrialCount`` less the running ones, a Hyperband rung),
and a call's work grows with the number."""


_CHUNK = 100
"""Suggestions made between two looks at whether the call is still wanted."""


def _suggest_while_active(
    experiment: Experiment, history: History, count: int, context: grpc.ServicerContext
) -> tuple[list[TrialRecord], History]:
    """:func:`~hpo_kfp.suggest.suggest` of ``count`` trials, :data:`_CHUNK` at a time for an
    asynchronous algorithm, so that a call its client cancelled or whose deadline passed
    stops its work (gRPC cannot stop a thread: a 1000-trial request ran on for a minute). A
    synchronous algorithm (Hyperband) proposes its round at once, as asked."""
    if get_algorithm(experiment.algorithm.name).synchronous:
        return suggest(experiment, history, count)
    created: list[TrialRecord] = []
    while len(created) < count:
        if not context.is_active():
            _abort(context, grpc.StatusCode.CANCELLED, "the call ended before its suggestions were made")
        more, history = suggest(experiment, history, min(_CHUNK, count - len(created)))
        if not more:
            break  # the algorithm has no more now
        created += more
    return created, history


class KatibSuggestion(api_pb2_grpc.SuggestionServicer):
    """``api.v1.beta1.Suggestion``: suggestions from hpo-kfp's algorithms, under Katib's names."""

    def GetSuggestions(  # noqa: N802 (the RPC's name)
        self, request: api_pb2.GetSuggestionsRequest, context: grpc.ServicerContext
    ) -> api_pb2.GetSuggestionsReply:
        count = request.current_request_number
        if not 1 <= count <= MAX_REQUEST_NUMBER:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"current_request_number: must be from 1 to {MAX_REQUEST_NUMBER}, but got {count}",
            )
        try:
            experiment, state = experiment_from_request(
                request.experiment, trials=len(request.trials), requested=count
            )
            history = history_from_request(experiment, request.trials, state)
            # Never past the budget: Katib has had total - current suggestions before this call.
            had = max(request.total_request_number - count, len(request.trials))
            created, updated = _suggest_while_active(
                experiment, history, min(count, max(experiment.max_trial_count - had, 0)), context
            )
        except InputError as error:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        created, updated = _numbered(experiment, request, created, updated)
        reply = api_pb2.GetSuggestionsReply(
            parameter_assignments=[
                api_pb2.GetSuggestionsReply.ParameterAssignments(
                    assignments=[
                        api_pb2.ParameterAssignment(name=name, value=_text(value))
                        for name, value in trial.parameters.items()
                    ],
                    trial_name=trial.name,
                )
                for trial in created
            ],
            algorithm=api_pb2.AlgorithmSpec(
                algorithm_name=experiment.algorithm.name,
                algorithm_settings=[
                    api_pb2.AlgorithmSetting(name=STATE_SETTING, value=_encode_state(updated))
                ],
            ),
        )
        rule = stop_rule(experiment, updated)
        if rule is not None:
            reply.early_stopping_rules.append(_rule(rule))
        return reply

    def ValidateAlgorithmSettings(  # noqa: N802 (the RPC's name)
        self, request: api_pb2.ValidateAlgorithmSettingsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ValidateAlgorithmSettingsReply:
        try:
            experiment, _ = experiment_from_request(request.experiment)
            algorithm = get_algorithm(experiment.algorithm.name)
            algorithm.require_dependencies()
        except InputError as error:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        if algorithm.synchronous:
            # Katib's controller fails every answer of another length than
            # current_request_number ("The response contains unexpected trials", SyncAssignments
            # in pkg/controller.v1beta1/suggestion/suggestionclient/suggestionclient.go) and asks
            # for a trial each time one ends; a rung has nothing to give until it has ended,
            # then gives its own count. Refused here, the Suggestion fails at once with this
            # reason (ValidateAlgorithmSettings failing is terminal in its controller), rather
            # than stalling at the first rung's end.
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"spec.algorithm.algorithmName: must be an algorithm that can always answer Katib's "
                f"current_request_number, but {algorithm.name} proposes rung by rung (none while a rung "
                "runs); run it with `hpo-kfp run` or `submit`, or through the service's /v1 or Kruize API",
            )
        return api_pb2.ValidateAlgorithmSettingsReply()


class KatibEarlyStopping(api_pb2_grpc.EarlyStoppingServicer):
    """``api.v1.beta1.EarlyStopping``: Katib's median stopping rule (``medianstop``)."""

    def __init__(self) -> None:
        self._client: Any = None

    def GetEarlyStoppingRules(  # noqa: N802 (the RPC's name)
        self, request: api_pb2.GetEarlyStoppingRulesRequest, context: grpc.ServicerContext
    ) -> api_pb2.GetEarlyStoppingRulesReply:
        try:
            experiment, state = experiment_from_request(request.experiment, trials=len(request.trials))
            history = history_from_request(experiment, request.trials, state)
        except InputError as error:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        if request.db_manager_address:
            try:
                history = _with_observation_logs(request.db_manager_address, experiment, history)
            except grpc.RpcError as error:
                message = (
                    f"db_manager_address: Katib's DB manager at {request.db_manager_address} must answer "
                    f"GetObservationLog, but it gave {error.code().name}"
                )
                _abort(context, grpc.StatusCode.UNAVAILABLE, message)
        rule = stop_rule(experiment, history)
        return api_pb2.GetEarlyStoppingRulesReply(early_stopping_rules=[_rule(rule)] if rule else [])

    def SetTrialStatus(  # noqa: N802 (the RPC's name)
        self, request: api_pb2.SetTrialStatusRequest, context: grpc.ServicerContext
    ) -> api_pb2.SetTrialStatusReply:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config import ConfigException

        from hpo_kfp.runners.kubernetes import step_namespace

        name = request.trial_name
        if not name:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "trial_name: must name a Trial, but got ''")
        namespace = step_namespace()
        where = f"Trial {name!r} in namespace {namespace}"
        try:
            mark_early_stopped(self._api_client(), namespace, name)
        except ApiException as error:
            if error.status == 404:
                _abort(
                    context,
                    grpc.StatusCode.NOT_FOUND,
                    f"trial_name: must name a Trial, but there is no {where}",
                )
            if error.status == 403:
                _abort(
                    context,
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{where} cannot be marked early-stopped by the service's account: grant it get on "
                    f"trials.kubeflow.org and patch on trials/status in namespace {namespace}",
                )
            _abort(context, grpc.StatusCode.UNAVAILABLE, f"{where}: the API server answered {error.status}")
        except (ConfigException, OSError) as error:
            _abort(
                context, grpc.StatusCode.UNAVAILABLE, f"{where}: no Kubernetes API server to reach ({error})"
            )
        return api_pb2.SetTrialStatusReply()

    def _api_client(self) -> Any:
        """The Kubernetes API client, made on first use (a service without early stopping
        never needs one)."""
        if self._client is None:
            from hpo_kfp.runners.kubernetes import environment_client

            self._client = environment_client()
        return self._client

    def ValidateEarlyStoppingSettings(  # noqa: N802 (the RPC's name)
        self, request: api_pb2.ValidateEarlyStoppingSettingsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ValidateEarlyStoppingSettingsReply:
        from hpo_kfp.spec._reader import Node
        from hpo_kfp.spec.algorithm import parse_early_stopping

        settings = request.early_stopping
        document = {
            "earlyStopping": {
                "algorithmName": settings.algorithm_name,
                "algorithmSettings": [
                    {"name": s.name, "value": s.value} for s in settings.algorithm_settings
                ],
            }
        }
        try:
            parse_early_stopping(Node(document, "spec"))
        except InputError as error:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return api_pb2.ValidateEarlyStoppingSettingsReply()


EARLY_STOPPED_CONDITION = {
    "type": "EarlyStopped",
    "status": "True",
    "reason": "TrialEarlyStopped",
    "message": "Trial is early stopped",
}
"""The condition Katib's medianstop service adds to a Trial it stopped (its times added)."""


def mark_early_stopped(api_client: Any, namespace: str, name: str) -> None:
    """Adds :data:`EARLY_STOPPED_CONDITION` to Trial ``name``'s status, once: a Trial that
    has it already is left as it is (Katib's service would add a second).

    Raises:
        ApiException: The API server refused (404: no such Trial; 403: not allowed).
    """
    from datetime import UTC, datetime

    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(api_client)
    for attempt in range(3):
        trial = api.get_namespaced_custom_object("kubeflow.org", "v1beta1", namespace, "trials", name)
        conditions = list((trial.get("status") or {}).get("conditions") or [])
        if any(c.get("type") == "EarlyStopped" and c.get("status") == "True" for c in conditions):
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions.append({**EARLY_STOPPED_CONDITION, "lastUpdateTime": now, "lastTransitionTime": now})
        # The conditions as read, or none: Katib's controller writes the status too.
        patch = {
            "metadata": {"resourceVersion": trial["metadata"]["resourceVersion"]},
            "status": {"conditions": conditions},
        }
        try:
            api.patch_namespaced_custom_object_status(
                "kubeflow.org", "v1beta1", namespace, "trials", name, patch
            )
            return
        except ApiException as error:
            if error.status != 409 or attempt == 2:
                raise


def _with_observation_logs(address: str, experiment: Experiment, history: History) -> History:
    """The history with each succeeded trial's objective series as Katib's DB manager logged
    it (the median stopping rule averages the first ``start_step`` values of each)."""
    metric = experiment.objective.metric
    with grpc.insecure_channel(address) as channel:
        stub = api_pb2_grpc.DBManagerStub(channel)  # type: ignore[no-untyped-call]
        trials = []
        for trial in history.trials:
            if trial.status != "Succeeded":
                trials.append(trial)
                continue
            reply = stub.GetObservationLog(
                api_pb2.GetObservationLogRequest(trial_name=trial.name, metric_name=metric), timeout=30
            )
            points: list[tuple[str | None, float]] = []
            for log in sorted(reply.observation_log.metric_logs, key=lambda log: log.time_stamp):
                try:
                    points.append((log.time_stamp or None, float(log.metric.value)))
                except ValueError:
                    continue  # Katib logs "unavailable" for a metric never reported
            trials.append(replace(trial, series={**trial.series, metric: points}))
    return replace(history, trials=tuple(trials))


def start_grpc_server(
    host: str, port: int, *, token: str | None = None, workers: int = 4
) -> tuple[grpc.Server, int]:
    """Starts Katib's services and the health service on ``host:port`` (0: any free port).

    With ``token``, every call but the health check needs ``authorization: Bearer TOKEN``
    metadata.

    Returns:
        The running server and the port it listens on.

    Raises:
        OSError: The address cannot be bound.
    """
    interceptors = [_TokenCheck(token)] if token is not None else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="katib-grpc"),
        interceptors=interceptors,
        # Katib sends every trial with each call: allow far more than gRPC's 4 MiB default.
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    api_pb2_grpc.add_SuggestionServicer_to_server(KatibSuggestion(), server)  # type: ignore[no-untyped-call]
    api_pb2_grpc.add_EarlyStoppingServicer_to_server(KatibEarlyStopping(), server)  # type: ignore[no-untyped-call]
    server.add_generic_rpc_handlers([_health_handler()])
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"gRPC: cannot listen on {address}: {error}") from error
    if bound == 0:
        raise OSError(f"gRPC: cannot listen on {address}")
    server.start()
    return server, bound


class _TokenCheck(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without the bearer token, as UNAUTHENTICATED (the health check is open)."""

    def __init__(self, token: str) -> None:
        import hmac

        self._expected = token.encode()
        self._compare = hmac.compare_digest

    def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if details.method.startswith(f"/{_HEALTH}/"):
            return continuation(details)
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        # The scheme is case-insensitive (RFC 9110 section 11.1), as on the REST APIs.
        scheme, _, credentials = given.partition(" ") if isinstance(given, str) else ("", "", "")
        if scheme.lower() == "bearer" and self._compare(credentials.strip().encode(), self._expected):
            return continuation(details)

        def refuse(_request: Any, context: grpc.ServicerContext) -> None:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "authorization: must carry the server's bearer token"
            )

        return grpc.unary_unary_rpc_method_handler(refuse)


def _health_handler() -> grpc.GenericRpcHandler:
    def check(
        request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in HEALTH_SERVICES:
            context.abort(grpc.StatusCode.NOT_FOUND, f"service: unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    return grpc.method_handlers_generic_handler(
        _HEALTH,
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            )
        },
    )


def _numbered(
    experiment: Experiment,
    request: api_pb2.GetSuggestionsRequest,
    created: list[TrialRecord],
    updated: History,
) -> tuple[list[TrialRecord], History]:
    """The new trials numbered after every suggestion Katib has had, not after the trials it
    sent: a trial Katib has not created yet (or has deleted) is missing from the request, and
    numbering from the request would then name a new trial as an earlier one.

    ``total_request_number`` is the suggestions Katib will have after this call.
    """
    first = max(request.total_request_number - request.current_request_number, len(request.trials))
    taken = {t.name for t in request.trials}
    names: dict[str, str] = {}
    number = first
    for trial in created:
        while trial_name(experiment.name, number) in taken:
            number += 1
        names[trial.name] = trial_name(experiment.name, number)
        number += 1
    renamed = [replace(t, name=names[t.name]) for t in created]
    trials = tuple(replace(t, name=names.get(t.name, t.name)) for t in updated.trials)
    return renamed, replace(updated, trials=trials)


def _parameter(message: api_pb2.ParameterSpec) -> dict[str, Any]:
    space = message.feasible_space
    feasible: dict[str, Any] = {}
    for field in ("min", "max", "step"):
        if getattr(space, field):
            feasible[field] = getattr(space, field)
    if space.list:
        feasible["list"] = list(space.list)
    if space.distribution in _DISTRIBUTIONS:
        feasible["distribution"] = _DISTRIBUTIONS[space.distribution]
    kind = _TYPES.get(message.parameter_type, f"parameter type {message.parameter_type}")
    return {"name": message.name, "parameterType": kind, "feasibleSpace": feasible}


def _value(parameter: Parameter, text: str, where: str) -> int | float | str:
    if parameter.type == "categorical":
        return text
    try:
        number = float(text)
    except ValueError:
        raise SpecError(
            where, f"must be a number for the {parameter.type} parameter {parameter.name}", repr(text)
        ) from None
    if parameter.type == "int":
        return int(number)
    if parameter.type == "discrete":
        for choice in parameter.values:
            if float(choice) == number:
                return choice
    return number


def _text(value: Any) -> str:
    # repr keeps every digit of a float (str() would too in Python 3, but says so less plainly).
    return repr(value) if isinstance(value, float) else str(value)


def _rule(rule: StopRule) -> api_pb2.EarlyStoppingRule:
    # Katib stops a trial when its metric compares so with the value: below the median
    # when maximizing, above it when minimizing.
    comparison = api_pb2.LESS if rule.direction == "maximize" else api_pb2.GREATER
    return api_pb2.EarlyStoppingRule(
        name=rule.metric, value=repr(rule.median), comparison=comparison, start_step=rule.start_step
    )


def _encode_state(history: History) -> str:
    trials = {t.name: t.sampler_attrs for t in history.trials if t.sampler_attrs}
    document = json.dumps({"study": history.study_attrs, "trials": trials}, separators=(",", ":"))
    return base64.b64encode(zlib.compress(document.encode())).decode("ascii")


def _decode_state(text: str, where: str) -> dict[str, Any]:
    try:
        state = json.loads(zlib.decompress(base64.b64decode(text, validate=True)))
    except (ValueError, zlib.error) as error:
        raise SpecError(
            where, "must be the state an earlier reply of hpo-kfp gave", "something else"
        ) from error
    if not isinstance(state, dict):
        raise SpecError(where, "must be the state an earlier reply of hpo-kfp gave", "something else")
    return state


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: abort raises")

"""Katib's Suggestion and EarlyStopping gRPC services, through stubs generated from our .proto."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from hpo_kfp.algorithms import ALGORITHMS
from hpo_kfp.service._proto import api_pb2, api_pb2_grpc, health_pb2
from hpo_kfp.service.katib import STATE_SETTING
from tests.service.conftest import Server


@pytest.fixture(scope="module")
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc) as opened:
        grpc.channel_ready_future(opened).result(timeout=30)
        yield opened


@pytest.fixture
def suggestion(channel: grpc.Channel) -> api_pb2_grpc.SuggestionStub:
    return api_pb2_grpc.SuggestionStub(channel)  # type: ignore[no-untyped-call]


def _space(name: str, kind: int, **space: Any) -> api_pb2.ParameterSpec:
    return api_pb2.ParameterSpec(
        name=name, parameter_type=kind, feasible_space=api_pb2.FeasibleSpace(**space)
    )


_SETTINGS: dict[str, list[tuple[str, str]]] = {
    "hyperband": [("resource_name", "epochs"), ("r_l", "3"), ("eta", "3")],
    "tpe": [("n_startup_trials", "2"), ("random_state", "7")],
    # Katib's scikit-optimize settings; the model proposes from the second call on.
    "bayesianoptimization": [("n_initial_points", "3"), ("acq_func", "gp_hedge"), ("base_estimator", "GP")],
}


def _experiment(
    algorithm: str, settings: list[tuple[str, str]] | None = None, **spec: Any
) -> api_pb2.Experiment:
    parameters = [
        _space("lr", api_pb2.DOUBLE, min="0.01", max="0.1", step="0.01"),
        _space("layers", api_pb2.INT, min="1", max="4"),
        _space("width", api_pb2.DISCRETE, list=["32", "64", "128"]),
        _space("optimizer", api_pb2.CATEGORICAL, list=["sgd", "adam"]),
    ]
    if algorithm == "hyperband":
        parameters.append(_space("epochs", api_pb2.INT, min="1", max="3"))
    chosen = settings if settings is not None else _SETTINGS.get(algorithm, [])
    defaults: dict[str, Any] = {"parallel_trial_count": 3, "max_trial_count": 12}
    defaults.update(spec)
    return api_pb2.Experiment(
        name="katib-demo",
        spec=api_pb2.ExperimentSpec(
            parameter_specs=api_pb2.ExperimentSpec.ParameterSpecs(parameters=parameters),
            objective=api_pb2.ObjectiveSpec(type=api_pb2.MINIMIZE, objective_metric_name="loss"),
            algorithm=api_pb2.AlgorithmSpec(
                algorithm_name=algorithm,
                algorithm_settings=[api_pb2.AlgorithmSetting(name=n, value=v) for n, v in chosen],
            ),
            **defaults,
        ),
    )


def _trial(name: str, assignments: Any, loss: float) -> api_pb2.Trial:
    return api_pb2.Trial(
        name=name,
        spec=api_pb2.TrialSpec(
            parameter_assignments=api_pb2.TrialSpec.ParameterAssignments(assignments=list(assignments))
        ),
        status=api_pb2.TrialStatus(
            condition=api_pb2.TrialStatus.SUCCEEDED,
            observation=api_pb2.Observation(metrics=[api_pb2.Metric(name="loss", value=repr(loss))]),
        ),
    )


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_get_suggestions_runs_every_algorithm_under_its_katib_name(
    suggestion: api_pb2_grpc.SuggestionStub, algorithm: str
) -> None:
    experiment = _experiment(algorithm)
    trials: list[api_pb2.Trial] = []
    for _ in range(3):
        reply = suggestion.GetSuggestions(
            api_pb2.GetSuggestionsRequest(
                experiment=experiment,
                trials=trials,
                current_request_number=3,
                total_request_number=len(trials),
            )
        )
        assert 1 <= len(reply.parameter_assignments) <= 3
        for given in reply.parameter_assignments:
            values = {a.name: a.value for a in given.assignments}
            assert 0.01 <= float(values["lr"]) <= 0.1
            assert values["layers"] in {"1", "2", "3", "4"} and values["width"] in {"32", "64", "128"}
            assert values["optimizer"] in {"sgd", "adam"}
            assert given.trial_name not in {t.name for t in trials}
            trials.append(
                _trial(given.trial_name, given.assignments, float(values["lr"]) * int(values["layers"]))
            )
        # Katib keeps the returned settings in the Suggestion's status and sends them back.
        (state,) = reply.algorithm.algorithm_settings
        assert state.name == STATE_SETTING
        kept = [s for s in experiment.spec.algorithm.algorithm_settings if s.name != STATE_SETTING]
        del experiment.spec.algorithm.algorithm_settings[:]
        experiment.spec.algorithm.algorithm_settings.extend([*kept, state])
    assert len({t.name for t in trials}) == len(trials)


def test_get_suggestions_is_stateless_and_reproducible(suggestion: api_pb2_grpc.SuggestionStub) -> None:
    request = api_pb2.GetSuggestionsRequest(experiment=_experiment("tpe"), current_request_number=2)
    first = suggestion.GetSuggestions(request)
    assert suggestion.GetSuggestions(request) == first
    trials = [_trial(a.trial_name, a.assignments, 0.5) for a in first.parameter_assignments]
    following = api_pb2.GetSuggestionsRequest(
        experiment=_experiment("tpe"), trials=trials, current_request_number=1
    )
    assert [a.trial_name for a in suggestion.GetSuggestions(following).parameter_assignments] == [
        "katib-demo-0002"
    ]


@pytest.mark.parametrize(
    ("experiment", "named"),
    [
        pytest.param(
            _experiment("tpe", [("gamma", "2")]), "spec.algorithm.algorithmSettings[0].value", id="bad-value"
        ),
        pytest.param(
            _experiment("tpe", [("warp", "9")]),
            "spec.algorithm.algorithmSettings[0].name",
            id="unknown-setting",
        ),
        pytest.param(
            _experiment("simulated-annealing"), "spec.algorithm.algorithmName", id="unknown-algorithm"
        ),
        pytest.param(
            _experiment("bayesianoptimization", [("acq_func", "EIps")]),
            "spec.algorithm.algorithmSettings[0].value",
            id="acq-func-katib-has-but-not-here",
        ),
        pytest.param(
            _experiment("grid", parallel_trial_count=20), "spec.parallelTrialCount", id="parallel-over-max"
        ),
    ],
)
def test_invalid_settings_are_refused_naming_the_setting(
    suggestion: api_pb2_grpc.SuggestionStub, experiment: api_pb2.Experiment, named: str
) -> None:
    for call in (
        lambda: suggestion.ValidateAlgorithmSettings(
            api_pb2.ValidateAlgorithmSettingsRequest(experiment=experiment)
        ),
        lambda: suggestion.GetSuggestions(
            api_pb2.GetSuggestionsRequest(experiment=experiment, current_request_number=1)
        ),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith(named), refused.value.details()


def test_hyperband_is_refused_for_katibs_controller_naming_why(
    suggestion: api_pb2_grpc.SuggestionStub,
) -> None:
    # Katib's controller takes exactly current_request_number assignments or fails the call;
    # between rungs hyperband has none to give (here: the first rung handed out, none ended).
    experiment = _experiment("hyperband")
    with pytest.raises(grpc.RpcError) as refused:
        suggestion.ValidateAlgorithmSettings(api_pb2.ValidateAlgorithmSettingsRequest(experiment=experiment))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(
        "spec.algorithm.algorithmName: must be an algorithm that can always answer Katib's "
        "current_request_number, but hyperband proposes rung by rung"
    )
    first = suggestion.GetSuggestions(
        api_pb2.GetSuggestionsRequest(experiment=experiment, current_request_number=3, total_request_number=3)
    )
    running = [
        api_pb2.Trial(
            name=a.trial_name,
            spec=api_pb2.TrialSpec(
                parameter_assignments=api_pb2.TrialSpec.ParameterAssignments(assignments=list(a.assignments))
            ),
            status=api_pb2.TrialStatus(condition=api_pb2.TrialStatus.RUNNING),
        )
        for a in first.parameter_assignments
    ]
    experiment.spec.algorithm.algorithm_settings.extend(first.algorithm.algorithm_settings)
    later = suggestion.GetSuggestions(
        api_pb2.GetSuggestionsRequest(
            experiment=experiment,
            trials=running,
            current_request_number=1,
            total_request_number=len(running) + 1,
        )
    )
    assert len(later.parameter_assignments) != 1  # what Katib's controller would refuse


def test_valid_settings_are_accepted(suggestion: api_pb2_grpc.SuggestionStub) -> None:
    reply = suggestion.ValidateAlgorithmSettings(
        api_pb2.ValidateAlgorithmSettingsRequest(experiment=_experiment("tpe"))
    )
    assert reply == api_pb2.ValidateAlgorithmSettingsReply()


def test_the_median_stopping_rule_comes_from_the_succeeded_trials(channel: grpc.Channel) -> None:
    stub = api_pb2_grpc.EarlyStoppingStub(channel)  # type: ignore[no-untyped-call]
    experiment = _experiment("random")
    experiment.spec.early_stopping.CopyFrom(
        api_pb2.EarlyStoppingSpec(
            algorithm_name="medianstop",
            algorithm_settings=[
                api_pb2.EarlyStoppingSetting(name="min_trials_required", value="3"),
                api_pb2.EarlyStoppingSetting(name="start_step", value="2"),
            ],
        )
    )
    assignments = [
        api_pb2.ParameterAssignment(name="lr", value="0.05"),
        api_pb2.ParameterAssignment(name="layers", value="2"),
        api_pb2.ParameterAssignment(name="width", value="64"),
        api_pb2.ParameterAssignment(name="optimizer", value="sgd"),
    ]
    losses = [0.3, 0.9, 0.5]
    trials = [_trial(f"t{i}", assignments, loss) for i, loss in enumerate(losses)]
    reply = stub.GetEarlyStoppingRules(
        api_pb2.GetEarlyStoppingRulesRequest(experiment=experiment, trials=trials)
    )
    (rule,) = reply.early_stopping_rules
    assert (rule.name, float(rule.value), rule.comparison, rule.start_step) == (
        "loss",
        statistics.median(losses),
        api_pb2.GREATER,
        2,
    )
    too_few = stub.GetEarlyStoppingRules(
        api_pb2.GetEarlyStoppingRulesRequest(experiment=experiment, trials=trials[:2])
    )
    assert list(too_few.early_stopping_rules) == []
    with pytest.raises(grpc.RpcError) as refused:
        stub.ValidateEarlyStoppingSettings(
            api_pb2.ValidateEarlyStoppingSettingsRequest(
                early_stopping=api_pb2.EarlyStoppingSpec(
                    algorithm_name="medianstop",
                    algorithm_settings=[api_pb2.EarlyStoppingSetting(name="start_step", value="0")],
                )
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("spec.earlyStopping.algorithmSettings[0].value")


def test_the_health_check_answers_for_katibs_probe(channel: grpc.Channel) -> None:
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    answer = check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as unknown:
        check(health_pb2.HealthCheckRequest(service="some.Other"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_new_trials_are_numbered_after_every_suggestion_katib_had(
    suggestion: api_pb2_grpc.SuggestionStub,
) -> None:
    first = suggestion.GetSuggestions(
        api_pb2.GetSuggestionsRequest(
            experiment=_experiment("random"), current_request_number=2, total_request_number=2
        )
    )
    assert [a.trial_name for a in first.parameter_assignments] == ["katib-demo-0000", "katib-demo-0001"]
    # Katib has had 4 suggestions, but created (or kept) only the first one as a Trial yet.
    only = [_trial("katib-demo-0000", first.parameter_assignments[0].assignments, 0.3)]
    later = suggestion.GetSuggestions(
        api_pb2.GetSuggestionsRequest(
            experiment=_experiment("random"), trials=only, current_request_number=2, total_request_number=6
        )
    )
    assert [a.trial_name for a in later.parameter_assignments] == ["katib-demo-0004", "katib-demo-0005"]


class _DBManager(api_pb2_grpc.DBManagerServicer):
    """Katib's DB manager, as far as the median stopping rule reads it: logged values per trial."""

    def __init__(self, logs: dict[str, list[str]]) -> None:
        self.logs = logs
        self.asked: list[tuple[str, str]] = []

    def GetObservationLog(self, request: Any, context: Any) -> api_pb2.GetObservationLogReply:  # noqa: N802
        self.asked.append((request.trial_name, request.metric_name))
        return api_pb2.GetObservationLogReply(
            observation_log=api_pb2.ObservationLog(
                metric_logs=[
                    api_pb2.MetricLog(
                        time_stamp=f"2026-12-01T10:00:{second:02d}Z",
                        metric=api_pb2.Metric(name=request.metric_name, value=value),
                    )
                    for second, value in enumerate(self.logs.get(request.trial_name, []))
                ]
            )
        )


def test_the_median_stopping_rule_reads_the_logs_from_katibs_db_manager(channel: grpc.Channel) -> None:
    from concurrent import futures

    logs = {"t0": ["0.9", "0.7", "0.1"], "t1": ["0.5", "unavailable", "0.3", "0.2"], "t2": ["0.3", "0.1"]}
    manager = _DBManager(logs)
    db = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_DBManagerServicer_to_server(manager, db)  # type: ignore[no-untyped-call]
    port = db.add_insecure_port("127.0.0.1:0")
    db.start()
    try:
        experiment = _experiment("random")
        experiment.spec.early_stopping.CopyFrom(
            api_pb2.EarlyStoppingSpec(
                algorithm_name="medianstop",
                algorithm_settings=[
                    api_pb2.EarlyStoppingSetting(name="min_trials_required", value="3"),
                    api_pb2.EarlyStoppingSetting(name="start_step", value="2"),
                ],
            )
        )
        assignments = [
            api_pb2.ParameterAssignment(name="lr", value="0.05"),
            api_pb2.ParameterAssignment(name="layers", value="2"),
            api_pb2.ParameterAssignment(name="width", value="64"),
            api_pb2.ParameterAssignment(name="optimizer", value="sgd"),
        ]
        trials = [_trial(name, assignments, float(values[-1])) for name, values in logs.items()]
        stub = api_pb2_grpc.EarlyStoppingStub(channel)  # type: ignore[no-untyped-call]
        reply = stub.GetEarlyStoppingRules(
            api_pb2.GetEarlyStoppingRulesRequest(
                experiment=experiment, trials=trials, db_manager_address=f"127.0.0.1:{port}"
            )
        )
        (rule,) = reply.early_stopping_rules
        # First 2 logged values of each: t0 (0.9+0.7)/2, t1 (0.5+0.3)/2 ("unavailable" skipped), t2 (0.3+0.1)/2.
        assert float(rule.value) == pytest.approx(statistics.median([0.8, 0.4, 0.2]))
        assert sorted(manager.asked) == [("t0", "loss"), ("t1", "loss"), ("t2", "loss")]
    finally:
        db.stop(grace=None)
    with pytest.raises(grpc.RpcError) as unreachable:
        stub.GetEarlyStoppingRules(
            api_pb2.GetEarlyStoppingRulesRequest(
                experiment=experiment, trials=trials, db_manager_address=f"127.0.0.1:{port}"
            )
        )
    assert unreachable.value.code() == grpc.StatusCode.UNAVAILABLE
    assert unreachable.value.details().startswith("db_manager_address:")


def test_a_request_never_gets_more_than_the_budget_or_the_limit(
    suggestion: api_pb2_grpc.SuggestionStub,
) -> None:
    """Issue 31: 10,000 asked of a 10-trial experiment returned 10,000; 2^31-1 kept the server busy."""
    reply = suggestion.GetSuggestions(
        api_pb2.GetSuggestionsRequest(
            experiment=_experiment("random", max_trial_count=10),
            current_request_number=1000,
            total_request_number=1000,
        )
    )
    assert len(reply.parameter_assignments) == 10
    with pytest.raises(grpc.RpcError) as refused:
        suggestion.GetSuggestions(
            api_pb2.GetSuggestionsRequest(
                experiment=_experiment("random"),
                current_request_number=2**31 - 1,
                total_request_number=2**31 - 1,
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "current_request_number: must be from 1 to 1000, but got 2147483647"


def test_set_trial_status_marks_the_trial_early_stopped_as_katibs_service_does(tmp_path: Path) -> None:
    """Katib 0.19's trial controller learns that a trial was stopped only from the condition
    its early-stopping service adds to the Trial (medianstop's ``SetTrialStatus``): the
    service does the same, once, in its own namespace (here, out of a cluster: ``default``)."""
    from tests.k8s_emulator import K8sEmulator
    from tests.k8s_emulator.api import CUSTOM_RESOURCES, CustomResource
    from tests.service.conftest import start_server

    emulator = K8sEmulator(
        custom_resources=(*CUSTOM_RESOURCES, CustomResource("kubeflow.org", "v1beta1", "trials", "Trial"))
    ).start()
    server = None
    try:
        running = {"type": "Running", "status": "True", "reason": "TrialRunning"}
        emulator.create(
            "kubeflow.org", "v1beta1", "trials", "default", {"metadata": {"name": "katib-demo-abc"}}
        )
        emulator.set_status(
            "kubeflow.org", "v1beta1", "trials", "default", "katib-demo-abc", {"conditions": [running]}
        )
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        server = start_server(
            tmp_path,
            f"sqlite:///{tmp_path / 'store.sqlite'}",
            env={"KUBECONFIG": str(kubeconfig), "KUBERNETES_SERVICE_HOST": ""},
        )
        with grpc.insecure_channel(server.grpc) as opened:
            stub = api_pb2_grpc.EarlyStoppingStub(opened)  # type: ignore[no-untyped-call]
            for _ in range(2):  # a second call leaves the one condition
                stub.SetTrialStatus(api_pb2.SetTrialStatusRequest(trial_name="katib-demo-abc"), timeout=30)
            trial = emulator.get("kubeflow.org", "v1beta1", "trials", "default", "katib-demo-abc")
            assert trial is not None
            conditions = trial["status"]["conditions"]
            assert [(c["type"], c["status"], c["reason"]) for c in conditions] == [
                ("Running", "True", "TrialRunning"),
                ("EarlyStopped", "True", "TrialEarlyStopped"),
            ]
            assert (
                conditions[1]["message"] == "Trial is early stopped" and conditions[1]["lastTransitionTime"]
            )
            with pytest.raises(grpc.RpcError) as missing:
                stub.SetTrialStatus(api_pb2.SetTrialStatusRequest(trial_name="no-such-trial"), timeout=30)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            assert "there is no Trial 'no-such-trial' in namespace default" in str(missing.value.details())
    finally:
        if server is not None:
            server.stop()
        emulator.stop()

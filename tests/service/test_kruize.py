"""Kruize's REST API over a running server: the flow Kruize's scripts drive, and refusals."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.service.conftest import assert_refused


def _search_space(name: str, *, total: int = 4, parallel: int = 1, **changes: Any) -> dict[str, Any]:
    space: dict[str, Any] = {
        "experiment_name": name,
        "experiment_id": "a123",
        "total_trials": total,
        "parallel_trials": parallel,
        "value_type": "double",
        "hpo_algo_impl": "optuna_tpe",
        "objective_function": "transaction_response_time",
        "direction": "minimize",
        "tunables": [
            {
                "value_type": "double",
                "lower_bound": 150,
                "name": "memoryRequest",
                "upper_bound": 300,
                "step": 1,
            },
            {"value_type": "integer", "lower_bound": 1, "name": "cpuRequest", "upper_bound": 4},
            {"value_type": "categorical", "name": "gc", "choices": ["G1GC", "ParallelGC"]},
        ],
    }
    space.update(changes)
    return space


def _post(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return http.post("/experiment_trials", json=body)


def _config(http: httpx.Client, name: str, number: int) -> dict[str, Any]:
    response = http.get("/experiment_trials", params={"experiment_name": name, "trial_number": number})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return {item["tunable_name"]: item["tunable_value"] for item in response.json()}


def test_the_kruize_flow_runs_an_experiment_to_its_budget(http: httpx.Client) -> None:
    new = _post(http, {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": _search_space("petclinic")})
    assert new.status_code == 200, new.text
    assert new.headers["content-type"] == "application/json"
    assert new.json() == 0

    seen = []
    number = 0
    for step in range(4):
        config = _config(http, "petclinic", number)
        assert list(config) == ["memoryRequest", "cpuRequest", "gc"]
        assert 150 <= config["memoryRequest"] <= 300 and float(config["memoryRequest"]).is_integer()
        assert config["cpuRequest"] in (1, 2, 3, 4) and config["gc"] in ("G1GC", "ParallelGC")
        seen.append(config)
        # Negative results are fine (Kruize refuses them).
        result = _post(
            http,
            {
                "experiment_name": "petclinic",
                "operation": "EXP_TRIAL_RESULT",
                "trial_number": number,
                "trial_result": "success",
                "result_value_type": "double",
                "result_value": -10.0 - step,
            },
        )
        assert (result.status_code, result.json()) == (200, 0)
        subsequent = _post(
            http, {"operation": "EXP_TRIAL_GENERATE_SUBSEQUENT", "experiment_name": "petclinic"}
        )
        if step < 3:
            assert subsequent.status_code == 200, subsequent.text
            assert subsequent.json() == number + 1
            number = subsequent.json()
        else:
            assert_refused(subsequent, 400, "experiment_name")  # Kruize's status for a spent budget
            assert "MaxTrialsReached" in subsequent.json()["error"]

    # Every trial's configuration stays readable, not only the current one's.
    assert [_config(http, "petclinic", n) for n in range(4)] == seen
    best = http.get("/v1/experiments/petclinic/best").json()
    assert best["status"] == "Succeeded" and best["reason"] == "MaxTrialsReached"
    assert best["best"]["number"] == 3 and best["best"]["values"] == [-13.0]


def test_parallel_trials_hand_out_distinct_trials_up_to_the_budget(http: httpx.Client) -> None:
    space = _search_space("parallel", total=5, parallel=3)
    assert _post(http, {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": space}).json() == 0
    numbers = [0]
    for _ in range(4):
        response = _post(http, {"operation": "EXP_TRIAL_GENERATE_SUBSEQUENT", "experiment_name": "parallel"})
        assert response.status_code == 200, response.text
        numbers.append(response.json())
    assert numbers == [0, 1, 2, 3, 4]
    over = _post(http, {"operation": "EXP_TRIAL_GENERATE_SUBSEQUENT", "experiment_name": "parallel"})
    assert_refused(over, 400, "experiment_name")
    configs = [_config(http, "parallel", n) for n in numbers]
    assert len({tuple(sorted(c.items())) for c in configs}) == 5
    failure = {"experiment_name": "parallel", "operation": "EXP_TRIAL_RESULT", "trial_number": 2}
    assert _post(http, {**failure, "trial_result": "failure"}).status_code == 200
    trial = http.get("/v1/experiments/parallel/trials/2").json()
    assert trial["status"] == "Failed"


def test_a_deleted_experiment_is_gone_and_its_name_free(http: httpx.Client) -> None:
    space = _search_space("deleted")
    assert _post(http, {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": space}).status_code == 200
    assert _post(http, {"operation": "EXP_DELETE", "experiment_name": "deleted"}).json() == 0
    gone = http.get("/experiment_trials", params={"experiment_name": "deleted", "trial_number": 0})
    assert_refused(gone, 404, "experiment_name")
    assert _post(http, {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": space}).json() == 0


def _new(**changes: Any) -> dict[str, Any]:
    return {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": _search_space("refused", **changes)}


def _tunable(index: int, **changes: Any) -> dict[str, Any]:
    body = _new()
    body["search_space"]["tunables"][index].update(changes)
    return body


def _without(key: str) -> dict[str, Any]:
    body = _new()
    del body["search_space"][key]
    return body


_REFUSED_POSTS = [
    pytest.param({"experiment_name": "x"}, 400, "operation", id="no-operation"),
    pytest.param({"operation": "EXP_TRIAL_GUESS"}, 400, "operation", id="unknown-operation"),
    pytest.param({"operation": "EXP_TRIAL_GENERATE_NEW"}, 400, "search_space", id="no-search-space"),
    pytest.param(_without("objective_function"), 400, "search_space.objective_function", id="no-objective"),
    pytest.param(_new(total_trials=0), 400, "search_space.total_trials", id="zero-trials"),
    pytest.param(_new(total_trials="ten"), 400, "search_space.total_trials", id="text-trials"),
    pytest.param(_new(parallel_trials=9), 400, "search_space.parallel_trials", id="parallel-over-total"),
    pytest.param(_new(direction="up"), 400, "search_space.direction", id="bad-direction"),
    pytest.param(_new(hpo_algo_impl="optuna_magic"), 400, "search_space.hpo_algo_impl", id="bad-algorithm"),
    pytest.param(_new(tunables=[]), 400, "search_space.tunables", id="no-tunables"),
    pytest.param(_new(experiment_name="Pet_Clinic"), 400, "search_space.experiment_name", id="bad-name"),
    pytest.param(
        _tunable(0, value_type="complex"), 400, "search_space.tunables[0].value_type", id="bad-type"
    ),
    pytest.param(
        _tunable(0, lower_bound=500), 400, "search_space.tunables[0].lower_bound", id="lower-above-upper"
    ),
    pytest.param(_tunable(1, upper_bound="4"), 400, "search_space.tunables[1].upper_bound", id="text-bound"),
    pytest.param(_tunable(1, step=0.5), 400, "search_space.tunables[1].step", id="fractional-int-step"),
    pytest.param(_tunable(2, choices=[]), 400, "search_space.tunables[2].choices", id="no-choices"),
    pytest.param(
        {"operation": "EXP_TRIAL_GENERATE_SUBSEQUENT", "experiment_name": "nonexistent"},
        404,
        "experiment_name",
        id="subsequent-unknown",
    ),
    pytest.param(
        {
            "operation": "EXP_TRIAL_RESULT",
            "experiment_name": "known",
            "trial_number": 0,
            "trial_result": "ok",
        },
        400,
        "trial_result",
        id="bad-result",
    ),
    pytest.param(
        {
            "operation": "EXP_TRIAL_RESULT",
            "experiment_name": "known",
            "trial_number": -1,
            "trial_result": "success",
        },
        400,
        "trial_number",
        id="negative-trial",
    ),
    pytest.param(
        {
            "operation": "EXP_TRIAL_RESULT",
            "experiment_name": "known",
            "trial_number": 0,
            "trial_result": "success",
            "result_value": "fast",
        },
        400,
        "result_value",
        id="text-result",
    ),
    pytest.param(
        {
            "operation": "EXP_TRIAL_RESULT",
            "experiment_name": "known",
            "trial_number": 7,
            "trial_result": "success",
            "result_value": 1.0,
        },
        400,  # Kruize's status for a trial not handed out yet
        "trial_number",
        id="unknown-trial",
    ),
    pytest.param(
        {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": _search_space("known")},
        400,  # Kruize's status for a duplicate
        "search_space.experiment_name",
        id="name-taken",
    ),
    pytest.param(
        {
            "operation": "EXP_TRIAL_RESULT",
            "experiment_name": "known",
            "trial_number": 0,
            "trial_result": "success",
            "result_value_type": "string",
            "result_value": 1.0,
        },
        400,
        "result_value_type",
        id="string-result-type",
    ),
    pytest.param(
        {
            "operation": "EXP_TRIAL_GENERATE_NEW",
            "search_space": {**_search_space("huge"), "total_trials": 2**70},
        },
        400,
        "search_space.total_trials",
        id="total-trials-beyond-int32",
    ),
]


@pytest.fixture(scope="module")
def known(server: Any) -> None:
    with server.client() as http:
        body = {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": _search_space("known")}
        assert _post(http, body).status_code == 200


@pytest.mark.parametrize(("body", "status", "field"), _REFUSED_POSTS)
def test_a_bad_post_is_refused_naming_the_field(
    http: httpx.Client, known: None, body: dict[str, Any], status: int, field: str
) -> None:
    assert_refused(_post(http, copy.deepcopy(body)), status, field)


@pytest.mark.parametrize(
    ("content", "headers", "field"),
    [
        pytest.param(b"{not json", {"Content-Type": "application/json"}, "body", id="malformed-json"),
        pytest.param(b"[1, 2]", {"Content-Type": "application/json"}, "body", id="not-an-object"),
        # 5,000 nested brackets were a plain-text 500 (a RecursionError), issue 28
        pytest.param(b"[" * 5000 + b"]" * 5000, {"Content-Type": "application/json"}, "body", id="too-deep"),
        pytest.param(
            b'{"operation": "EXP_DELETE"}', {"Content-Type": "text/html"}, "Content-Type", id="not-json"
        ),
    ],
)
def test_a_post_that_is_not_a_json_object_is_refused(
    http: httpx.Client, content: bytes, headers: dict[str, str], field: str
) -> None:
    assert_refused(http.post("/experiment_trials", content=content, headers=headers), 400, field)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        pytest.param({"experiment_name": "known"}, 400, "trial_number", id="no-trial-number"),
        pytest.param(
            {"experiment_name": "known", "trial_number": "first"}, 400, "trial_number", id="text-number"
        ),
        pytest.param({"trial_number": 0}, 400, "experiment_name", id="no-name"),
        pytest.param(
            {"experiment_name": "known", "trial_number": 5}, 400, "trial_number", id="unknown-trial"
        ),
        pytest.param(
            {"experiment_name": "nonexistent", "trial_number": 0}, 404, "experiment_name", id="unknown"
        ),
    ],
)
def test_a_bad_get_is_refused_naming_the_field(
    http: httpx.Client, known: None, params: dict[str, Any], status: int, field: str
) -> None:
    assert_refused(http.get("/experiment_trials", params=params), status, field)


@pytest.mark.parametrize(
    "kind", ["tunable_importance", "optimization_history", "slice", "parallel_coordinate"]
)
def test_plot_draws_the_finished_trials_as_png(http: httpx.Client, kind: str) -> None:
    if (
        http.get("/experiment_trials", params={"experiment_name": "plotted", "trial_number": 0}).status_code
        == 404
    ):
        assert (
            _post(
                http,
                {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": _search_space("plotted", total=3)},
            ).json()
            == 0
        )
        for number in range(3):
            result = {"operation": "EXP_TRIAL_RESULT", "experiment_name": "plotted", "trial_number": number}
            assert (
                _post(http, {**result, "trial_result": "success", "result_value": 5.0 - number}).json() == 0
            )
            _post(http, {"operation": "EXP_TRIAL_GENERATE_SUBSEQUENT", "experiment_name": "plotted"})
    response = http.get("/plot", params={"experiment_name": "plotted", "type": kind})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n") and len(response.content) > 2000


def test_plot_refuses_an_unknown_type_or_experiment(http: httpx.Client) -> None:
    assert_refused(http.get("/plot", params={"experiment_name": "known", "type": "pie"}), 400, "type")
    assert_refused(
        http.get("/plot", params={"experiment_name": "nonexistent", "type": "slice"}), 404, "experiment_name"
    )
    assert_refused(http.get("/plot", params={"experiment_name": "known"}), 400, "type")

"""hpo-kfp's /v1 REST API over a running server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.service.conftest import assert_refused, katib_experiment, start_server
from tests.waiting import wait_for


def _create(http: httpx.Client, document: dict[str, Any], namespace: str = "") -> httpx.Response:
    return http.post("/v1/experiments", json=document, params={"namespace": namespace} if namespace else None)


def test_an_experiment_runs_through_the_v1_api_from_yaml(http: httpx.Client) -> None:
    text = yaml.safe_dump(katib_experiment("lifecycle", maxTrialCount=3, parallelTrialCount=3))
    created = http.post(
        "/v1/experiments",
        content=text,
        params={"namespace": "team-a"},
        headers={"Content-Type": "application/yaml"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["namespace"] == "team-a" and created.json()["algorithm"] == "tpe"
    again = http.post(
        "/v1/experiments",
        content=text,
        params={"namespace": "team-a"},
        headers={"Content-Type": "application/yaml"},
    )
    assert again.status_code == 200

    where = {"namespace": "team-a"}
    given = http.post("/v1/experiments/lifecycle/suggestions", params=where, json={"count": 3}).json()
    assert [t["number"] for t in given["trials"]] == [0, 1, 2]
    assert all(t["status"] == "Running" and t["started"] for t in given["trials"])
    assert all(
        0.001 <= t["parameters"]["lr"] <= 0.1 and t["parameters"]["layers"] in (1, 2, 3, 4)
        for t in given["trials"]
    )
    none_left = http.post("/v1/experiments/lifecycle/suggestions", params=where, json={"count": 1}).json()
    assert none_left["trials"] == [] and not none_left["done"] and "active" in none_left["reason"]

    report = http.post(
        "/v1/experiments/lifecycle/trials/0/intermediate", params=where, json={"metrics": {"loss": 0.9}}
    )
    assert report.json() == {"should_stop": False, "reason": ""}
    done = http.post(
        "/v1/experiments/lifecycle/trials/0/complete", params=where, json={"metrics": {"loss": 0.5}}
    )
    assert done.json()["status"] == "Succeeded" and done.json()["values"] == [0.5]
    repeat = http.post(
        "/v1/experiments/lifecycle/trials/0/complete", params=where, json={"metrics": {"loss": 0.5}}
    )
    assert repeat.status_code == 200
    other = http.post(
        "/v1/experiments/lifecycle/trials/0/complete", params=where, json={"metrics": {"loss": 0.1}}
    )
    assert_refused(other, 409, "number")
    http.post("/v1/experiments/lifecycle/trials/1/complete", params=where, json={"metrics": {"loss": 0.25}})
    failed = http.post("/v1/experiments/lifecycle/trials/2/fail", params=where, json={"reason": "OOMKilled"})
    assert failed.json()["status"] == "Failed" and failed.json()["reason"] == "OOMKilled"

    trials = http.get("/v1/experiments/lifecycle/trials", params=where).json()
    assert [(t["number"], t["status"]) for t in trials] == [(0, "Succeeded"), (1, "Succeeded"), (2, "Failed")]
    assert trials[0]["metrics"] == {"loss": 0.5}
    best = http.get("/v1/experiments/lifecycle/best", params=where).json()
    assert (
        best["best"]["number"] == 1 and best["status"] == "Succeeded" and best["reason"] == "MaxTrialsReached"
    )
    ended = http.post("/v1/experiments/lifecycle/suggestions", params=where, json={"count": 1}).json()
    assert ended["done"] and ended["trials"] == []
    listed = http.get("/v1/experiments").json()
    assert {"namespace": "team-a", "name": "lifecycle"}.items() <= next(
        e for e in listed if e["name"] == "lifecycle"
    ).items()
    assert next(e for e in listed if e["name"] == "lifecycle")["best_trial"] == "lifecycle-0001"

    assert http.delete("/v1/experiments/lifecycle", params=where).status_code == 204
    assert_refused(http.get("/v1/experiments/lifecycle", params=where), 404, "name")


def test_suggestions_are_idempotent_per_client_id(http: httpx.Client) -> None:
    assert _create(http, katib_experiment("idempotent")).status_code == 201
    first = http.post(
        "/v1/experiments/idempotent/suggestions", json={"count": 2, "client_id": "worker-1"}
    ).json()
    again = http.post(
        "/v1/experiments/idempotent/suggestions", json={"count": 2, "client_id": "worker-1"}
    ).json()
    assert [t["name"] for t in again["trials"]] == [t["name"] for t in first["trials"]]
    other = http.post(
        "/v1/experiments/idempotent/suggestions", json={"count": 1, "client_id": "worker-2"}
    ).json()
    assert [t["number"] for t in other["trials"]] == [2]
    for trial in first["trials"]:
        path = f"/v1/experiments/idempotent/trials/{trial['number']}/complete"
        http.post(path, json={"metrics": {"loss": 1.0}}).raise_for_status()
    fresh = http.post(
        "/v1/experiments/idempotent/suggestions", json={"count": 1, "client_id": "worker-1"}
    ).json()
    assert [t["number"] for t in fresh["trials"]] == [3]


def test_median_stopping_tells_a_worse_trial_to_stop(http: httpx.Client) -> None:
    document = katib_experiment(
        "medianstop",
        maxTrialCount=5,
        parallelTrialCount=5,
        earlyStopping={
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"},
                {"name": "start_step", "value": "2"},
            ],
        },
    )
    assert _create(http, document).status_code == 201
    trials = http.post("/v1/experiments/medianstop/suggestions", json={"count": 3}).json()["trials"]
    assert len(trials) == 3
    for number, losses in ((0, [0.5, 0.4]), (1, [0.3, 0.2])):
        for loss in losses:
            http.post(
                f"/v1/experiments/medianstop/trials/{number}/intermediate", json={"metrics": {"loss": loss}}
            )
        http.post(
            f"/v1/experiments/medianstop/trials/{number}/complete", json={"metrics": {}}
        ).raise_for_status()
    path = "/v1/experiments/medianstop/trials/2/intermediate"
    assert (
        http.post(path, json={"metrics": {"loss": 0.9}}).json()["should_stop"] is False
    )  # before start_step
    answer = http.post(path, json={"metrics": {"loss": 0.8}}).json()
    assert answer["should_stop"] is True and "median" in answer["reason"]
    assert http.get("/v1/experiments/medianstop/trials/2").json()["status"] == "EarlyStopped"
    assert_refused(http.post(path, json={"metrics": {"loss": 0.1}}), 409, "number")


def test_a_multi_objective_experiment_has_a_pareto_front(http: httpx.Client) -> None:
    document = katib_experiment(
        "pareto",
        algorithm={"algorithmName": "nsga2"},
        objective={
            "type": "minimize",
            "objectiveMetricName": "loss",
            "additionalObjectives": [{"metricName": "latency", "type": "minimize"}],
        },
        maxTrialCount=3,
        parallelTrialCount=3,
    )
    created = _create(http, document)
    assert created.status_code == 201, created.text
    http.post("/v1/experiments/pareto/suggestions", json={"count": 3}).raise_for_status()
    for number, (loss, latency) in enumerate([(0.1, 9.0), (0.5, 1.0), (0.6, 9.5)]):
        body = {"metrics": {"loss": loss, "latency": latency}}
        http.post(f"/v1/experiments/pareto/trials/{number}/complete", json=body).raise_for_status()
    best = http.get("/v1/experiments/pareto/best").json()
    assert sorted(t["number"] for t in best["pareto"]) == [0, 1]
    assert best["best"]["number"] == 0


def test_a_changed_search_space_is_refused(http: httpx.Client) -> None:
    assert _create(http, katib_experiment("changed")).status_code == 201
    changed = katib_experiment("changed")
    changed["spec"]["parameters"][1]["feasibleSpace"]["max"] = "8"
    response = _create(http, changed)
    assert_refused(response, 409, "body.spec.parameters")
    assert "feasibleSpace.max 4 -> 8" in response.json()["error"]


def _broken(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    document = katib_experiment("broken")
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param(_broken(("spec", "maxTrialCount"), 0), "body.spec.maxTrialCount", id="zero-trials"),
        pytest.param(
            _broken(("spec", "algorithm", "algorithmName"), "magic"),
            "body.spec.algorithm.algorithmName",
            id="algorithm",
        ),
        pytest.param(_broken(("kind",), "Job"), "body.kind", id="kind"),
        pytest.param(_broken(("metadata", "name"), "Not_A_Name"), "body.metadata.name", id="name"),
        # One it could not be read back by (?namespace= takes a Kubernetes namespace only).
        pytest.param(_broken(("metadata", "namespace"), "Team_A"), "body.metadata.namespace", id="namespace"),
    ],
)
def test_a_bad_experiment_is_refused_naming_the_field(
    http: httpx.Client, document: dict[str, Any], field: str
) -> None:
    assert_refused(_create(http, document), 400, field)


@pytest.fixture(scope="module")
def refusals(server: Any) -> None:
    """An experiment with three active trials, for the requests refused on it."""
    with server.client() as http:
        _create(http, katib_experiment("refusals")).raise_for_status()
        http.post("/v1/experiments/refusals/suggestions", json={"count": 3}).raise_for_status()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        pytest.param(
            "post",
            "/v1/experiments/nonexistent/suggestions",
            {"count": 1},
            404,
            "name",
            id="unknown-experiment",
        ),
        pytest.param(
            "post", "/v1/experiments/refusals/suggestions", {"count": 0}, 400, "body.count", id="zero-count"
        ),
        pytest.param(
            "post",
            "/v1/experiments/refusals/suggestions",
            {"cuont": 1},
            400,
            "body.cuont",
            id="unknown-field",
        ),
        pytest.param("get", "/v1/experiments/refusals/trials/99", None, 404, "number", id="unknown-trial"),
        pytest.param("get", "/v1/experiments/Bad_Name", None, 400, "name", id="bad-name"),
        pytest.param(
            "post",
            "/v1/experiments/refusals/trials/0/complete",
            {"metrics": {"accuracy": 1}},
            400,
            "body.metrics.loss",
            id="no-objective",
        ),
        pytest.param(
            "post",
            "/v1/experiments/refusals/trials/2/intermediate",
            {"metrics": {"loss": "high"}},
            400,
            "body.metrics.loss",
            id="text-metric",
        ),
        pytest.param("get", "/v1/nowhere", None, 404, "path", id="no-endpoint"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(
    http: httpx.Client, refusals: None, method: str, path: str, body: Any, status: int, field: str
) -> None:
    if http.get("/v1/experiments/idempotent").status_code == 404:
        _create(http, katib_experiment("idempotent")).raise_for_status()
        http.post("/v1/experiments/refusals/suggestions", json={"count": 3}).raise_for_status()
    response = http.request(method, path, json=body)
    assert_refused(response, status, field)


def test_a_non_finite_metric_is_refused(http: httpx.Client) -> None:
    _create(http, katib_experiment("finite")).raise_for_status()
    http.post("/v1/experiments/finite/suggestions", json={"count": 1}).raise_for_status()
    response = http.post(
        "/v1/experiments/finite/trials/0/complete",
        content=b'{"metrics": {"loss": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["field"].startswith("body")


def test_a_body_over_the_limit_is_refused_before_it_is_read(http: httpx.Client) -> None:
    response = http.post(
        "/v1/experiments", content=b"x" * (1024 * 1024 + 1), headers={"Content-Type": "application/json"}
    )
    assert_refused(response, 413, "body")


@pytest.mark.parametrize(
    ("content_type", "body", "field"),
    [
        ("application/json", b"[" * 5000 + b"]" * 5000, "body"),
        (
            "application/yaml",
            b"metadata: {name: deep}\nspec: " + b"[" * 5000 + b"]" * 5000,
            "body.(document)",
        ),
        (
            "application/yaml",
            (
                "metadata: {name: bomb}\nspec:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
                + "".join(
                    f"  {n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
                    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
                )
            ).encode(),
            "body.(document)",
        ),
    ],
    ids=["deep-json", "deep-yaml", "alias-bomb"],
)
def test_a_hostile_body_is_one_line_of_json(
    http: httpx.Client, content_type: str, body: bytes, field: str
) -> None:
    """Issues 28 and 31: 5,000 nested brackets were a plain-text 500 (RecursionError); a 2 KB
    alias bomb kept the server busy without an answer."""
    response = http.post("/v1/experiments", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    # Python 3.13's json parses 5,000 levels: then the document's nesting is refused.
    assert response.json()["field"] in (field, "body.(document)")


def test_a_vanished_clients_trial_is_handed_out_again_after_its_lease(tmp_path: Path) -> None:
    """Issue 28: a client that asked and vanished held the rest of the budget for ever (every
    later suggestion: 409). With a lease, its trial goes to the next client, number and
    parameters kept; a client that reports keeps its trial."""
    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}", "--trial-lease", "0.5")
    try:
        with server.client() as http:
            _create(
                http, katib_experiment("leased", maxTrialCount=2, parallelTrialCount=2)
            ).raise_for_status()
            path = "/v1/experiments/leased/suggestions"
            gone, alive = http.post(path, json={"count": 2, "client_id": "gone"}).json()["trials"]

            def handed_out(client: str = "next") -> list[Any]:
                # The reporting client renews its trial's lease; the other one said nothing.
                http.post(
                    f"/v1/experiments/leased/trials/{alive['number']}/intermediate",
                    json={"metrics": {"loss": 1}},
                ).raise_for_status()
                reply = http.post(path, json={"count": 1, "client_id": client})
                return list(reply.json().get("trials") or []) if reply.status_code == 200 else []

            [again] = wait_for(
                handed_out, seconds=30, what="the vanished client's trial to be handed out again"
            )
            assert (again["number"], again["parameters"]) == (gone["number"], gone["parameters"])
            assert handed_out("third") == []  # the reporting client's trial stays its own
    finally:
        server.stop()

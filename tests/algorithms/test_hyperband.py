"""Hyperband: the published schedule, promotions that keep parameters, Katib's constraints."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hpo_kfp.algorithms.hyperband import schedule
from hpo_kfp.decide import decide
from hpo_kfp.errors import SpecError
from hpo_kfp.history import History
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.suggest import suggest
from tests.conftest import base_spec, with_field


def test_schedule_matches_the_published_table() -> None:
    # Li et al. (2018), Table 1: R = 81, eta = 3.
    rungs = [(r.bracket, r.size, r.resource) for r in schedule(81, 3)]
    assert rungs == [
        (4, 81, 1),
        (4, 27, 3),
        (4, 9, 9),
        (4, 3, 27),
        (4, 1, 81),
        (3, 34, 3),
        (3, 11, 9),
        (3, 3, 27),
        (3, 1, 81),
        (2, 15, 9),
        (2, 5, 27),
        (2, 1, 81),
        (1, 8, 27),
        (1, 2, 81),
        (0, 5, 81),
    ]


@pytest.mark.parametrize(("r_l", "eta", "sizes"), [(9, 3, [9, 3, 1, 5, 1, 3]), (4, 2, [4, 2, 1, 3, 1, 3])])
def test_smaller_schedules(r_l: float, eta: int, sizes: list[int]) -> None:
    assert [r.size for r in schedule(r_l, eta)] == sizes


def _experiment(parallel: int = 9, **settings: str) -> Experiment:
    document = base_spec()
    document["spec"]["parallelTrialCount"] = parallel
    document["spec"]["maxTrialCount"] = 50
    document["spec"]["algorithm"] = {
        "algorithmName": "hyperband",
        "algorithmSettings": [
            {"name": k, "value": v}
            for k, v in {"resource_name": "layers", "r_l": "9", "eta": "3", **settings}.items()
        ],
    }
    return parse_experiment(document)


def _finish(history: History, loss: Any) -> History:
    return history.upsert(
        replace(t, status="Succeeded", values=(loss(t.parameters),))
        for t in history.trials
        if t.status == "Pending"
    )


def test_rungs_run_in_order_and_promote_the_best_with_their_parameters() -> None:
    experiment = _experiment()
    history = History(experiment="demo")
    loss = lambda p: abs(p["lr"] - 0.03) * 100 + 1 / p["layers"]  # noqa: E731
    sizes, resources = [], []
    while True:
        created, history = suggest(experiment, history, 9)
        if not created:
            break
        sizes.append(len(created))
        resources.append({t.parameters["layers"] for t in created})
        if created[0].sampler_attrs["hyperband"][1] > 0:  # a promoted rung
            parents = {t.name: t for t in history.trials}
            for trial in created:
                parent = parents[trial.sampler_attrs["hyperband_from"]]
                assert {k: v for k, v in trial.parameters.items() if k != "layers"} == {
                    k: v for k, v in parent.parameters.items() if k != "layers"
                }
                previous = [
                    t
                    for t in history.trials
                    if t.sampler_attrs.get("hyperband")
                    == [trial.sampler_attrs["hyperband"][0], trial.sampler_attrs["hyperband"][1] - 1]
                ]
                ranked = sorted(previous, key=lambda t: t.objective)
                assert parent in ranked[: len(created)]  # the best of the previous rung go on
        # A rung is proposed only once the previous one has finished.
        assert suggest(experiment, history, 9)[0] == []
        history = _finish(history, loss)
    assert sizes == [9, 3, 1, 5, 1, 3]
    assert resources == [{1}, {3}, {9}, {3}, {9}, {9}]
    assert decide(experiment, history).reason == "SuggestionEndReached"


def test_parallel_trial_count_must_hold_the_largest_rung() -> None:
    with pytest.raises(
        SpecError,
        match=r"^spec.parallelTrialCount: must be at least eta\^s_max = 9 with hyperband "
        r"\(r_l=9, eta=3\): each rung runs in one round, but got 8$",
    ):
        _experiment(parallel=8)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"resource_name": "epochs"},
            r"resource_name must name an int or double parameter .* but got 'epochs'",
        ),
        ({"resource_name": "optimizer"}, r"resource_name must name an int or double parameter"),
        ({"eta": "1"}, r"eta must be an integer >= 2, but got '1'"),
        ({"r_l": "-3"}, r"r_l must be a number > 0, but got '-3'"),
    ],
    ids=["unknown-resource", "categorical-resource", "eta", "r_l"],
)
def test_hyperband_settings_are_checked(settings: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        _experiment(**settings)


def test_hyperband_needs_its_settings() -> None:
    document = with_field(base_spec(), "spec.algorithm", {"algorithmName": "hyperband"})
    with pytest.raises(
        SpecError,
        match=r"^spec.algorithm.algorithmSettings: hyperband needs the setting "
        r"resource_name, but got nothing$",
    ):
        parse_experiment(document)


def test_rounds_needed_counts_the_rungs_left() -> None:
    from hpo_kfp.rounds import rounds_needed

    experiment = _experiment()  # r_l 9, eta 3: rungs of 9, 3, 1, 5, 1, 3; maxTrialCount 50
    assert rounds_needed(experiment) == 6
    history = History(experiment="demo")
    _, history = suggest(experiment, history, 9)
    history = _finish(history, lambda p: p["lr"])
    assert rounds_needed(experiment, history) == 5
    assert rounds_needed(replace(experiment, max_trial_count=13)) == 3  # 9 + 3 + 1

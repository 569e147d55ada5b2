"""The algorithm registry: one contract suite run over every algorithm, and dispatch only here.

Each registered algorithm runs the same tests (ids are the names); the source scan at the
end fails when a module outside ``hpo_kfp/algorithms/`` compares algorithm names again.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import hpo_kfp
from hpo_kfp.algorithms import (
    ALGORITHMS,
    UNSUPPORTED_ALGORITHMS,
    Algorithm,
    OptunaSampler,
    build_sampler,
    get_algorithm,
    require_dependencies,
    trial_name,
)
from hpo_kfp.errors import SamplerUnavailable, SpecError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.space import SearchSpace
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec
from tests.test_dispatch import comparisons

_NAMES = list(ALGORITHMS)

# Settings some algorithms cannot run without.
_REQUIRED_SETTINGS: dict[str, dict[str, str]] = {"hyperband": {"resource_name": "y", "r_l": "9", "eta": "3"}}


def _document(name: str, *, multi: bool = False) -> dict[str, Any]:
    """A small space every algorithm accepts: 21 x 20 x 3 = 1260 grid points."""
    document = base_spec()
    spec = document["spec"]
    settings = _REQUIRED_SETTINGS.get(name, {})
    spec["algorithm"] = {
        "algorithmName": name,
        "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()],
    }
    spec["parameters"] = [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5", "step": "0.5"}},
        {"name": "y", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "20"}},
        {"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c"]}},
    ]
    spec["parallelTrialCount"] = 9  # hyperband's largest rung with r_l 9, eta 3
    spec["maxTrialCount"] = 40
    spec["maxFailedTrialCount"] = 40
    if multi:
        spec["objective"]["additionalObjectives"] = [{"metricName": "accuracy", "type": "maximize"}]
    references = [{"name": p["name"], "reference": p["name"]} for p in spec["parameters"]]
    spec["trialTemplate"]["trialParameters"] = references
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["train"] + [f"${{trialParameters.{r['name']}}}" for r in references]
    return document


def _experiment(name: str) -> Experiment:
    return parse_experiment(_document(name))


@pytest.fixture(params=_NAMES, ids=_NAMES)
def algorithm(request: pytest.FixtureRequest) -> Algorithm:
    return ALGORITHMS[request.param]


@pytest.fixture
def runnable(algorithm: Algorithm) -> Algorithm:
    """The algorithm, when what it needs is installed (bayesianoptimization needs torch)."""
    try:
        algorithm.require_dependencies()
    except SamplerUnavailable as error:
        pytest.skip(str(error))
    return algorithm


def _finish(history: History, created: list[TrialRecord]) -> History:
    return history.upsert(
        replace(t, status="Succeeded", values=(t.parameters["x"] ** 2 + t.parameters["y"] / 10,))
        for t in created
    )


def test_implements_the_protocol_under_its_own_name(algorithm: Algorithm) -> None:
    assert isinstance(algorithm, Algorithm)
    assert get_algorithm(algorithm.name) is algorithm
    assert isinstance(algorithm.multi_objective, bool)


def test_accepts_katibs_seed_settings(algorithm: Algorithm) -> None:
    assert algorithm.settings
    assert algorithm.settings["random_state"].target == "seed"
    assert algorithm.settings["seed"].target == "seed"
    seeded = _document(algorithm.name)
    seeded["spec"]["algorithm"]["algorithmSettings"].append({"name": "random_state", "value": "7"})
    assert parse_experiment(seeded).algorithm.seed == 7


def test_the_spec_reader_follows_the_multi_objective_flag(algorithm: Algorithm) -> None:
    document = _document(algorithm.name, multi=True)
    if algorithm.multi_objective:
        assert parse_experiment(document).objective.is_multi
    else:
        with pytest.raises(SpecError, match=r"^spec.algorithm.algorithmName: must be an algorithm that"):
            parse_experiment(document)


def test_validate_accepts_an_experiment_that_fits(algorithm: Algorithm) -> None:
    algorithm.validate(_experiment(algorithm.name), lambda field: f"spec.{field}")


def test_suggest_proposes_count_distinct_numbered_trials(runnable: Algorithm) -> None:
    experiment = _experiment(runnable.name)
    space = SearchSpace(experiment.parameters)
    empty = History(experiment=experiment.name)
    created, history = runnable.suggest(experiment, empty, 4)
    assert [t.number for t in created] == [0, 1, 2, 3]
    assert [t.name for t in created] == [trial_name("demo", n) for n in range(4)]
    assert all(t.status == "Pending" and space.contains(t.parameters) for t in created)
    assert len({repr(sorted(t.parameters.items())) for t in created}) == 4
    assert history.trials[-4:] == tuple(created)
    # The next call, once those finished, numbers on and repeats none of them.
    more, history = runnable.suggest(experiment, _finish(history, created), 4)
    assert more and [t.number for t in more] == list(range(4, 4 + len(more)))
    assert len({repr(sorted(t.parameters.items())) for t in history.trials}) == len(history.trials)


def test_suggest_is_deterministic(runnable: Algorithm) -> None:
    experiment = _experiment(runnable.name)
    created, history = runnable.suggest(experiment, History(experiment=experiment.name), 4)
    history = _finish(history, created)
    first, _ = runnable.suggest(experiment, history, 4)
    again, _ = runnable.suggest(experiment, History.from_json(history.to_json()), 4)
    assert [t.parameters for t in first] == [t.parameters for t in again]
    assert [t.sampler_attrs for t in first] == [t.sampler_attrs for t in again]


def test_not_exhausted_before_the_first_trial(algorithm: Algorithm) -> None:
    experiment = _experiment(algorithm.name)
    assert not algorithm.exhausted(experiment, History(experiment=experiment.name), 0)


def test_rounds_needed_is_at_least_one(algorithm: Algorithm) -> None:
    experiment = _experiment(algorithm.name)
    empty = History(experiment=experiment.name)
    assert algorithm.rounds_needed(experiment, empty, 40) >= 1
    assert algorithm.rounds_needed(experiment, empty, 0) == 1


def test_seed_policy(algorithm: Algorithm) -> None:
    experiment = _experiment(algorithm.name)
    empty = History(experiment=experiment.name)
    later = empty.upsert(TrialRecord(name=trial_name("demo", n), number=n, parameters={}) for n in range(4))
    seed = algorithm.seed(experiment, empty)
    assert 0 <= seed < 2**31
    assert algorithm.seed(experiment, empty) == seed
    # A sequence continued across calls keeps its seed; every other algorithm draws afresh.
    continues = isinstance(algorithm, OptunaSampler) and algorithm.continues_sequence
    assert (algorithm.seed(experiment, later) == seed) is continues


def test_require_dependencies_passes_or_names_what_is_missing(algorithm: Algorithm) -> None:
    try:
        require_dependencies(algorithm.name)
    except SamplerUnavailable as error:
        assert f"algorithm {algorithm.name} runs Optuna's" in str(error)


def test_a_missing_dependency_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # No registered algorithm needs an optional library today (bayesianoptimization stopped
    # needing torch); one that did would be refused before its run starts, like this.
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    gp = OptunaSampler(
        name="gp", sampler="GPSampler", settings={}, dependencies=("torch",), install_hint="see X"
    )
    with pytest.raises(
        SamplerUnavailable, match=r"^algorithm gp runs Optuna's GPSampler, which needs torch; see X$"
    ):
        gp.require_dependencies()
    require_dependencies("bayesianoptimization")  # needs nothing


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bogus", r"^spec.algorithm.algorithmName: must be one of random, grid, .*, but got 'bogus'$"),
        *[
            (name, "^spec.algorithm.algorithmName: " + re.escape(reason))
            for name, reason in UNSUPPORTED_ALGORITHMS.items()
        ],
    ],
    ids=["unknown", *UNSUPPORTED_ALGORITHMS],
)
def test_get_algorithm_refuses_what_is_not_registered(name: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        get_algorithm(name)


def test_build_sampler_refuses_an_algorithm_without_one_sampler() -> None:
    with pytest.raises(TypeError, match="hyperband is not run by one Optuna sampler"):
        build_sampler("hyperband", {}, seed=0)


def test_the_registry_and_spec_reading_import_no_optuna() -> None:
    # The spec reader imports the registry; reading a spec must not load Optuna.
    code = textwrap.dedent(
        """
        import sys
        import hpo_kfp.algorithms
        from hpo_kfp.spec import parse_experiment
        from tests.conftest import base_spec
        parse_experiment(base_spec())
        print(sorted(m for m in sys.modules if m == "optuna" or m.startswith("optuna.")))
        """
    )
    root = Path(hpo_kfp.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert result.stdout.strip() == "[]"


# --- Dispatch happens in the registry only ---------------------------------------------

_PACKAGE = Path(hpo_kfp.__file__).resolve().parent
_REGISTRY = _PACKAGE / "algorithms"
_NAME_LITERALS = frozenset(ALGORITHMS) | frozenset(UNSUPPORTED_ALGORITHMS)


def _names_an_algorithm(node: ast.expr) -> bool:
    """``<x>.algorithm.name``, ``algorithm_name`` or ``<x>.algorithm_name``."""
    if isinstance(node, ast.Name):
        return node.id == "algorithm_name"
    if isinstance(node, ast.Attribute):
        if node.attr == "algorithm_name":
            return True
        return (
            node.attr == "name" and isinstance(node.value, ast.Attribute) and node.value.attr == "algorithm"
        )
    return False


def name_comparisons(source: str) -> list[int]:
    """Lines that compare an algorithm's name with a literal, or a literal algorithm name."""
    return comparisons(source, set(_NAME_LITERALS), _names_an_algorithm)


@pytest.mark.parametrize(
    "source",
    [
        'if experiment.algorithm.name == "hyperband": pass',
        'grid = experiment.algorithm.name == "grid"',
        'x = self.experiment.algorithm.name in ("grid", "sobol")',
        'if algorithm_name != "tpe": pass',
        'if args.algorithm_name == "anything": pass',
        'if name == "grid": pass',
        'if "sobol" in (name, other): pass',
        "match experiment.algorithm.name:\n    case _: pass",
    ],
    ids=[
        "eq",
        "assigned",
        "in-tuple",
        "algorithm_name",
        "attribute",
        "bare-literal",
        "literal-left",
        "match",
    ],
)
def test_the_scan_finds_a_name_comparison(source: str) -> None:
    assert name_comparisons(source) == [1]


@pytest.mark.parametrize(
    "source",
    [
        'print(f"algorithm {experiment.algorithm.name}")',
        "algorithm = get_algorithm(experiment.algorithm.name)",
        'if parameter.distribution in ("normal", "logNormal"): pass',
        'row = {"algorithm": experiment.algorithm.name}',
    ],
    ids=["format", "lookup", "other-literals", "record"],
)
def test_the_scan_lets_other_uses_pass(source: str) -> None:
    assert name_comparisons(source) == []


def test_no_module_outside_the_registry_compares_algorithm_names() -> None:
    found = [
        f"{path.relative_to(_PACKAGE.parent)}:{line}"
        for path in sorted(_PACKAGE.rglob("*.py"))
        if _REGISTRY not in path.parents
        for line in name_comparisons(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "dispatch through hpo_kfp.algorithms.get_algorithm instead"


def _scenario(algorithm: Algorithm, experiment: Experiment) -> list[Any]:
    """Eight calls over a history whose trials end in every way between them (as the service
    changes them: a client id on a running trial, results, failures, an early stop), enough
    results for every sampler to leave its start-up sampling; what each call proposed and
    stored."""
    metric = experiment.objective.metric
    history = History(experiment=experiment.name)
    seen: list[Any] = []
    for call in range(8):
        created, history = algorithm.suggest(experiment, history, 4)
        seen.append(([(t.parameters, t.sampler_attrs) for t in created], history.study_attrs))
        changed = []
        for index, trial in enumerate(created):
            kind = (call + index) % 5
            if kind in (0, 4):
                value = trial.parameters["x"] ** 2 + trial.parameters["y"] / 10
                changed.append(replace(trial, status="Succeeded", values=(value,), metrics={metric: value}))
            elif kind == 1:
                changed.append(replace(trial, status="Failed", reason="exit code 1"))
            elif kind == 2:
                series = {metric: [("2026-12-06T00:00:00", 9.0), ("2026-12-06T00:00:01", 8.0)]}
                changed.append(replace(trial, status="EarlyStopped", series=series))
            else:
                attrs = {**trial.sampler_attrs, "hpo_kfp.service.client": f"c{call}"}
                changed.append(replace(trial, status="Running", sampler_attrs=attrs))
        history = history.upsert(changed)
    return seen


def test_a_kept_study_suggests_what_a_rebuilt_one_does(
    runnable: Algorithm, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(runnable, OptunaSampler):
        pytest.skip(f"{runnable.name} is not run by one Optuna sampler")
    from hpo_kfp.algorithms import optuna_family

    experiment = _experiment(runnable.name)
    rebuilt = []
    rebuild = OptunaSampler.rebuild_study

    def counted(self: OptunaSampler, *args: Any) -> Any:
        rebuilt.append(1)
        return rebuild(self, *args)

    monkeypatch.setattr(OptunaSampler, "rebuild_study", counted)
    kept = _scenario(runnable, experiment)
    assert len(rebuilt) < 8  # the kept study served some of the calls
    monkeypatch.setattr(optuna_family, "_take", lambda experiment: None)
    rebuilt.clear()
    assert _scenario(runnable, experiment) == kept
    assert len(rebuilt) == 8

"""What a compiled pipeline needs of the KFP backend, read from the pipeline itself."""

# No `from __future__ import annotations`: KFP reads the pipeline functions' annotations.
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl

from hpo_kfp.backend import COLLECTED_PARAMETERS, ONE_OF_NESTED, check_backend, release, required_features
from hpo_kfp.errors import BackendTooOld, InputError


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _number(x: int) -> str:
    return str(x)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _gather(xs: list[str]) -> bool:
    return bool(xs)


@dsl.pipeline
def _inner() -> str:
    return _number(x=1).output


@dsl.pipeline
def _collected() -> None:
    with dsl.ParallelFor([1, 2]) as item:
        task = _number(x=item)
    _gather(xs=dsl.Collected(task.output))


@dsl.pipeline
def _loop_without_collected() -> None:
    with dsl.ParallelFor([1, 2]) as item:
        _number(x=item)


@dsl.pipeline
def _one_of_nested() -> str:
    flag = _gather(xs=["a"])
    with dsl.If(flag.output == True):  # noqa: E712 - a KFP condition
        nested = _inner()
    with dsl.Else():
        flat = _number(x=3)
    return dsl.OneOf(nested.output, flat.output)


@dsl.pipeline
def _one_of_flat() -> str:
    flag = _gather(xs=["a"])
    with dsl.If(flag.output == True):  # noqa: E712 - a KFP condition
        first = _number(x=1)
    with dsl.Else():
        second = _number(x=3)
    return dsl.OneOf(first.output, second.output)


def _spec(pipeline: Any, tmp_path: Path) -> dict[str, Any]:
    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    return next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))


@pytest.mark.parametrize(
    ("pipeline", "features"),
    [
        (_collected, [COLLECTED_PARAMETERS]),
        (_loop_without_collected, []),
        (_one_of_nested, [ONE_OF_NESTED]),
        (_one_of_flat, []),
    ],
    ids=["collected", "loop-only", "one-of-nested", "one-of-flat"],
)
def test_features_are_read_from_the_compiled_pipeline(
    pipeline: Any, features: list[Any], tmp_path: Path
) -> None:
    assert required_features(_spec(pipeline, tmp_path)) == features


def test_the_generic_pipeline_needs_collected_parameters() -> None:
    committed = Path(__file__).parents[1] / "pipelines" / "hpo_experiment.yaml"
    assert COLLECTED_PARAMETERS in required_features(next(yaml.safe_load_all(committed.read_text())))


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("2.17.0", (2, 17, 0)),
        ("v2.5.0", (2, 5, 0)),
        ("2.15.0-rc.1", (2, 15, 0)),
        ("2.14", (2, 14)),
        ("unknown", None),
        ("", None),
        (None, None),
    ],
    ids=["plain", "v-prefix", "rc", "two-parts", "unknown", "empty", "none"],
)
def test_release_reads_a_backend_tag(tag: str | None, expected: tuple[int, ...] | None) -> None:
    assert release(tag) == expected


@pytest.mark.parametrize(
    ("tag", "features", "message"),
    [
        (
            "2.5.0",
            [COLLECTED_PARAMETERS],
            "the KFP backend at http://kfp must be 2.14 or newer to run this pipeline "
            "(dsl.Collected of parameters (a ParallelFor's outputs gathered into a list)), but it is 2.5.0",
        ),
        (
            "2.16.1",
            [COLLECTED_PARAMETERS, ONE_OF_NESTED],
            "the KFP backend at http://kfp must be 2.17.0 or newer to run this pipeline "
            "(dsl.OneOf across nested sub-DAGs), but it is 2.16.1",
        ),
    ],
    ids=["kubeflow-1.10", "one-of-on-2.16"],
)
def test_an_older_backend_is_refused_naming_feature_and_versions(
    tag: str, features: list[Any], message: str
) -> None:
    with pytest.raises(BackendTooOld) as raised:
        check_backend(tag, features, "http://kfp")
    assert str(raised.value) == message and isinstance(raised.value, InputError)


@pytest.mark.parametrize("tag", ["2.14.0", "2.17.0", "v3.0.0", "unknown", None], ids=str)
def test_a_new_enough_or_unnamed_backend_passes(tag: str | None) -> None:
    features = (
        [COLLECTED_PARAMETERS]
        if tag in ("2.14.0", None, "unknown")
        else [COLLECTED_PARAMETERS, ONE_OF_NESTED]
    )
    check_backend(tag, features, "http://kfp")

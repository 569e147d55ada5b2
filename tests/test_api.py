"""The public API: every name in ``hpo_kfp.__all__`` resolves, and tune() has a real signature."""

from __future__ import annotations

import inspect

import pytest

import hpo_kfp


def test_every_public_name_resolves() -> None:
    missing = [name for name in hpo_kfp.__all__ if not hasattr(hpo_kfp, name)]
    assert missing == []


def test_tune_has_its_real_parameters_and_a_docstring() -> None:
    signature = inspect.signature(hpo_kfp.tune)
    assert list(signature.parameters) == [
        "experiment",
        "trial",
        "trial_arguments",
        "metrics_output",
        "settings",
        "base_image",
    ]
    assert signature.parameters["settings"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "Adds hyperparameter tuning" in (hpo_kfp.tune.__doc__ or "")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'tuner'"):
        hpo_kfp.tuner  # noqa: B018 - the access is the test

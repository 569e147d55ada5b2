"""Lightweight components whose signature depends on the experiment (one output per
hyperparameter) or on the trial component (one input per argument given as a pipeline
channel), made from generated source by :func:`hpo_kfp.compat.component_from_source`."""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import keyword
import re
from typing import Any, List, Tuple

from hpo_kfp.compat import component_from_source

__all__ = ["best_op", "identifier", "trial_component_op"]


def identifier(name: str) -> str:
    """A Python identifier for a parameter name (``--learning-rate`` -> ``learning_rate``)."""
    text = re.sub(r"\W+", "_", name).strip("_") or "parameter"
    if text[0].isdigit() or keyword.iskeyword(text):
        text = "p_" + text
    return text


def trial_component_op(fields: List[Tuple[str, str, str]], base_image: str) -> Any:
    """A component adding the arguments that are pipeline channels (known at run time) to a
    trial component (a :class:`~hpo_kfp.wire.TrialComponent`).

    Args:
        fields: ``(identifier, input name, python type name)`` per argument.
    """
    signature = "".join(f", {name}: {kind}" for name, _, kind in fields)
    values = ", ".join(f"{argument!r}: {name}" for name, argument, _ in fields)
    source = f"""def trial_component(trial_component_json: str{signature}) -> str:
    from dataclasses import replace

    from hpo_kfp.wire import TrialComponent

    trial = TrialComponent.from_json(trial_component_json)
    return replace(trial, arguments={{**trial.arguments, {values}}}).to_json()
"""
    return component_from_source(source, "trial_component", base_image)


def best_op(fields: List[Tuple[str, str, str]], base_image: str) -> Any:
    """A component exposing the best trial: its parameters as a dict, as typed JSON and one
    by one, its objective and name, the decision, and the history as an artifact, from the
    tuning's ``decide`` step.

    ``best_parameters`` is a KFP ``dict``, whose numbers KFP carries as doubles (an int
    parameter's 3 arrives as 3.0 on kfp.local); ``best_parameters_json`` keeps each value of
    its parameter's type, as do the ``best_<parameter>`` outputs.

    Args:
        fields: ``(output name, parameter name, python type name)`` per hyperparameter.
    """
    outputs = [
        ("best_parameters", "dict"),
        ("best_parameters_json", "str"),
        ("best_objective", "float"),
        ("best_trial", "str"),
        ("decision", "str"),
    ] + [(output, kind) for output, _, kind in fields]
    annotation = ", ".join(f'("{name}", {kind})' for name, kind in outputs)
    kinds = {parameter: kind for _, parameter, kind in fields}
    values = "".join(f", {kind}(best.parameters[{parameter!r}])" for _, parameter, kind in fields)
    source = f"""from typing import NamedTuple

from kfp.dsl import Artifact, Input, Output


def best(
    decided: str, tuning_history: Input[Artifact], history: Output[Artifact]
) -> NamedTuple("Best", [{annotation}]):
    import shutil
    from collections import namedtuple

    from hpo_kfp.errors import StepFailed
    from hpo_kfp.wire import DecisionDocument, typed_parameters, typed_parameters_json

    shutil.copyfile(tuning_history.path, history.path)
    decision = DecisionDocument.from_json(decided)
    best = decision.best
    if best is None:
        raise StepFailed("no trial succeeded, so there is no best: " + decided)
    kinds = {kinds!r}
    outputs = namedtuple("Best", {[name for name, _ in outputs]!r})
    return outputs(
        typed_parameters(best.parameters, kinds),
        typed_parameters_json(best.parameters, kinds),
        best.objective,
        best.name,
        decided{values},
    )
"""
    return component_from_source(source, "best", base_image)

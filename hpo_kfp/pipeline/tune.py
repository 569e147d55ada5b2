"""``hpo_kfp.tune``: hyperparameter tuning as a step of the caller's own pipeline.

Inside any ``@dsl.pipeline``::

    tuning = hpo_kfp.tune(experiment, trial=train_trial, trial_arguments={"data": data},
                          settings=hpo_kfp.StepSettings(store=...), base_image="REGISTRY/hpo-kfp:0.1.0")
    final = train(lr=tuning.outputs["best_lr"], data=data)

adds the tuning loop and a ``best`` step whose outputs are the best parameters as a dict
(``best_parameters``), as typed JSON (``best_parameters_json``) and one by one
(``best_<parameter>``, typed), ``best_objective``, ``best_trial``, ``decision`` (JSON) and
the ``history`` artifact.

The trial is either the experiment's trial template (a Kubernetes object or, locally, a
process — as in the uploadable pipelines) or a **KFP component** (or sub-pipeline) of the
caller's: the assignment reaches its inputs by name, its metrics come from its
``system.Metrics`` output or its float return value. Its task runs with caching off.

The loop is the asynchronous one of :mod:`hpo_kfp.pipeline.lanes` (``parallelTrialCount``
lanes, each starting its next trial when its last one ended), over the experiment store of
``settings`` — which it needs: the lanes share their trials through it. With the trial
template, each lane is one task looping over its trials: the pipeline is the same few tasks
for any ``maxTrialCount`` and one run holds the whole experiment. A KFP-native trial is
still unrolled into ``slots`` slots per lane (a run holds up to ``parallelTrialCount`` x
``slots`` of them). Running the pipeline again continues the same experiment, and once it
is done a run costs a few steps and hands the stored best downstream. An algorithm that needs
synchronous rounds (hyperband), or ``settings.synchronous``, runs in the same lanes: a
round's trials are claimable once the round before it ended (a barrier through the store).

A KFP-native trial that *raises* fails the run: kfp.local does not honour
``ignore_upstream_failure``. One that logs no objective, or logs a non-finite one through
:func:`hpo_kfp.metrics.log_metric`, is recorded as ``MetricsUnavailable`` and the tuning goes
on; a bare NaN fails its task (KFP cannot carry it).
"""

# No `from __future__ import annotations`: KFP reads the pipeline functions' annotations.
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from kfp import dsl

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.compat import defining_a_pipeline
from hpo_kfp.errors import BuildError
from hpo_kfp.pipeline.components import (
    RUNTIME_IMAGE,
    lane_native_metrics_op,
    lane_native_value_op,
)
from hpo_kfp.pipeline.generated import best_op, identifier, unpack_op
from hpo_kfp.pipeline.lanes import add_lanes, add_slot_lanes, slots_for
from hpo_kfp.pipeline.tasks import name_step, store_secret
from hpo_kfp.spec import Experiment, Parameter, load_experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["tune"]


def tune(
    experiment: Union[str, Path, Mapping[str, Any], Experiment],
    trial: Any = None,
    *,
    trial_arguments: Optional[Mapping[str, Any]] = None,
    metrics_output: Optional[str] = None,
    settings: Optional[StepSettings] = None,
    slots: Optional[int] = None,
    base_image: str = RUNTIME_IMAGE,
) -> Any:
    """Adds hyperparameter tuning to the pipeline being defined; returns the ``best`` task.

    Args:
        experiment: A Katib Experiment: a YAML file, a mapping, or an
            :class:`~hpo_kfp.spec.Experiment` (e.g. from :func:`hpo_kfp.experiment`).
        trial: A KFP component (or sub-pipeline) to run per trial, or None to run the
            experiment's trial template.
        trial_arguments: Values (or pipeline channels) for the trial component's other inputs.
        metrics_output: Which ``system.Metrics`` output holds the trial's metrics, when the
            component has several.
        settings: Runner, experiment store and namespace of the steps; the store is required
            (e.g. ``sqlite:////abs/path.sqlite`` locally, ML Metadata's
            ``grpc://metadata-grpc-service.kubeflow:8080`` or an SQL database on a cluster);
            ``store_secret`` names the Kubernetes Secret holding its password.
        slots: KFP-native trials per lane in one run (default: ``maxTrialCount``, at most
            :data:`~hpo_kfp.pipeline.lanes.MAX_SLOTS`).
        base_image: The image hpo-kfp's own steps run in (an image with hpo-kfp and kfp, e.g.
            ``REGISTRY/hpo-kfp:0.1.0`` built from the repository's ``Dockerfile``).

    Raises:
        BuildError: Called outside a ``@dsl.pipeline`` function, the trial component does not
            fit the experiment (names the parameter), or no store is set.
        SpecError: The experiment breaks a rule.
    """
    if not defining_a_pipeline():
        # Outside one, KFP would run the first component at once and fail with "Local
        # environment not initialized".
        raise BuildError(
            "tune() must be called inside a @dsl.pipeline function: it adds the tuning's tasks to "
            "the pipeline being defined (to tune from Python, run `hpo-kfp run FILE --local`)"
        )
    native = trial is not None
    spec = _experiment(experiment, native)
    if native and spec.early_stopping is not None:
        raise BuildError(
            "spec.earlyStopping: a KFP-native trial cannot be stopped while it runs; remove "
            "earlyStopping, or run the trials from a trialTemplate"
        )
    plan = _Plan(spec, trial, dict(trial_arguments or {}), metrics_output, base_image)
    options = settings or StepSettings()
    with store_secret(options.store_secret):
        return _add_tuning(spec, plan, options, slots, base_image)


def _add_tuning(
    spec: Experiment,
    plan: "_Plan",
    options: StepSettings,
    slots: Optional[int],
    base_image: str,
) -> Any:
    """Adds the loop and the ``best`` step of :func:`tune`; returns the ``best`` task."""
    native = plan.trial is not None
    if not options.store:
        raise BuildError(
            "settings.store: tune() must be given an experiment store (its lanes share their trials "
            "through it), e.g. StepSettings(store='sqlite:////abs/path/hpo.sqlite') for kfp.local or "
            "'postgresql://USER@HOST/DB' on a cluster, but got none"
        )
    if slots is not None and slots < 1:
        raise BuildError(f"slots: must be at least 1, but got {slots}")
    synchronous = options.synchronous or get_algorithm(spec.algorithm.name).synchronous
    step_settings = replace(options, synchronous=synchronous).to_json()
    spec_text = json.dumps(spec.source, separators=(",", ":"))
    if native:
        finished = add_slot_lanes(
            spec_text,
            step_settings,
            parallelism=spec.parallel_trial_count,
            slots=slots or slots_for(spec, spec.max_trial_count),
            trial=plan.lane_trial,
            base_image=base_image,
        )
    else:
        finished = add_lanes(
            spec_text, step_settings, parallelism=spec.parallel_trial_count, base_image=base_image
        )
    decision, history = finished.outputs["decision"], finished.outputs["history"]
    fields = [(f"best_{identifier(p.name)}", p.name, _python_type(p)) for p in spec.parameters]
    best = best_op(fields, base_image)(decided=decision, tuning_history=history)
    name_step(best, f"{spec.name}-best")
    return best


def _experiment(source: Union[str, Path, Mapping[str, Any], Experiment], native: bool) -> Experiment:
    if isinstance(source, Experiment):
        if native and source.trial_template is not None:
            raise BuildError(
                "experiment: its trialTemplate must be omitted when the trial is a KFP component"
            )
        if not native and source.trial_template is None:
            raise BuildError("trial: needs a KFP component, as the experiment has no trialTemplate")
        return source
    if isinstance(source, (str, Path)):
        document = load_experiment(source).source
        assert document is not None
        return parse_experiment(document, trial_template=not native)
    return parse_experiment(source, trial_template=not native)


def _python_type(parameter: Parameter) -> str:
    if parameter.type == "int":
        return "int"
    if parameter.type == "categorical":
        return "str"
    if parameter.type == "discrete" and all(isinstance(v, int) for v in parameter.values):
        return "int"
    return "float"


class _Plan:
    """Everything a round needs to add its tasks, checked once when tune() is called."""

    def __init__(
        self,
        experiment: Experiment,
        trial: Any,
        arguments: Dict[str, Any],
        metrics_output: Optional[str],
        base_image: str,
    ) -> None:
        self.experiment = experiment
        self.trial = trial
        self.arguments = arguments
        self.base_image = base_image
        self.metrics_output: Optional[str] = None
        if trial is not None:
            self._check_trial(metrics_output)
        elif arguments:
            raise BuildError("trial_arguments: only a KFP component trial takes arguments")

    def _check_trial(self, metrics_output: Optional[str]) -> None:
        spec = getattr(self.trial, "component_spec", None)
        if spec is None:
            raise BuildError(
                f"trial: must be a KFP component or pipeline, but got {type(self.trial).__name__}"
            )
        name = spec.name
        inputs = dict(spec.inputs or {})
        for index, parameter in enumerate(self.experiment.parameters):
            where = f"spec.parameters[{index}] {parameter.name!r}"
            if parameter.name not in inputs:
                raise BuildError(
                    f"{where}: trial component {name!r} must have an input named {parameter.name!r}, "
                    f"but its inputs are {sorted(inputs)}"
                )
            accepted = _accepted_types(parameter)
            if inputs[parameter.name].type not in accepted:
                raise BuildError(
                    f"{where}: input {parameter.name!r} of trial component {name!r} must be of type "
                    f"{' or '.join(accepted)}, but it is {inputs[parameter.name].type}"
                )
        hyper = {p.name for p in self.experiment.parameters}
        for argument in self.arguments:
            if argument in hyper:
                raise BuildError(f"trial_arguments: {argument!r} is a tuned parameter; the tuning sets it")
            if argument not in inputs:
                raise BuildError(
                    f"trial_arguments: trial component {name!r} must have an input named {argument!r}, "
                    f"but its inputs are {sorted(inputs)}"
                )
        for input_name, input_spec in inputs.items():
            if input_name not in hyper and input_name not in self.arguments and not input_spec.optional:
                raise BuildError(
                    f"trial_arguments: input {input_name!r} of trial component {name!r} needs a value"
                )
        self.metrics_output = self._metrics(spec, metrics_output)

    def _metrics(self, spec: Any, requested: Optional[str]) -> Optional[str]:
        outputs = dict(spec.outputs or {})
        metrics = [n for n, o in outputs.items() if str(o.type).startswith("system.Metrics")]
        if requested is not None:
            if requested not in metrics:
                raise BuildError(
                    f"metrics_output: trial component {spec.name!r} must have a system.Metrics output "
                    f"named {requested!r}, but its Metrics outputs are {metrics}"
                )
            return requested
        if len(metrics) == 1:
            return str(metrics[0])
        if len(metrics) > 1:
            raise BuildError(
                f"metrics_output: must name one of trial component {spec.name!r}'s Metrics outputs {metrics}"
            )
        if "Output" in outputs and outputs["Output"].type == "Float":
            return None
        raise BuildError(
            f"trial: component {spec.name!r} must report its metrics, through an Output[Metrics] "
            "or a float return value, but has neither"
        )

    def lane_trial(self, run: Any, item: Any, label: str) -> Any:
        """Adds one KFP-native trial's tasks inside a lane's slot; returns its last task."""
        user = self._user_trial(item, label, self.arguments)
        common = {"run": run, "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER, "trial": item}
        if self.metrics_output is not None:
            record = lane_native_metrics_op(self.base_image)(
                trial_metrics=user.outputs[self.metrics_output], **common
            )
        else:
            record = lane_native_value_op(self.base_image)(value=user.outputs["Output"], **common)
        name_step(record, f"{label}-collect-metrics", store=True)
        return record

    def _user_trial(self, item: Any, label: str, extra: Mapping[str, Any]) -> Any:
        """The unpacking of the assignment and the user's trial task (caching off: a trial must run)."""
        fields = [(p.name, _python_type(p)) for p in self.experiment.parameters]
        assignment = unpack_op(fields, self.base_image)(trial=item)
        name_step(assignment, f"{label}-assignment")
        user = self.trial(**{p.name: assignment.outputs[p.name] for p in self.experiment.parameters}, **extra)
        name_step(user, f"{label}-trial")
        return user


def _accepted_types(parameter: Parameter) -> Tuple[str, ...]:
    kind = _python_type(parameter)
    return {"int": ("Integer",), "float": ("Float",), "str": ("String",)}[kind]

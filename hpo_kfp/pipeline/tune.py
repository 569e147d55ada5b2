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
process — as in the uploadable pipelines) or a **KFP component** of the caller's: the
assignment reaches its inputs by name, its metrics come from its ``system.Metrics`` output or
its float return value.

The loop is the asynchronous one of :mod:`hpo_kfp.pipeline.lanes` (``parallelTrialCount``
lane tasks, each starting its next trial when its last one ended), over the experiment
store of ``settings`` — which it needs: the lanes share their trials through it. The
pipeline is the same few tasks for any ``maxTrialCount``, and one run holds the whole
experiment. A component trial is not a task of the pipeline: the lane runs the component's
own container (image, command and args, as KFP compiled it) with an executor input built for
the trial — a process on kfp.local, a Kubernetes Job on a cluster
(:mod:`hpo_kfp.component_trial`). So a trial that raises, exits non-zero, or reports a NaN
or no objective is a failed (or ``MetricsUnavailable``) trial of the experiment, with its
reason, and the tuning goes on within ``maxFailedTrialCount``. What a trial cannot be
handed — an input artifact — is refused when the pipeline is built. Running the pipeline
again continues the same experiment, and once it is done a run costs a few steps and hands
the stored best downstream. An algorithm that needs synchronous rounds (hyperband), or
``settings.synchronous``, runs in the same lanes: a round's trials are claimable once the
round before it ended (a barrier through the store).
"""

# No `from __future__ import annotations`: KFP reads the pipeline functions' annotations.
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from google.protobuf import json_format

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.compat import defining_a_pipeline, holds_pipeline_channel
from hpo_kfp.component_trial import trial_experiment
from hpo_kfp.errors import BuildError, HpoKfpError
from hpo_kfp.history import TrialRecord
from hpo_kfp.pipeline.components import RUNTIME_IMAGE
from hpo_kfp.pipeline.generated import best_op, identifier, trial_component_op
from hpo_kfp.pipeline.lanes import add_lanes
from hpo_kfp.pipeline.tasks import name_step, store_secret
from hpo_kfp.spec import Experiment, Parameter, load_experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.wire import TrialComponent

__all__ = ["tune"]


def tune(
    experiment: Union[str, Path, Mapping[str, Any], Experiment],
    trial: Any = None,
    *,
    trial_arguments: Optional[Mapping[str, Any]] = None,
    metrics_output: Optional[str] = None,
    settings: Optional[StepSettings] = None,
    base_image: str = RUNTIME_IMAGE,
) -> Any:
    """Adds hyperparameter tuning to the pipeline being defined; returns the ``best`` task.

    Args:
        experiment: A Katib Experiment: a YAML file, a mapping, or an
            :class:`~hpo_kfp.spec.Experiment` (e.g. from :func:`hpo_kfp.experiment`).
        trial: A KFP component to run per trial (one container: a pipeline cannot be one
            trial), or None to run the experiment's trial template.
        trial_arguments: Values (or pipeline channels) for the trial component's other input
            parameters; an input artifact cannot be handed to a trial.
        metrics_output: Which ``system.Metrics`` output holds the trial's metrics (the
            component's one, if given, must be it).
        settings: Runner, experiment store and namespace of the steps; the store is required
            (e.g. ``sqlite:////abs/path.sqlite`` locally, an SQL database on a cluster);
            ``store_secret`` names the Kubernetes Secret holding its password.
        base_image: The image hpo-kfp's own steps run in (an image with hpo-kfp and kfp, e.g.
            ``REGISTRY/hpo-kfp:0.1.0`` built from the repository's ``Dockerfile``).

    Raises:
        BuildError: Called outside a ``@dsl.pipeline`` function, the trial component does not
            fit the experiment or the runner (names the parameter or input), or no store is set.
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
            "spec.earlyStopping: a KFP-native trial reports its metrics only when it ends, so it "
            "cannot be stopped early; remove earlyStopping, or run the trials from a trialTemplate"
        )
    plan = _Plan(spec, trial, dict(trial_arguments or {}), metrics_output)
    options = settings or StepSettings()
    with store_secret(options.store_secret):
        return _add_tuning(spec, plan, options, base_image)


def _add_tuning(spec: Experiment, plan: "_Plan", options: StepSettings, base_image: str) -> Any:
    """Adds the loop and the ``best`` step of :func:`tune`; returns the ``best`` task."""
    if not options.store:
        raise BuildError(
            "settings.store: tune() must be given an experiment store (its lanes share their trials "
            "through it), e.g. StepSettings(store='sqlite:////abs/path/hpo.sqlite') for kfp.local or "
            "'postgresql://USER@HOST/DB' on a cluster, but got none"
        )
    synchronous = options.synchronous or get_algorithm(spec.algorithm.name).synchronous
    step_settings = replace(options, synchronous=synchronous).to_json()
    spec_text = json.dumps(spec.source, separators=(",", ":"))
    trial_component: Any = ""
    if plan.component is not None:
        _check_runner(options, spec, plan.component)
        trial_component = plan.component.to_json()
        if plan.channels:
            merged = trial_component_op(plan.channel_fields(), base_image)(
                trial_component_json=trial_component, **{identifier(n): v for n, v in plan.channels.items()}
            )
            name_step(merged, f"{spec.name}-trial-arguments")
            trial_component = merged.output
    finished = add_lanes(
        spec_text,
        step_settings,
        parallelism=spec.parallel_trial_count,
        base_image=base_image,
        trial_component=trial_component,
    )
    decision, history = finished.outputs["decision"], finished.outputs["history"]
    fields = [(f"best_{identifier(p.name)}", p.name, _python_type(p)) for p in spec.parameters]
    best = best_op(fields, base_image)(decided=decision, tuning_history=history)
    name_step(best, f"{spec.name}-best")
    return best


def _check_runner(options: StepSettings, spec: Experiment, component: TrialComponent) -> None:
    """Refuses, while the pipeline is built, a component trial the settings' runner cannot run."""
    sample = {p.name: (p.values[0] if p.values else p.min) for p in spec.parameters}
    trial = TrialRecord(name=f"{spec.name}-check", number=0, parameters=sample)
    try:
        options.trial_runner().check(trial_experiment(spec, component, trial, run_id="check"))
    except HpoKfpError as error:
        raise BuildError(f"trial: component {component.name!r} cannot run as a trial: {error}") from None


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


_PYTHON_TYPES = {
    "Float": "float",
    "Integer": "int",
    "String": "str",
    "Boolean": "bool",
    "List": "list",
    "Dict": "dict",
}
"""A KFP input or output parameter's type -> the Python type of a component input taking it;
any other type is an artifact's."""


class _Plan:
    """The trial of a tune() call, checked once when tune() is called: the component as a
    trial (its constant arguments in it) and the arguments that are pipeline channels."""

    def __init__(
        self, experiment: Experiment, trial: Any, arguments: Dict[str, Any], metrics_output: Optional[str]
    ) -> None:
        self.experiment = experiment
        self.arguments = arguments
        self.component: Optional[TrialComponent] = None
        self.channels: Dict[str, Any] = {}
        self.input_types: Dict[str, str] = {}
        if trial is not None:
            self.component = self._component(trial, metrics_output)
        elif arguments:
            raise BuildError("trial_arguments: only a KFP component trial takes arguments")

    def _component(self, trial: Any, metrics_output: Optional[str]) -> TrialComponent:
        spec = getattr(trial, "component_spec", None)
        if spec is None:
            raise BuildError(f"trial: must be a KFP component, but got {type(trial).__name__}")
        name = spec.name
        container = spec.implementation.container
        if container is None:
            raise BuildError(
                f"trial: {name!r} is a pipeline, but a trial runs one container (a process locally, a "
                "Job on a cluster); pass the component that trains (@dsl.component or "
                "@dsl.container_component)"
            )
        inputs = dict(spec.inputs or {})
        self._check_parameters(name, inputs)
        chosen = _metrics_output(spec, metrics_output)
        outputs = dict(spec.outputs or {})
        compiled = _compiled_container(trial)
        return TrialComponent(
            name=name,
            image=str(compiled["image"]),
            command=[*compiled.get("command", ()), *compiled.get("args", ())],
            arguments=self._constants(name, inputs),
            outputs=[n for n, o in outputs.items() if o.type in _PYTHON_TYPES],
            artifacts={
                n: list(_artifact_type(o.type)) for n, o in outputs.items() if o.type not in _PYTHON_TYPES
            },
            metrics_output=chosen,
        )

    def _check_parameters(self, name: str, inputs: Dict[str, Any]) -> None:
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

    def _constants(self, name: str, inputs: Dict[str, Any]) -> Dict[str, Any]:
        """The values of the inputs that are not hyperparameters and not pipeline channels
        (given, or their defaults); the channels go to :attr:`channels`.

        Raises:
            BuildError: An input artifact that is given or required, or a required input
                parameter that is not given.
        """
        hyper = {p.name for p in self.experiment.parameters}
        constants: Dict[str, Any] = {}
        for input_name, input_spec in inputs.items():
            if input_name in hyper:
                continue
            if input_spec.type not in _PYTHON_TYPES:
                if input_name in self.arguments or not input_spec.optional:
                    raise BuildError(
                        f"trial_arguments: input {input_name!r} of trial component {name!r} is an artifact "
                        f"({input_spec.type}), which a trial's process or pod cannot be handed; make it a "
                        "str input and pass a location every trial can read (a bucket path, a volume path)"
                    )
                continue
            self.input_types[input_name] = input_spec.type
            if input_name in self.arguments:
                value = self.arguments[input_name]
                if holds_pipeline_channel(value):
                    self.channels[input_name] = value
                else:
                    constants[input_name] = value
            elif input_spec.default is not None:
                constants[input_name] = input_spec.default
            elif not input_spec.optional:
                raise BuildError(
                    f"trial_arguments: input {input_name!r} of trial component {name!r} needs a value"
                )
        return constants

    def channel_fields(self) -> List[Tuple[str, str, str]]:
        """``(identifier, input name, Python type)`` of each argument that is a pipeline channel."""
        return [(identifier(n), n, _PYTHON_TYPES[self.input_types[n]]) for n in self.channels]


def _metrics_output(spec: Any, requested: Optional[str]) -> str:
    """The ``system.Metrics`` output to read a trial's metrics from when the component has
    several ("" when it has one, or reports through its float return value)."""
    outputs = dict(spec.outputs or {})
    metrics = [n for n, o in outputs.items() if str(o.type).startswith("system.Metrics")]
    if requested is not None:
        if requested not in metrics:
            raise BuildError(
                f"metrics_output: trial component {spec.name!r} must have a system.Metrics output "
                f"named {requested!r}, but its Metrics outputs are {metrics}"
            )
        return requested if len(metrics) > 1 else ""
    if len(metrics) > 1:
        raise BuildError(
            f"metrics_output: must name one of trial component {spec.name!r}'s Metrics outputs {metrics}"
        )
    if metrics or ("Output" in outputs and outputs["Output"].type == "Float"):
        return ""
    raise BuildError(
        f"trial: component {spec.name!r} must report its metrics, through an Output[Metrics] "
        "or a float return value, but has neither"
    )


def _compiled_container(component: Any) -> Dict[str, Any]:
    """The component's container as KFP compiles it (``deploymentSpec`` of its IR): image,
    command and args, the placeholders as KFP's launcher reads them."""
    compiled = json_format.MessageToDict(component.pipeline_spec)
    [executor] = compiled["deploymentSpec"]["executors"].values()
    return dict(executor["container"])


def _artifact_type(type_name: str) -> Tuple[str, str]:
    """``system.Metrics@0.0.1`` -> (``system.Metrics``, ``0.0.1``)."""
    title, _, version = type_name.partition("@")
    return title, version or "0.0.1"


def _accepted_types(parameter: Parameter) -> Tuple[str, ...]:
    kind = _python_type(parameter)
    return {"int": ("Integer",), "float": ("Float",), "str": ("String",)}[kind]

"""How big a compiled pipeline becomes as an Argo Workflow on a KFP cluster, and how deep.

A KFP 2.x backend turns the pipeline IR into an Argo ``Workflow``; Argo v4.0.5 refuses one
whose JSON is over 1 MiB (``workflow/packer/packer.go``, ``MAX_WORKFLOW_SIZE``: over it, only
``status.nodes`` is gzipped and base64-encoded, and the Workflow is refused if it is still
over) and templates nested 100 deep (``controller.go``, ``maxAllowedStackDepth``). The
Workflow grows while the run goes on: every node stores its resolved inputs
(``operator.go``, ``initializeExecutableNode``); each KFP container task's pod-spec-patch
(which holds the whole executor input, so every parameter value the task receives) is stored
three times (the driver's output, the executor DAG's input, the executor pod's input), and
KFP's default retry strategy wraps every pod and DAG node in a retry node that repeats its
inputs. The IR's own size is a poor proxy: the Argo spec is ~4x the compacted IR.

This module re-does in Python what KFP backend 2.17.0's argocompiler
(``backend/src/v2/compiler/argocompiler/{argo,dag,container}.go``) and driver
(``backend/src/v2/driver/driver.go``) put into the Workflow (:func:`argo_spec`), and builds
the node status of a finished run by walking the IR generically (:func:`estimate_run`):
nested sub-DAGs, conditions, ``ParallelFor`` loops (nested too), ``dsl.Collected`` fan-in
and container tasks. It is the project's own version of ``shared/tools/argo_size`` (whose
run walk knows only the flat round shape by task names); for the flat shape the two agree
within a few per cent. Accuracy against a real cluster: about ±40 % (the mechanisms were read
in those sources, the figures were not measured on a cluster).

The run it sizes is the worst case a run can reach: every task runs, the sub-DAG of every
condition runs (both branches of an ``If``/``Else``), and each loop runs the number of
iterations it is given. Parameter values come from :class:`Values`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from hpo_kfp.errors import BuildError, PipelineTooLarge
from hpo_kfp.history import TrialRecord, TrialRun
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.wire import RecordedTrial, RunResult, TrialItem

__all__ = [
    "ARGO_MAX_DEPTH",
    "ARGO_MAX_WORKFLOW_BYTES",
    "BUDGET_DEPTH",
    "BUDGET_END_BYTES",
    "LARGE_SPEC_BYTES",
    "MAX_ARGUMENT_BYTES",
    "ArgoEstimate",
    "Values",
    "argo_spec",
    "check_fits",
    "default_values",
    "estimate_run",
    "load_ir",
    "loop_names",
    "run_status",
    "template_depth",
    "workflow_size",
]

ARGO_MAX_WORKFLOW_BYTES: Final = 1024 * 1024
"""Argo's ``MAX_WORKFLOW_SIZE`` default: a larger Workflow (after gzipping the node status) is refused."""
ARGO_MAX_DEPTH: Final = 100
"""Argo's ``maxAllowedStackDepth``: a template nested this deep fails the run."""
MAX_ARGUMENT_BYTES: Final = 128 * 1024
"""Linux's ``MAX_ARG_STRLEN``: one command-line argument of a driver or launcher pod may not be longer."""
BUDGET_END_BYTES: Final = 700 * 1024
"""The project's budget for the Workflow at the end of a full run (issue 15), leaving room for
the ±40 % of the estimate under Argo's 1 MiB."""
BUDGET_DEPTH: Final = 60
"""The project's budget for template depth: a pipeline must stay below it whatever the trial count."""
LARGE_SPEC_BYTES: Final = 4400
"""A PyTorchJob-sized experiment spec, the size the budget is stated for (issue 15)."""

_WORKFLOW: Final = "hpo-sklearn-digits-x7k2p"
_IMAGE: Final = "registry.example.com/hpo-kfp:0.1.0"
_DRIVER_IMAGE: Final = "ghcr.io/kubeflow/kfp-driver:2.17.0"
_LAUNCHER_IMAGE: Final = "ghcr.io/kubeflow/kfp-launcher:2.17.0"
_RUN_ID: Final = "5f0c6a8e-3b1d-4c2a-9e7f-1a2b3c4d5e6f"
_ARTIFACTS: Final = f"minio://mlpipeline/v2/artifacts/hpo-sklearn-digits/{_RUN_ID}"
_STARTED: Final = "2026-12-01T15:55:53Z"
_FINISHED: Final = "2026-12-01T15:56:03Z"
_DEFAULT_TEXT: Final = "x" * 64
_PLACEHOLDERS: Final = {
    "{{$.pipeline_job_uuid}}": _RUN_ID,
    "{{$.pipeline_job_name}}": _WORKFLOW,
    "{{$.pipeline_job_resource_name}}": _WORKFLOW,
    "{{$.pipeline_task_uuid}}": "1234",
}


# ---------------------------------------------------------------------------------------------
# Parameter values


_FIELD_OF_NAME: Final = {
    "spec": "spec",
    "settings": "settings",
    "trial": "trial",
    "item": "trial",
    "result": "result",
    "record": "record",
    "records": "record",
    "results": "record",
    "run_id": "run_id",
}
"""Which :class:`Values` field a task input of this name receives (an element of it, for a list)."""


@dataclass(frozen=True, kw_only=True)
class Values:
    """Representative values of the parameters a run's tasks receive, by input name.

    A container task's input receives: the run's value when it comes from a pipeline input
    (``spec``, ``settings``); otherwise (an output of another task, a loop item) the value named
    after the receiving input: ``trial``/``item`` a trial item, ``result`` a run_trial result,
    ``results``/``records``/``record`` a trial record, ``run_id`` the run's id, anything in
    :attr:`overrides` its value there, anything else :attr:`default`. A list input fed by
    ``dsl.Collected`` holds one such value per iteration of the loop it collects.
    """

    spec: str
    """The Experiment as the ``spec`` pipeline parameter holds it (one line of JSON)."""
    settings: str
    """The ``settings`` parameter (:class:`~hpo_kfp.steps.settings.StepSettings` as JSON)."""
    trial: str
    """A trial item as suggest hands it to a loop iteration."""
    result: str
    """A run_trial result as collect_metrics receives it."""
    record: str
    """A finished trial's record, as decide receives one per trial."""
    run_id: str = _RUN_ID
    """The run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``)."""
    default: str = _DEFAULT_TEXT
    """The value of a string input of any other name."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Values by input name, over every rule above (a pipeline input's run value too)."""

    @classmethod
    def for_experiment(
        cls,
        experiment: Experiment | Mapping[str, Any] | str,
        *,
        settings: StepSettings | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Values:
        """Values of a run of ``experiment``, written with the project's own wire format.

        Args:
            experiment: The experiment (validated, or a document or YAML text to validate).
            settings: The steps' settings (default: a cluster's, trials as Kubernetes objects).
            overrides: Values by input name (see :attr:`overrides`).

        Raises:
            SpecError: The experiment breaks a rule.
        """
        parsed = experiment if isinstance(experiment, Experiment) else parse_experiment(experiment)
        step_settings = settings or StepSettings(
            runner="kubernetes", store="grpc://metadata-grpc-service.kubeflow:8080"
        )
        item = TrialItem(name=f"{parsed.name}-0003", number=3, parameters=_assignment(parsed))
        run = TrialRun(
            name=item.name,
            exit_code=0,
            started="2026-12-01T15:55:53.448711+00:00",
            finished="2026-12-01T15:56:02.624431+00:00",
            reason="",
        )
        metrics = {
            name: 0.9527346187 for name in (parsed.objective.metric, *parsed.objective.additional_metrics)
        }
        record = TrialRecord(
            name=item.name,
            number=item.number,
            parameters=dict(item.parameters),
            status="Succeeded",
            values=(metrics[parsed.objective.metric],),
            metrics=metrics,
            series={name: [(None, value)] for name, value in metrics.items()},
            started=run.started,
            finished=run.finished,
        )
        return cls(
            spec=json.dumps(parsed.source, separators=(",", ":")),
            settings=step_settings.to_json(),
            trial=item.to_json(),
            result=RunResult(trial=item, run=run).to_json(),
            record=RecordedTrial(record=record).to_json(),
            overrides=dict(overrides or {}),
        )

    def value(self, name: str, parameter_type: str) -> Any:
        """The value an input ``name`` of IR type ``parameter_type`` receives from another task."""
        if name in self.overrides:
            return self.overrides[name]
        if parameter_type == "BOOLEAN":
            return False
        if parameter_type == "NUMBER_INTEGER":
            return 1234
        if parameter_type == "NUMBER_DOUBLE":
            return 0.012507063143
        text = getattr(self, _FIELD_OF_NAME[name]) if name in _FIELD_OF_NAME else self.default
        if parameter_type == "LIST":
            return [text]
        if parameter_type == "STRUCT":
            return {"value": text}
        return text

    def element(self, name: str) -> Any:
        """One element of a list input ``name`` fed by ``dsl.Collected``."""
        if name in self.overrides:
            given = self.overrides[name]
            return given[0] if isinstance(given, list) and given else given
        return getattr(self, _FIELD_OF_NAME[name]) if name in _FIELD_OF_NAME else self.default

    def given(self, name: str, definition: Mapping[str, Any]) -> Any:
        """The run's value of pipeline input ``name`` (declared by ``definition`` in the IR)."""
        if name in self.overrides or name in _FIELD_OF_NAME:
            return self.value(name, definition.get("parameterType", "STRING"))
        if "defaultValue" in definition:
            return definition["defaultValue"]
        return self.value(name, definition.get("parameterType", "STRING"))


def _assignment(experiment: Experiment) -> dict[str, Any]:
    """A plausible assignment: full-precision floats, as a sampler writes them."""
    doubles = iter((5.803664067833106, 0.01250706314400357, 0.3074165190863412, 71.25903187468025))
    chosen: dict[str, Any] = {}
    for parameter in experiment.parameters:
        if parameter.type == "double":
            chosen[parameter.name] = next(doubles, 0.5108318734150284)
        elif parameter.type == "int":
            chosen[parameter.name] = 3
        else:
            chosen[parameter.name] = parameter.values[0]
    return chosen


_SKLEARN_DIGITS: Final[dict[str, Any]] = {
    "apiVersion": "kubeflow.org/v1beta1",
    "kind": "Experiment",
    "metadata": {"name": "sklearn-digits"},
    "spec": {
        "objective": {
            "type": "maximize",
            "goal": 0.975,
            "objectiveMetricName": "accuracy",
            "additionalMetricNames": ["error-rate"],
        },
        "algorithm": {
            "algorithmName": "tpe",
            "algorithmSettings": [{"name": "n_startup_trials", "value": "6"}],
        },
        "parallelTrialCount": 3,
        "maxTrialCount": 18,
        "maxFailedTrialCount": 3,
        "parameters": [
            {
                "name": "C",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.1", "max": "100", "distribution": "logUniform"},
            },
            {
                "name": "gamma",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.0001", "max": "1", "distribution": "logUniform"},
            },
            {
                "name": "kernel",
                "parameterType": "categorical",
                "feasibleSpace": {"list": ["rbf", "poly", "sigmoid"]},
            },
        ],
        "trialTemplate": {
            "primaryContainerName": "training-container",
            "trialParameters": [
                {"name": "C", "description": "Regularisation strength", "reference": "C"},
                {"name": "gamma", "description": "Kernel coefficient", "reference": "gamma"},
                {"name": "kernel", "description": "Kernel type", "reference": "kernel"},
            ],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "activeDeadlineSeconds": 300,
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "training-container",
                                    "image": "hpo-kfp:latest",
                                    "workingDir": "/opt/hpo-kfp/examples/sklearn-digits",
                                    "command": [
                                        "python3",
                                        "train.py",
                                        "--C=${trialParameters.C}",
                                        "--gamma=${trialParameters.gamma}",
                                        "--kernel=${trialParameters.kernel}",
                                    ],
                                }
                            ],
                            "restartPolicy": "Never",
                        }
                    },
                },
            },
        },
    },
}
"""``examples/sklearn-digits/experiment.yaml`` (1.4 KB as one line of JSON)."""


def default_values(spec_bytes: int | None = None) -> Values:
    """Values of the sklearn-digits example; with ``spec_bytes``, its trial container gets
    environment variables until the spec is about that long (e.g. :data:`LARGE_SPEC_BYTES`,
    the size of a PyTorchJob's spec), as ``shared/tools/argo_size/values4k.json`` does."""
    document = json.loads(json.dumps(_SKLEARN_DIGITS))
    if spec_bytes is not None:
        container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][
            0
        ]
        env: list[dict[str, str]] = container.setdefault("env", [])
        while len(json.dumps(document, separators=(",", ":"))) < spec_bytes:
            env.append(
                {
                    "name": f"ENV_VAR_{len(env)}",
                    "value": f"some-reasonably-long-configuration-value-{len(env)}",
                }
            )
    return Values.for_experiment(document)


# ---------------------------------------------------------------------------------------------
# The Workflow spec


def _gojson(value: Any) -> str:
    """Go's ``json.Marshal``: compact, keys sorted, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def load_ir(path: str | Path) -> dict[str, Any]:
    """The pipeline IR of a compiled pipeline YAML (its first document)."""
    # libyaml's loader when PyYAML has it: a 100-round pipeline loads in 0.3 s instead of 4 s.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as stream:
        document = next(yaml.load_all(stream, Loader=loader))
    if not isinstance(document, dict):
        raise BuildError(f"{path}: must be a compiled KFP pipeline, but got {type(document).__name__}")
    return document


def loop_names(ir: Mapping[str, Any]) -> list[str]:
    """The IR task names of the pipeline's ``ParallelFor`` loops (the keys of the iteration
    counts :func:`estimate_run` takes), outer loops first. KFP numbers loops across the whole
    pipeline, so the first loop is not always ``for-loop-1``."""
    names: list[str] = []
    pending = [ir["root"]]
    while pending:
        tasks = pending.pop(0).get("dag", {}).get("tasks", {})
        for name in sorted(tasks):
            if _is_loop(tasks[name]) and name not in names:
                names.append(name)
            pending.append(ir["components"][tasks[name]["componentRef"]["name"]])
    return names


def _is_loop(task: Mapping[str, Any]) -> bool:
    return "parameterIterator" in task or "artifactIterator" in task


def _executor(ir: Mapping[str, Any], component: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = ir["deploymentSpec"]["executors"][component["executorLabel"]]
    return spec.get("container") or spec


class _Compiler:
    """The argocompiler of KFP 2.17.0, reduced to what sizes and nests the Workflow."""

    def __init__(self, ir: Mapping[str, Any], runtime: Mapping[str, Any]) -> None:
        self.ir = ir
        self.components: Mapping[str, Any] = ir["components"]
        self.arguments: dict[str, str] = {}
        """``spec.arguments.parameters``: each component and container once, by hash."""
        self.templates: dict[str, dict[str, Any]] = {}
        self.runtime = runtime

    def key(self, name: str) -> str:
        """The argument suffix of a component: its container's hash, or its name for a DAG."""
        if name == "root" or "executorLabel" not in self.components[name]:
            return name
        return hashlib.sha256(_gojson(_executor(self.ir, self.components[name])).encode()).hexdigest()

    def save(self, prefix: str, name: str, value: Any) -> str:
        key = prefix + self.key(name)
        self.arguments.setdefault(key, _gojson(value))
        return _workflow_parameter(key)

    def compile(self) -> dict[str, Any]:
        root = {
            key: self.ir["root"][key]
            for key in ("inputDefinitions", "outputDefinitions", "dag")
            if key in self.ir["root"]
        }
        visited: set[str] = set()

        def visit(name: str, component: Mapping[str, Any]) -> None:
            if name in visited:
                return
            visited.add(name)
            if "executorLabel" in component:
                self.save("components-", name, component)
                self.save("implementations-", name, _executor(self.ir, component))
                return
            for task_name in sorted(component["dag"]["tasks"]):
                reference = component["dag"]["tasks"][task_name]["componentRef"]["name"]
                visit(reference, self.components[reference])
            self.save("components-", name, component)
            self.dag(name, component)

        visit("root", root)
        self.templates["entrypoint"] = {
            "name": "entrypoint",
            "dag": {
                "tasks": [
                    _task(
                        "root-driver",
                        "system-dag-driver",
                        component="{{workflow.parameters.components-root}}",
                        **{
                            "runtime-config": _gojson({"parameterValues": dict(self.runtime)}),
                            "driver-type": "ROOT_DAG",
                        },
                    ),
                    _task(
                        "root",
                        "root",
                        depends="root-driver.Succeeded",
                        **{
                            "parent-dag-id": "{{tasks.root-driver.outputs.parameters.execution-id}}",
                            "condition": "",
                        },
                    ),
                ]
            },
        }
        self.templates.update(_system_templates())
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "generateName": self.ir.get("pipelineInfo", {}).get("name", "pipeline") + "-",
                "name": _WORKFLOW,
                "namespace": "kubeflow",
                "uid": "0b9c6f1e-7d2a-4e3b-8c5d-9f0a1b2c3d4e",
                "labels": {
                    "pipeline/runid": _RUN_ID,
                    "workflows.argoproj.io/phase": "Succeeded",
                    "workflows.argoproj.io/completed": "true",
                },
            },
            "spec": {
                "arguments": {"parameters": [{"name": k, "value": v} for k, v in self.arguments.items()]},
                "entrypoint": "entrypoint",
                "serviceAccountName": "pipeline-runner",
                "podMetadata": {
                    "annotations": {"pipelines.kubeflow.org/v2_component": "true"},
                    "labels": {"pipelines.kubeflow.org/v2_component": "true"},
                },
                "templates": list(self.templates.values()),
            },
        }

    def add_template(self, name: str, template: dict[str, Any]) -> None:
        if name in self.templates:
            # argocompiler: "template name=...: template already exists" (two loops over one body).
            raise BuildError(f"KFP's argocompiler refuses this pipeline: template {name!r} already exists")
        self.templates[name] = template

    def dag(self, name: str, component: Mapping[str, Any]) -> None:
        tasks: list[dict[str, Any]] = []
        for task_name in sorted(component["dag"]["tasks"]):
            tasks += self.task(task_name, component["dag"]["tasks"][task_name], None)
        self.add_template(
            name,
            {"name": name, "inputs": {"parameters": [{"name": "parent-dag-id"}]}, "dag": {"tasks": tasks}},
        )

    def task(self, name: str, task: Mapping[str, Any], loop: str | None) -> list[dict[str, Any]]:
        """The Argo tasks of IR task ``name``; ``loop`` is the loop's name for an iteration's task."""
        reference = task["componentRef"]["name"]
        component = self.components[reference]
        depends = " && ".join(f"{d}.Succeeded" for d in task.get("dependentTasks", []))
        parent = "{{inputs.parameters.parent-dag-id}}"
        if loop is None and _is_loop(task):
            return self.iterator(name, task, depends)
        common: dict[str, str] = {"component": _workflow_parameter(f"components-{self.key(reference)}")}
        iteration = {"iteration-index": "{{inputs.parameters.iteration-index}}"} if loop else {}
        if "dag" in component:
            driver = _task(
                f"{name}-driver",
                "system-dag-driver",
                depends=None if loop else depends,
                **common,
                **iteration,
                **{"parent-dag-id": parent, "task": _gojson(task), "task-name": loop or name},
            )
            body = _task(
                name,
                reference,
                depends=f"{name}-driver.Succeeded",
                **{
                    "parent-dag-id": _driver_output(name, "execution-id"),
                    "condition": _driver_output(name, "condition"),
                },
            )
            if task.get("triggerPolicy", {}).get("condition"):
                body["when"] = _driver_output(name, "condition") + " != false"
            return [driver, body]
        driver = _task(
            f"{name}-driver",
            "system-container-driver",
            depends=None if loop else depends,
            **common,
            **{
                "task": _gojson(task),
                "container": _workflow_parameter(f"implementations-{self.key(reference)}"),
                "task-name": loop or name,
                "parent-dag-id": parent,
            },
            **iteration,
        )
        executor = _task(
            name,
            "system-container-executor",
            depends=f"{name}-driver.Succeeded",
            **{
                "pod-spec-patch": _driver_output(name, "pod-spec-patch"),
                "cached-decision": _driver_output(name, "cached-decision"),
            },
        )
        return [driver, executor]

    def iterator(self, name: str, task: Mapping[str, Any], depends: str) -> list[dict[str, Any]]:
        reference = task["componentRef"]["name"]
        iterations, loop = f"{reference}-iteration", f"{reference}-{name}-iterator"
        self.add_template(
            iterations,
            {
                "name": iterations,
                "inputs": {"parameters": [{"name": "parent-dag-id"}, {"name": "iteration-index"}]},
                "dag": {"tasks": self.task("iteration-item", task, name)},
            },
        )
        driver = _task(
            "iteration-driver",
            "system-dag-driver",
            **{
                "component": _workflow_parameter(f"components-{self.key(reference)}"),
                "parent-dag-id": "{{inputs.parameters.parent-dag-id}}",
                "task": _gojson(task),
                "task-name": name,
            },
        )
        each = _task(
            "iteration-iterations",
            iterations,
            depends="iteration-driver.Succeeded",
            **{
                "parent-dag-id": "{{tasks.iteration-driver.outputs.parameters.execution-id}}",
                "iteration-index": "{{item}}",
            },
        )
        each["withSequence"] = {"count": "{{tasks.iteration-driver.outputs.parameters.iteration-count}}"}
        self.add_template(
            loop,
            {
                "name": loop,
                "inputs": {"parameters": [{"name": "parent-dag-id"}]},
                "parallelism": task.get("iteratorPolicy", {}).get("parallelismLimit"),
                "dag": {"tasks": [driver, each]},
            },
        )
        return [
            _task(name, loop, depends=depends, **{"parent-dag-id": "{{inputs.parameters.parent-dag-id}}"})
        ]


def _workflow_parameter(key: str) -> str:
    return "{{workflow.parameters." + key + "}}"


def _driver_output(task: str, name: str) -> str:
    return "{{tasks." + task + "-driver.outputs.parameters." + name + "}}"


def _task(name: str, template: str, depends: str | None = None, **parameters: str) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": name,
        "template": template,
        "arguments": {"parameters": [{"name": k, "value": v} for k, v in parameters.items()]},
    }
    if depends:
        task["depends"] = depends
    return task


def _driver_args(kind: str) -> list[str]:
    args = ["--type", kind, "--pipeline_name", "hpo-x", "--run_id", "{{workflow.uid}}", "--run_name"]
    args += ["{{workflow.name}}", "--run_display_name", "", "--pipeline_job_create_time_utc"]
    args += ["{{workflow.creationTimestamp}}", "--dag_execution_id", "{{inputs.parameters.parent-dag-id}}"]
    args += ["--component", "{{inputs.parameters.component}}", "--task", "{{inputs.parameters.task}}"]
    if kind == "CONTAINER":
        args += [
            "--task_name",
            "{{inputs.parameters.task-name}}",
            "--container",
            "{{inputs.parameters.container}}",
        ]
        args += ["--iteration_index", "{{inputs.parameters.iteration-index}}"]
        args += ["--cached_decision_path", "{{outputs.parameters.cached-decision.path}}"]
        args += ["--pod_spec_patch_path", "{{outputs.parameters.pod-spec-patch.path}}"]
        args += ["--kubernetes_config", "{{inputs.parameters.kubernetes-config}}"]
    else:
        args += ["--runtime_config", "{{inputs.parameters.runtime-config}}"]
        args += ["--iteration_index", "{{inputs.parameters.iteration-index}}"]
        args += ["--execution_id_path", "{{outputs.parameters.execution-id.path}}"]
        args += ["--iteration_count_path", "{{outputs.parameters.iteration-count.path}}"]
    args += [
        "--condition_path",
        "{{outputs.parameters.condition.path}}",
        "--http_proxy",
        "",
        "--https_proxy",
        "",
    ]
    args += ["--no_proxy", "", "--ml_pipeline_server_address", "ml-pipeline.kubeflow"]
    args += ["--ml_pipeline_server_port", "8887", "--mlmd_server_address", "metadata-grpc-service.kubeflow"]
    return [*args, "--mlmd_server_port", "8080"]


def _system_templates() -> dict[str, dict[str, Any]]:
    """The four templates every KFP Workflow has (argocompiler's ``container.go``, ``dag.go``)."""
    resources = {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}}

    def outputs(*names: str) -> dict[str, Any]:
        return {"parameters": [{"name": n, "valueFrom": {"path": f"/tmp/outputs/{n}"}} for n in names]}

    def inputs(*names: str) -> dict[str, Any]:
        return {"parameters": [{"name": n} for n in names]}

    scratch = ["kfp-launcher", "gcs-scratch", "s3-scratch", "minio-scratch", "dot-local-scratch"]
    return {
        "system-container-driver": {
            "name": "system-container-driver",
            "inputs": inputs(
                "component", "task", "container", "parent-dag-id", "iteration-index", "kubernetes-config"
            ),
            "outputs": outputs("pod-spec-patch", "cached-decision", "condition"),
            "container": {
                "image": _DRIVER_IMAGE,
                "command": ["driver"],
                "args": _driver_args("CONTAINER"),
                "resources": resources,
            },
        },
        "system-container-executor": {
            "name": "system-container-executor",
            "inputs": inputs("pod-spec-patch", "cached-decision"),
            "dag": {
                "tasks": [
                    {
                        "name": "executor",
                        "template": "system-container-impl",
                        "arguments": {
                            "parameters": [
                                {"name": "pod-spec-patch", "value": "{{inputs.parameters.pod-spec-patch}}"}
                            ]
                        },
                        "when": "{{inputs.parameters.cached-decision}} != true",
                    }
                ]
            },
        },
        "system-container-impl": {
            "name": "system-container-impl",
            "inputs": inputs("pod-spec-patch"),
            "podSpecPatch": "{{inputs.parameters.pod-spec-patch}}",
            "container": {
                "image": "gcr.io/ml-pipeline/should-be-overridden-during-runtime",
                "command": ["should-be-overridden-during-runtime"],
                "volumeMounts": [{"mountPath": f"/{n}", "name": n} for n in scratch],
            },
            "initContainers": [
                {
                    "name": "kfp-launcher",
                    "image": _LAUNCHER_IMAGE,
                    "command": ["launcher-v2"],
                    "args": ["--copy", "/kfp-launcher/launch"],
                }
            ],
            "volumes": [{"name": n, "emptyDir": {}} for n in scratch],
        },
        "system-dag-driver": {
            "name": "system-dag-driver",
            "inputs": inputs(
                "component", "runtime-config", "task", "parent-dag-id", "iteration-index", "driver-type"
            ),
            "outputs": outputs("execution-id", "iteration-count", "condition"),
            "container": {
                "image": _DRIVER_IMAGE,
                "command": ["driver"],
                "args": _driver_args("{{inputs.parameters.driver-type}}"),
                "resources": resources,
            },
        },
    }


def argo_spec(ir: Mapping[str, Any], runtime: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Workflow (without status) KFP 2.17's argocompiler makes from a compiled pipeline IR.

    Args:
        ir: The pipeline IR (a compiled pipeline YAML's first document; see :func:`load_ir`).
        runtime: The run's pipeline parameter values, which the root driver receives in its
            ``runtime-config`` (default: the IR's defaults).

    Raises:
        BuildError: The argocompiler would refuse the IR (two loops over one body).
    """
    if runtime is None:
        definitions = ir["root"].get("inputDefinitions", {}).get("parameters", {})
        runtime = {name: d.get("defaultValue") for name, d in definitions.items()}
    return _Compiler(ir, runtime).compile()


def workflow_size(workflow: Mapping[str, Any]) -> int:
    """The bytes of a Workflow's JSON as Argo's packer measures it (Go's ``json.Marshal``)."""
    return len(_gojson(workflow))


def template_depth(ir: Mapping[str, Any]) -> int:
    """The deepest template nesting of the pipeline's Workflow as Argo counts it (the
    entrypoint is 1, each DAG task's template one more); Argo fails a run at :data:`ARGO_MAX_DEPTH`."""
    return _depth(argo_spec(ir))


def _depth(workflow: Mapping[str, Any]) -> int:
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    known: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in known:
            tasks = (templates[name].get("dag") or {}).get("tasks", [])
            known[name] = 1 + max((depth(t["template"]) for t in tasks), default=0)
        return known[name]

    return depth("entrypoint")


# ---------------------------------------------------------------------------------------------
# The node status at the end of a run


@dataclass(frozen=True)
class _Given:
    """A value known before the run: a pipeline input, a constant, an input's default."""

    value: Any


@dataclass(frozen=True)
class _Produced:
    """An output of a task; ``counts`` nests it in lists, one per collecting loop (outermost first)."""

    counts: tuple[int, ...] = ()


_Source = _Given | _Produced


class _Walk:
    """Builds the node status of a finished run of one IR."""

    def __init__(
        self,
        ir: Mapping[str, Any],
        arguments: Mapping[str, str],
        values: Values,
        iterations: Mapping[str, int],
        default_iterations: int,
        retry: bool,
    ) -> None:
        self.ir = ir
        self.components: Mapping[str, Any] = ir["components"]
        self.arguments = arguments
        self.values = values
        self.iterations = iterations
        self.default_iterations = default_iterations
        self.retry = retry
        self.nodes: dict[str, dict[str, Any]] = {}
        self.serial = 0
        self.largest_argument = max((len(v) for v in arguments.values()), default=0)
        self.random = random.Random(15)  # fixed: the same IR gives the same estimate
        self.key = _Compiler(ir, {}).key

    # -- nodes ---------------------------------------------------------------------------------

    def node(
        self,
        parent: dict[str, Any] | None,
        name: str,
        kind: str,
        template: str,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        pod: bool = False,
    ) -> dict[str, Any]:
        """Adds a node (wrapped in a retry node if asked) under ``parent``; returns the node
        the template's children hang under."""
        if self.retry and kind in ("Pod", "DAG") and parent is not None:
            wrapper = self._make(parent, name, "Retry", template, inputs, outputs if pod else None, False)
            return self._make(wrapper, f"{name}(0)", kind, template, inputs, outputs, pod)
        return self._make(parent, name, kind, template, inputs, outputs, pod)

    def _make(
        self,
        parent: dict[str, Any] | None,
        name: str,
        kind: str,
        template: str,
        inputs: Mapping[str, str] | None,
        outputs: Mapping[str, str] | None,
        pod: bool,
    ) -> dict[str, Any]:
        self.serial += 1
        identifier = f"{_WORKFLOW}-{1000000000 + self.serial * 7919}"
        node: dict[str, Any] = {
            "id": identifier,
            "name": f"{_WORKFLOW}.{name}" if parent is not None else _WORKFLOW,
            "displayName": name.rsplit(".", 1)[-1],
            "type": kind,
            "templateName": template,
            "templateScope": f"local/{_WORKFLOW}",
            "phase": "Succeeded",
            "boundaryID": f"{_WORKFLOW}-1234567890",
            "startedAt": _STARTED,
            "finishedAt": _FINISHED,
            "progress": "1/1",
            "resourcesDuration": {"cpu": 2, "memory": 25},
            "children": [],
        }
        if inputs:
            node["inputs"] = {"parameters": [{"name": k, "value": v} for k, v in inputs.items()]}
        out: dict[str, Any] = {}
        if outputs:
            out["parameters"] = [{"name": k, "value": v} for k, v in outputs.items()]
        if pod:
            log = f"private-artifacts/kubeflow/{_WORKFLOW}/2026/12/01/{template}-{self.serial}/main.log"
            out["artifacts"] = [{"name": "main-logs", "s3": {"key": log}}]
            out["exitCode"] = "0"
            node["hostNodeName"] = "ip-10-0-12-34.eu-west-1.compute.internal"
            node["taskResultSynced"] = True
        if out:
            node["outputs"] = out
        if parent is not None:
            parent["children"].append(identifier)
        self.nodes[identifier] = node
        return node

    def dag_driver(
        self, parent: dict[str, Any], name: str, component: str, extra: Mapping[str, str], count: int = 0
    ) -> None:
        inputs = {
            "component": self.arguments[f"components-{self.key(component)}"],
            "runtime-config": "",
            "task": "",
            "parent-dag-id": "4321",
            "iteration-index": "-1",
            "driver-type": "DAG",
            **extra,
        }
        outputs = {"execution-id": "4567", "iteration-count": str(count), "condition": "true"}
        self.node(parent, name, "Pod", "system-dag-driver", inputs, outputs, pod=True)

    # -- the walk ------------------------------------------------------------------------------

    def count(self, name: str, task: Mapping[str, Any]) -> int:
        """Iterations of loop task ``name``: as asked, else its literal list's length, else the default."""
        if name in self.iterations:
            return self.iterations[name]
        raw = task.get("parameterIterator", {}).get("items", {}).get("raw")
        if raw is not None:
            listed = json.loads(raw) if isinstance(raw, str) else raw
            if isinstance(listed, list):
                return len(listed)
        return self.default_iterations

    def run(self, runtime: Mapping[str, Any]) -> None:
        top = self._make(None, "", "DAG", "entrypoint", None, None, False)
        self.dag_driver(
            top,
            "root-driver",
            "root",
            {"runtime-config": _gojson({"parameterValues": dict(runtime)}), "driver-type": "ROOT_DAG"},
        )
        root = self.node(top, "root", "DAG", "root", {"parent-dag-id": "4321", "condition": ""})
        scope: dict[str, _Source] = {name: _Given(value) for name, value in runtime.items()}
        self.dag(root, "root", self.ir["root"], scope)

    def dag(
        self, parent: dict[str, Any], path: str, component: Mapping[str, Any], scope: Mapping[str, _Source]
    ) -> None:
        tasks: Mapping[str, Any] = component["dag"]["tasks"]
        for name in sorted(tasks):
            task = tasks[name]
            if _is_loop(task):
                self.loop(parent, f"{path}.{name}", name, task, tasks, scope)
            else:
                self.task(parent, f"{path}.{name}", name, task, tasks, scope, None)

    def task(
        self,
        parent: dict[str, Any],
        path: str,
        name: str,
        task: Mapping[str, Any],
        siblings: Mapping[str, Any],
        scope: Mapping[str, _Source],
        iteration: tuple[int, str, _Source] | None,
    ) -> None:
        """One IR task at node path ``path``; ``iteration`` is (index, item input, items) inside a loop."""
        reference = task["componentRef"]["name"]
        component = self.components[reference]
        bound = self.bind(task, siblings, scope)
        extra = {"iteration-index": str(iteration[0])} if iteration else {}
        if "dag" in component:
            if iteration:
                _, item_input, items = iteration
                bound[item_input] = _item(items)
            self.dag_driver(
                parent, f"{path}-driver", reference, {"task": _gojson(task), "task-name": name, **extra}
            )
            body = self.node(parent, path, "DAG", reference, {"parent-dag-id": "4567", "condition": "true"})
            self.dag(body, path, component, bound)
        else:
            self.container(parent, path, name, task, component, bound)

    def loop(
        self,
        parent: dict[str, Any],
        path: str,
        name: str,
        task: Mapping[str, Any],
        siblings: Mapping[str, Any],
        scope: Mapping[str, _Source],
    ) -> None:
        reference = task["componentRef"]["name"]
        count = self.count(name, task)
        loop = self.node(parent, path, "DAG", f"{reference}-{name}-iterator", {"parent-dag-id": "4321"})
        self.dag_driver(
            loop, f"{path}.iteration-driver", reference, {"task": _gojson(task), "task-name": name}, count
        )
        group = self._make(loop, f"{path}.iteration-iterations", "TaskGroup", "", None, None, False)
        iterator = task.get("parameterIterator") or task.get("artifactIterator") or {}
        items = iterator.get("items", {})
        bound = self.bind(task, siblings, scope)
        if "raw" in items:
            raw = json.loads(items["raw"]) if isinstance(items["raw"], str) else items["raw"]
            source: _Source = _Given(raw)
        else:
            source = bound.get(items.get("inputParameter", ""), _Produced())
        for index in range(count):
            base = f"{path}.iteration-iterations({index}:{index})"
            each = self.node(
                group,
                base,
                "DAG",
                f"{reference}-iteration",
                {"parent-dag-id": "4567", "iteration-index": str(index)},
            )
            self.task(
                each,
                f"{base}.iteration-item",
                name,
                task,
                siblings,
                scope,
                (index, iterator.get("itemInput", ""), source),
            )

    def bind(
        self, task: Mapping[str, Any], siblings: Mapping[str, Any], scope: Mapping[str, _Source]
    ) -> dict[str, _Source]:
        """Where each input parameter of ``task`` comes from."""
        bound: dict[str, _Source] = {}
        for name, spec in task.get("inputs", {}).get("parameters", {}).items():
            bound[name] = self.source(spec, siblings, scope)
        return bound

    def source(
        self, spec: Mapping[str, Any], siblings: Mapping[str, Any], scope: Mapping[str, _Source]
    ) -> _Source:
        if "componentInputParameter" in spec:
            return scope.get(spec["componentInputParameter"], _Produced())
        if "taskOutputParameter" in spec:
            output = spec["taskOutputParameter"]
            return self.output(siblings, output["producerTask"], output["outputParameterKey"])
        if "runtimeValue" in spec:
            constant = spec["runtimeValue"].get("constant")
            if isinstance(constant, str):
                for placeholder, value in _PLACEHOLDERS.items():
                    constant = constant.replace(placeholder, value)
            return _Given(constant)
        if "taskFinalStatus" in spec:
            producer = spec["taskFinalStatus"].get("producerTask", "")
            return _Given(
                {
                    "state": "SUCCEEDED",
                    "pipelineJobResourceName": _WORKFLOW,
                    "pipelineTaskName": producer,
                    "error": {},
                }
            )
        return _Produced()

    def output(self, tasks: Mapping[str, Any], producer: str, key: str) -> _Produced:
        """The shape of output ``key`` of task ``producer`` (a list per loop it passes through)."""
        task = tasks.get(producer)
        if task is None:
            return _Produced()
        component = self.components[task["componentRef"]["name"]]
        if "dag" not in component:
            return _Produced()
        inner = self.dag_output(component, key)
        if _is_loop(task):
            return _Produced((self.count(producer, task), *inner.counts))
        return inner

    def dag_output(self, component: Mapping[str, Any], key: str) -> _Produced:
        spec = component["dag"].get("outputs", {}).get("parameters", {}).get(key, {})
        selectors = spec.get("valueFromOneof", {}).get("parameterSelectors", [])
        chosen = spec.get("valueFromParameter") or (selectors[0] if selectors else None)
        if chosen is None:
            return _Produced()
        return self.output(component["dag"]["tasks"], chosen["producerSubtask"], chosen["outputParameterKey"])

    def resolve(self, name: str, source: _Source, parameter_type: str) -> Any:
        if isinstance(source, _Given):
            return source.value
        if not source.counts:
            return self.vary(self.values.value(name, parameter_type))
        element: Any = self.vary(self.values.element(name))
        for count in reversed(source.counts[1:]):
            element = [element] * count
        return [self.vary(element) for _ in range(source.counts[0])]

    def vary(self, value: Any) -> Any:
        """The value with its long digit runs redrawn: trials differ in their numbers, and
        identical copies would gzip better than a real run's node status does."""
        if isinstance(value, str):
            return re.sub(
                r"\d{4,}", lambda m: str(self.random.randrange(10 ** len(m[0]))).zfill(len(m[0])), value
            )
        if isinstance(value, list):
            return [self.vary(v) for v in value]
        return value

    def container(
        self,
        parent: dict[str, Any],
        path: str,
        name: str,
        task: Mapping[str, Any],
        component: Mapping[str, Any],
        bound: Mapping[str, _Source],
    ) -> None:
        definitions = component.get("inputDefinitions", {})
        parameters: dict[str, Any] = {}
        for input_name, definition in definitions.get("parameters", {}).items():
            parameter_type = definition.get("parameterType", "STRING")
            if input_name in bound:
                parameters[input_name] = self.resolve(input_name, bound[input_name], parameter_type)
            elif "defaultValue" in definition:
                parameters[input_name] = definition["defaultValue"]
        for input_name, source in bound.items():  # inputs the component does not declare still travel
            parameters.setdefault(input_name, self.resolve(input_name, source, "STRING"))
        artifacts = sorted(task.get("inputs", {}).get("artifacts", {}))
        executor_input = _gojson(self.executor_input(component, parameters, artifacts, name))
        component_spec = _gojson(component)
        self.largest_argument = max(self.largest_argument, len(executor_input), len(component_spec))
        patch = self.pod_spec_patch(_executor(self.ir, component), executor_input, component_spec)
        key = self.key(task["componentRef"]["name"])
        inputs = {
            "component": self.arguments[f"components-{key}"],
            "task": _gojson(task),
            "container": self.arguments[f"implementations-{key}"],
            "task-name": name,
            "parent-dag-id": "4321",
            "iteration-index": "-1",
            "kubernetes-config": "",
        }
        outputs = {"pod-spec-patch": patch, "cached-decision": "false", "condition": "true"}
        self.node(parent, f"{path}-driver", "Pod", "system-container-driver", inputs, outputs, pod=True)
        executor = self.node(
            parent,
            path,
            "DAG",
            "system-container-executor",
            {"pod-spec-patch": patch, "cached-decision": "false"},
        )
        self.node(
            executor, f"{path}.executor", "Pod", "system-container-impl", {"pod-spec-patch": patch}, pod=True
        )

    def artifact(self, name: str, title: str, task: str) -> dict[str, Any]:
        folder = f"{task}/{self.random.getrandbits(128):032x}"
        return {
            "name": name,
            "type": {"schemaTitle": title, "schemaVersion": "0.0.1"},
            "uri": f"{_ARTIFACTS}/{folder}/{name}",
        }

    def executor_input(
        self, component: Mapping[str, Any], parameters: Mapping[str, Any], artifacts: list[str], task: str
    ) -> dict[str, Any]:
        """The executor input the driver writes (``driver.go``): values, output paths, artifacts."""
        outputs = component.get("outputDefinitions", {})
        folder = f"{task}/{self.random.getrandbits(128):032x}"
        document: dict[str, Any] = {
            "inputs": {"parameterValues": dict(parameters)},
            "outputs": {
                "parameters": {
                    n: {"outputFile": f"/tmp/kfp/outputs/{n}"} for n in outputs.get("parameters", {})
                },
                "artifacts": {
                    n: {
                        "artifacts": [
                            self.artifact(n, a["artifactType"].get("schemaTitle", "system.Artifact"), task)
                        ]
                    }
                    for n, a in outputs.get("artifacts", {}).items()
                },
                "outputFile": f"{_ARTIFACTS.replace('minio://', '/minio/')}/{folder}/output_metadata.json",
            },
        }
        if artifacts:
            document["inputs"]["artifacts"] = {
                n: {"artifacts": [{**self.artifact(n, "system.Artifact", "producer"), "metadata": {}}]}
                for n in artifacts
            }
        return document

    def pod_spec_patch(self, container: Mapping[str, Any], executor_input: str, component_spec: str) -> str:
        """The driver's pod-spec-patch (``driver.go``): the launcher's command with the executor
        input and the component spec, the component's command and arguments."""
        args = [executor_input if a == "{{$}}" else a for a in container.get("args", [])]
        command = ["/kfp-launcher/launch", "--pipeline_name", "hpo-sklearn-digits", "--run_id", _RUN_ID]
        command += [
            "--execution_id",
            "1234",
            "--executor_input",
            executor_input,
            "--component_spec",
            component_spec,
        ]
        command += [
            "--pod_name",
            "$(KFP_POD_NAME)",
            "--pod_uid",
            "$(KFP_POD_UID)",
            "--ml_pipeline_server_address",
        ]
        command += ["ml-pipeline.kubeflow", "--ml_pipeline_server_port", "8887", "--mlmd_server_address"]
        command += [
            "metadata-grpc-service.kubeflow",
            "--mlmd_server_port",
            "8080",
            "--publish_logs",
            "true",
            "--",
        ]
        main = {
            "name": "main",
            "image": container.get("image", _IMAGE),
            "command": command,
            "args": [*container.get("command", []), *args],
            "resources": {},
        }
        return _gojson({"containers": [main]})


def _item(items: _Source) -> _Source:
    """The source of one loop item of ``items``."""
    if isinstance(items, _Given):
        listed = items.value
        if isinstance(listed, str):
            try:
                listed = json.loads(listed)
            except ValueError:
                return _Given(listed)
        if isinstance(listed, list) and listed:
            return _Given(max(listed, key=lambda v: len(_gojson(v))))
        return _Given(listed)
    return _Produced(items.counts[1:])


# ---------------------------------------------------------------------------------------------
# The estimate


@dataclass(frozen=True, kw_only=True)
class ArgoEstimate:
    """The Workflow of a pipeline run on a KFP 2.17 cluster, sized as Argo measures it."""

    spec_bytes: int
    """The Workflow as submitted, before any node runs (JSON bytes)."""
    end_bytes: int
    """The Workflow at the end of the run as Argo stores it: as is while it fits Argo's limit,
    otherwise with its node status gzipped and base64-encoded (``packer.go``)."""
    depth: int
    """The deepest template nesting (the entrypoint is 1)."""
    nodes: int
    """Nodes in the status at the end of the run (retry wrappers included)."""
    status_bytes: int
    """The node status's JSON bytes, uncompressed."""
    compressed_bytes: int
    """The Workflow at the end with its node status gzipped (whether Argo would or not)."""
    templates: int
    """Templates in the Workflow's spec."""
    largest_argument_bytes: int
    """The longest single argument a driver or launcher pod gets (a component or an executor input)."""

    def problems(self, budget: int = BUDGET_END_BYTES, *, max_depth: int = BUDGET_DEPTH) -> list[str]:
        """Each limit the Workflow breaks, one phrase each (empty when it fits)."""
        found = []
        # Argo stores the Workflow as it is up to its limit and gzips the node status past it
        # (``packer.go``), so the bound that decides is the gzipped one: an estimate of the
        # plain Workflow over the budget is still stored if Argo compresses it.
        if self.compressed_bytes > budget:
            found.append(
                f"the Workflow at the end of the run must be at most {budget / 1024:.0f} KiB with its node "
                f"status gzipped, but is estimated at {self.compressed_bytes / 1024:.0f} KiB "
                f"({self.nodes} nodes)"
            )
        if self.depth >= max_depth:
            found.append(f"templates must nest less than {max_depth} deep, but nest {self.depth} deep")
        if self.largest_argument_bytes > MAX_ARGUMENT_BYTES:
            found.append(
                f"a pod argument must be at most {MAX_ARGUMENT_BYTES // 1024} KiB (Linux's MAX_ARG_STRLEN), "
                f"but one is {self.largest_argument_bytes / 1024:.0f} KiB"
            )
        return found

    def fits(self, budget: int = BUDGET_END_BYTES, *, max_depth: int = BUDGET_DEPTH) -> bool:
        """Whether the run stays within ``budget`` bytes at its end, nests less than
        ``max_depth`` deep and passes no pod an argument over Linux's limit."""
        return not self.problems(budget, max_depth=max_depth)

    def describe(self) -> str:
        """One line: the figures against Argo's limits."""
        return (
            f"Argo Workflow: spec {self.spec_bytes / 1024:.0f} KiB, "
            f"{self.end_bytes / 1024:.0f} KiB at the end of the run "
            f"(limit {ARGO_MAX_WORKFLOW_BYTES // 1024} KiB; {self.nodes} nodes, "
            f"{self.status_bytes / 1024:.0f} KiB of node status before gzip), "
            f"template depth {self.depth} (limit {ARGO_MAX_DEPTH}), {self.templates} templates"
        )


def _run(
    ir: Mapping[str, Any],
    values: Values | None,
    iterations: Mapping[str, int] | None,
    default_iterations: int,
    retry: bool,
) -> tuple[dict[str, Any], _Walk]:
    chosen = values or default_values()
    definitions = ir["root"].get("inputDefinitions", {}).get("parameters", {})
    runtime = {name: chosen.given(name, d) for name, d in definitions.items()}
    workflow = argo_spec(ir, runtime)
    arguments = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    walk = _Walk(ir, arguments, chosen, iterations or {}, default_iterations, retry)
    walk.run(runtime)
    return workflow, walk


def run_status(
    ir: Mapping[str, Any],
    values: Values | None = None,
    iterations: Mapping[str, int] | None = None,
    *,
    default_iterations: int = 1,
    retry: bool = True,
) -> dict[str, dict[str, Any]]:
    """The Workflow's ``status.nodes`` at the end of a run, by node id, for the run
    :func:`estimate_run` sizes (same arguments)."""
    return _run(ir, values, iterations, default_iterations, retry)[1].nodes


def estimate_run(
    ir: Mapping[str, Any],
    values: Values | None = None,
    iterations: Mapping[str, int] | None = None,
    *,
    default_iterations: int = 1,
    retry: bool = True,
) -> ArgoEstimate:
    """Sizes the Workflow of a run of ``ir`` at its end, in the worst case the run can reach:
    every task runs, every condition's sub-DAG runs, each loop runs its number of iterations.

    Args:
        ir: The pipeline IR (see :func:`load_ir`).
        values: The parameter values the tasks receive (default: :func:`default_values`).
        iterations: Iterations of each ``ParallelFor`` by its IR task name (e.g.
            ``{"for-loop-1": 4}``); a loop inside another runs that many times in each
            iteration of the outer one.
        default_iterations: Iterations of a loop ``iterations`` does not name.
        retry: Whether KFP's default retry strategy wraps each pod and DAG node in a retry node.

    Raises:
        BuildError: KFP's argocompiler would refuse the IR.
    """
    workflow, walk = _run(ir, values, iterations, default_iterations, retry)
    spec_text = _gojson(workflow)
    status_text = _gojson(walk.nodes)
    pods = {k: True for k, v in walk.nodes.items() if v["type"] == "Pod"}
    status_common = {
        "phase": "Succeeded",
        "startedAt": "2026-12-01T15:55:31Z",
        "finishedAt": "2026-12-01T16:25:31Z",
        "taskResultsCompletionStatus": pods,
    }
    # The Workflow is one JSON object: the spec's text, then `"status":{...}` before its last brace.
    joint = len(spec_text) + len(',"status":')
    whole = joint + len(_gojson({**status_common, "nodes": None})) - len("null") + len(status_text)
    compressed = base64.b64encode(gzip.compress(status_text.encode(), compresslevel=6, mtime=0)).decode()
    packed = joint + len(_gojson({**status_common, "compressedNodes": compressed}))
    return ArgoEstimate(
        spec_bytes=len(spec_text),
        end_bytes=whole if whole <= ARGO_MAX_WORKFLOW_BYTES else packed,
        depth=_depth(workflow),
        nodes=len(walk.nodes),
        status_bytes=len(status_text),
        compressed_bytes=packed,
        templates=len(workflow["spec"]["templates"]),
        largest_argument_bytes=walk.largest_argument,
    )


def check_fits(
    ir: Mapping[str, Any],
    values: Values | None,
    iterations: Mapping[str, int] | None,
    *,
    budget: int = BUDGET_END_BYTES,
    max_depth: int = BUDGET_DEPTH,
    default_iterations: int = 1,
    retry: bool = True,
) -> ArgoEstimate:
    """Estimates a run as :func:`estimate_run` does and refuses one that does not fit.

    Returns:
        The estimate, when the run fits.

    Raises:
        PipelineTooLarge: Naming the pipeline, the figure and the limit it breaks.
    """
    estimate = estimate_run(ir, values, iterations, default_iterations=default_iterations, retry=retry)
    problems = estimate.problems(budget, max_depth=max_depth)
    if problems:
        name = ir.get("pipelineInfo", {}).get("name", "pipeline")
        raise PipelineTooLarge(
            f"pipeline {name!r} on a KFP cluster: " + "; ".join(problems), estimate=estimate
        )
    return estimate

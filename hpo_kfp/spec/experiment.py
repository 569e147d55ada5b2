"""The Katib ``Experiment`` as a whole: reading YAML, applying defaults, validating."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.errors import SpecError
from hpo_kfp.spec._reader import Node, show
from hpo_kfp.spec.algorithm import AlgorithmSpec, EarlyStopping, parse_algorithm, parse_early_stopping
from hpo_kfp.spec.collector import CollectorSpec, parse_collector
from hpo_kfp.spec.objective import Objective, parse_objective
from hpo_kfp.spec.optimization_job import API_VERSION as JOB_API_VERSION
from hpo_kfp.spec.optimization_job import KIND, is_optimization_job, job_path, katib_document
from hpo_kfp.spec.parameters import Parameter, parse_parameters
from hpo_kfp.spec.template import TrialTemplate, parse_template

__all__ = ["NAMESPACE", "Experiment", "check_namespace", "load_experiment", "parse_experiment"]

API_VERSION = "kubeflow.org/v1beta1"
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SPEC_FIELDS = (
    "objective",
    "algorithm",
    "earlyStopping",
    "parameters",
    "nasConfig",
    "parallelTrialCount",
    "maxTrialCount",
    "maxFailedTrialCount",
    "metricsCollectorSpec",
    "trialTemplate",
    "resumePolicy",
)


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A validated experiment with Katib's defaults applied."""

    name: str
    """``metadata.name``: identifies the experiment across runs."""
    namespace: str | None
    """``metadata.namespace``, if given."""
    objective: Objective
    algorithm: AlgorithmSpec
    parameters: tuple[Parameter, ...]
    trial_template: TrialTemplate | None
    """What each trial runs; None when the trials are a KFP component (``hpo_kfp.tune``)."""
    parallel_trial_count: int = 3
    """Trials run at once (Katib's default 3)."""
    max_trial_count: int
    """Trials in all, over every run of this experiment."""
    max_failed_trial_count: int | None = None
    """The experiment fails once this many trials failed (none: no limit)."""
    resume_policy: str = "Never"
    """Katib's resume policy; recorded, as resuming here goes through the metadata store."""
    metrics_collector: CollectorSpec = field(default_factory=CollectorSpec)
    early_stopping: EarlyStopping | None = None
    source: Mapping[str, Any] | None = None
    """The document the experiment was read from."""

    @property
    def template(self) -> TrialTemplate:
        """The trial template, which running trials as jobs or processes needs.

        Raises:
            SpecError: The experiment has none (its trials are a KFP component).
        """
        if self.trial_template is None:
            raise SpecError(
                "spec.trialTemplate", "must be specified to run trials as jobs or processes", "nothing"
            )
        return self.trial_template

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)


def load_experiment(path: str | Path) -> Experiment:
    """Reads and validates an Experiment YAML file.

    Raises:
        SpecError: The file is unreadable, not YAML, or breaks a rule; the message names
            the field path, the rule and the value.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError("(file)", "the file must be readable", error.strerror or str(error)) from None
    except UnicodeDecodeError as error:
        raise SpecError("(file)", "the file must be UTF-8 text", _undecodable(error)) from None
    return parse_experiment(text)


def _undecodable(error: UnicodeDecodeError) -> str:
    return f"byte 0x{error.object[error.start]:02x} at offset {error.start}"


def parse_experiment(source: str | Mapping[str, Any], *, trial_template: bool | None = True) -> Experiment:
    """Validates an Experiment (or a Trainer OptimizationJob) given as YAML text or as a mapping.

    An OptimizationJob becomes the same :class:`Experiment`, its ``source`` the job itself
    (see :mod:`hpo_kfp.spec.optimization_job`).

    Args:
        source: The document.
        trial_template: Whether ``spec.trialTemplate`` is required (True), must be absent
            (False: the trials are a KFP component given to :func:`hpo_kfp.tune`), or may be
            either (None: the pipeline steps, which serve both).
    """
    if isinstance(source, str):
        document = _parse_yaml(source)
    else:
        _check_nesting(source)
        document = source
    _check_top_level(document)
    if is_optimization_job(document):
        katib = katib_document(document, with_template=trial_template)
        try:
            experiment = _parse_katib(katib, trial_template)
        except SpecError as error:
            raise SpecError(job_path(error.path), error.must, error.got) from error
        return replace(experiment, source=document)
    return _parse_katib(document, trial_template)


NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A Kubernetes namespace: an RFC 1123 label (what a KFP profile, and a store key, may be)."""


def check_namespace(path: str, value: str) -> None:
    """Refuses a namespace Kubernetes would refuse (``../x``, 300 characters, ``Équipe``).

    Raises:
        SpecError: Naming ``path``.
    """
    if not NAMESPACE.fullmatch(value):
        raise SpecError(
            path,
            "must be a Kubernetes namespace: lower-case letters, digits and '-', at most 63, "
            "starting and ending with a letter or digit",
            show(value),
        )


_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
"""A Kubernetes object's fields (``status`` is the controller's, read by neither format)."""


def _check_top_level(document: Any) -> None:
    """Refuses a field beside ``apiVersion``, ``kind``, ``metadata``, ``spec`` and ``status``
    (a misplaced ``parameters:`` one indent too far left, say), as the API server would."""
    if not isinstance(document, Mapping):
        return  # the readers below say what the document must be
    for key in document:
        if key not in _TOP_LEVEL:
            raise SpecError(
                str(key),
                f"must be one of the fields {', '.join(_TOP_LEVEL)} (unknown field)",
                show(document[key]),
            )


def _parse_katib(document: Any, trial_template: bool | None) -> Experiment:
    root = Node(document, "(document)")
    api_version = root.raw("apiVersion")
    if api_version != API_VERSION:
        raise SpecError(
            "apiVersion",
            f"must be {API_VERSION} (a Katib Experiment) or {JOB_API_VERSION} (a Trainer OptimizationJob)",
            show(api_version),
        )
    if root.raw("kind") != "Experiment":
        rule = "must be Experiment"
        if api_version == JOB_API_VERSION:
            rule += f" (or {KIND} with {JOB_API_VERSION})"
        raise SpecError("kind", rule, show(root.raw("kind")))
    metadata = Node(root.raw("metadata") or {}, "metadata")
    name = metadata.string("name", required=True)
    assert name is not None
    if not _NAME.match(name) or len(name) > 40:
        raise SpecError(
            "metadata.name",
            "must be lower case letters, digits and '-', start with a letter, end with a letter or "
            "digit, and be at most 40 characters",
            show(name),
        )
    spec = Node(root.raw("spec"), "spec", _SPEC_FIELDS)
    namespace = metadata.string("namespace")
    if namespace is not None:
        check_namespace("metadata.namespace", namespace)
    return _experiment(spec, name, namespace, document, trial_template)


MAX_ALIASED_NODES = 100_000
"""Most YAML nodes the aliases of an Experiment may stand for, each use counted as the whole
node it names (a 2 KB document of nested aliases can stand for billions). Nodes written out
are not limited here: their number follows from the text's length, which the reader bounds."""
MAX_YAML_DEPTH = 100
"""Deepest nesting of mappings and sequences an Experiment may have (a PyTorchJob's trial
template nests about 15 deep)."""


_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader where PyYAML has it (its wheels do): ten times PyYAML's own."""


def _parse_yaml(text: str, loader_class: type[yaml.SafeLoader] = _LOADER) -> Any:
    """The one YAML document in ``text``, checked for size before it is built. Malformed YAML
    is read again by PyYAML's own loader, for its words (libyaml's differ).

    Raises:
        SpecError: Not YAML, not one document, nested deeper than :data:`MAX_YAML_DEPTH`, or
            with aliases that stand for more than :data:`MAX_ALIASED_NODES` nodes.
    """
    documents = []
    try:
        _check_depth(text, loader_class)  # before composing: the composer recurses once per level
        loader = loader_class(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    break
                _check_expansion(node)
                document = loader.construct_document(node)
                if document is not None:
                    documents.append(document)
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        if loader_class is not yaml.SafeLoader:
            return _parse_yaml(text, yaml.SafeLoader)
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(document)"
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(where, "the file must be valid YAML", f"a syntax error: {problem}") from None
    if len(documents) != 1:
        raise SpecError("(document)", "the file must hold exactly one YAML document", f"{len(documents)}")
    return documents[0]


def _check_depth(text: str, loader_class: type[yaml.SafeLoader]) -> None:
    """Refuses YAML nested deeper than :data:`MAX_YAML_DEPTH`, from its parse events alone
    (nothing is built)."""
    loader = loader_class(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise _too_deep()
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    finally:
        loader.dispose()


def _too_deep() -> SpecError:
    return SpecError("(document)", f"must nest at most {MAX_YAML_DEPTH} mappings or sequences deep", "deeper")


def _check_nesting(document: Any) -> None:
    """Refuses a document (a parsed JSON body, say) nested deeper than :data:`MAX_YAML_DEPTH`,
    walking it without recursion."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (Mapping, list)):
                if depth + 1 > MAX_YAML_DEPTH:
                    raise _too_deep()
                stack.append((child, depth + 1))


def _check_expansion(root: yaml.Node) -> None:
    """Refuses a composed document that nests too deep or whose aliases stand for too many
    nodes. Each node is sized once (an alias is the node it names, shared), so the check
    takes time in the document's length, not in what its aliases stand for."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_YAML_DEPTH:
            raise _too_deep()
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item, depth + 1) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key, depth + 1) + size(value, depth + 1) for key, value in node.value)
        sizes[id(node)] = total
        return total

    aliased = size(root, 0) - len(sizes)  # what the expansion adds to the nodes written
    if aliased > MAX_ALIASED_NODES:
        raise SpecError(
            "(document)",
            f"must have aliases that stand for at most {MAX_ALIASED_NODES} YAML nodes in all (each "
            "use counts the whole node it names)",
            f"{aliased} nodes",
        )


def _experiment(
    spec: Node, name: str, namespace: str | None, document: Mapping[str, Any], with_template: bool | None
) -> Experiment:
    if spec.has("nasConfig"):
        raise SpecError(
            spec.at("nasConfig"), "neural architecture search is not supported by hpo-kfp", "a nasConfig"
        )
    objective = parse_objective(spec)
    algorithm = parse_algorithm(spec)
    parameters = parse_parameters(spec)
    counts = _counts(spec)
    early_stopping = parse_early_stopping(spec)
    template = None
    if with_template or (with_template is None and spec.has("trialTemplate")):
        template = parse_template(spec, tuple(p.name for p in parameters))
    elif spec.has("trialTemplate"):
        raise SpecError(
            spec.at("trialTemplate"), "must be omitted when the trial is a KFP component", "a trialTemplate"
        )
    collector = parse_collector(spec)
    experiment = Experiment(
        name=name,
        namespace=namespace,
        objective=objective,
        algorithm=algorithm,
        parameters=parameters,
        trial_template=template,
        metrics_collector=collector,
        early_stopping=early_stopping,
        resume_policy=spec.string("resumePolicy", choices=("Never", "LongRunning", "FromVolume")) or "Never",
        source=document,
        **counts,
    )
    _check_algorithm_fits(spec, experiment)
    return experiment


def _counts(spec: Node) -> dict[str, Any]:
    parallel = spec.integer("parallelTrialCount", minimum=1)
    total = spec.integer("maxTrialCount", minimum=1)
    failed = spec.integer("maxFailedTrialCount", minimum=0)
    if total is None:
        raise SpecError(
            spec.at("maxTrialCount"),
            "must be specified: the pipeline unrolls its rounds to cover it",
            "nothing",
        )
    parallel = 3 if parallel is None else parallel
    if parallel > total:
        raise SpecError(
            spec.at("parallelTrialCount"),
            "`parallelTrialCount <= maxTrialCount` must hold",
            f"parallelTrialCount={parallel}, maxTrialCount={total}",
        )
    if failed is not None and failed > total:
        raise SpecError(
            spec.at("maxFailedTrialCount"),
            "`maxFailedTrialCount <= maxTrialCount` must hold",
            f"maxFailedTrialCount={failed}, maxTrialCount={total}",
        )
    return {"parallel_trial_count": parallel, "max_trial_count": total, "max_failed_trial_count": failed}


def _check_algorithm_fits(spec: Node, experiment: Experiment) -> None:
    algorithm = get_algorithm(experiment.algorithm.name)
    if experiment.objective.is_multi and not algorithm.multi_objective:
        raise SpecError(
            spec.at("algorithm.algorithmName"),
            "must be an algorithm that supports several objectives",
            show(experiment.algorithm.name),
        )
    algorithm.validate(experiment, spec.at)

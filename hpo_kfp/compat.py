"""Every private internal of KFP and Optuna that hpo-kfp relies on, and nothing else.

Each function here hooks something the libraries do not promise to keep; each has a test in
``tests/test_compat.py`` that fails when upstream changes what it hooks, so an upgrade shows
at once which workaround to revisit. The supported version ranges (the same as
``pyproject.toml``'s) are checked when the code that needs them is imported, with a
one-line message instead of a failure deep inside a run.

KFP and Optuna are imported inside the functions: this module sits below every other one
(it imports only :mod:`hpo_kfp.errors`), and ``import hpo_kfp`` loads neither library.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import enum
import hashlib
import importlib.util
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_kfp.errors import UnsupportedDependency

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "SUPPORTED",
    "UnsupportedDependency",
    "added_trial",
    "check_supported",
    "component_from_source",
    "import_optuna_importance_without_sklearn",
    "kfp_compiler_libyaml",
    "kfp_local_fixes",
    "kfp_local_task_folders",
    "kfp_local_warm_tasks",
    "holds_pipeline_channel",
    "kfp_server_healthz",
    "load_pipeline_file",
    "resolve_component_command",
    "set_study_system_attrs",
    "study_system_attrs",
    "update_trial",
    "warm_server",
]

SUPPORTED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "kfp": ((2, 17, 0), (3,)),
    "optuna": ((5,), (6,)),
}
"""Distribution -> (lowest supported version, first unsupported version)."""


def check_supported(distribution: str) -> None:
    """Refuses an installed ``distribution`` outside :data:`SUPPORTED`, in one line.

    Raises:
        UnsupportedDependency: Naming the range and the installed version.
    """
    low, high = SUPPORTED[distribution]
    try:
        installed = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise UnsupportedDependency(
            f"{distribution}: must be installed (>={_text(low)},<{_text(high)}), but it is not"
        ) from None
    if not low <= _release(installed) < high:
        raise UnsupportedDependency(
            f"{distribution}: hpo-kfp needs >={_text(low)},<{_text(high)}, but {installed} is installed; "
            f"`pip install '{distribution}>={_text(low)},<{_text(high)}'`"
        )


def _release(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.group() != part:
            break
    return tuple(numbers)


def _text(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


# --- KFP -------------------------------------------------------------------------------


@contextlib.contextmanager
def kfp_local_fixes(max_parallelism: int) -> Iterator[None]:
    """Works around three defects of kfp.local's orchestrator for the block, then restores.

    * ``ParallelFor`` runs at most 2 iterations at once whatever the loop's ``parallelism``
      (``ParallelExecutor.conservative_max = 2`` in
      ``kfp/local/orchestrator/enhanced_dag_orchestrator.py``, a guard against thread
      explosion in *nested* loops, which the tuning loop has none of). The cap is raised to
      ``max_parallelism`` (= ``parallelTrialCount``), which is what a cluster honours.
    * ``kfp.local.logging_utils.indented_print`` swaps ``builtins.print`` for an indenting
      wrapper and back, which is not thread-safe: with two iterations at once the wrappers
      leak and nest, every print calls the next layer twice, and a long run slows down
      exponentially until it hangs (measured in ``benchmarks/RESULTS.md``). It becomes a
      no-op: step logs lose their 4-space indent.
    * ``kfp.local.logging_utils.local_logger_context``, which every task enters, saves the
      root logger's handlers, installs its own and puts the saved ones back on exit: tasks
      that overlap in time put back each other's, and the last one out can leave a handler
      on the root logger writing to the stream of the run (a closed log file, once the run
      is over: "--- Logging error ---" on every later log record of the process). Only the
      first of overlapping entries installs and the last one out restores.
    """
    import threading

    from kfp.local import logging_utils
    from kfp.local.orchestrator import enhanced_dag_orchestrator as orchestrator

    executor_class = orchestrator.ParallelExecutor
    original_init = executor_class.__init__
    original_indent = logging_utils.indented_print
    original_logger = logging_utils.local_logger_context
    lock = threading.Lock()
    entered: list[contextlib.ExitStack] = []
    depth = [0]

    @contextlib.contextmanager
    def shared_logger() -> Iterator[None]:
        with lock:
            if not depth[0]:
                stack = contextlib.ExitStack()
                stack.enter_context(original_logger())
                entered.append(stack)
            depth[0] += 1
        try:
            yield
        finally:
            with lock:
                depth[0] -= 1
                if not depth[0]:
                    entered.pop().close()

    def init(self: Any, max_workers: int | None = None) -> None:
        original_init(self, max_workers)
        self.conservative_max = max(max_parallelism, 1)
        self.max_workers = (
            self.conservative_max if max_workers is None else min(max_workers, self.conservative_max)
        )

    @contextlib.contextmanager
    def no_indent(num_spaces: int = 4) -> Iterator[None]:
        yield

    executor_class.__init__ = init
    logging_utils.indented_print = no_indent
    logging_utils.local_logger_context = shared_logger
    try:
        yield
    finally:
        executor_class.__init__ = original_init
        logging_utils.indented_print = original_indent
        logging_utils.local_logger_context = original_logger


@contextlib.contextmanager
def kfp_local_task_folders(parent: Path) -> Iterator[Path]:
    """Keeps the folder every kfp.local task makes out of ``/tmp``, and removes them all.

    A lightweight component's command starts ``program_path=$(mktemp -d)`` and writes its
    code there (``kfp/dsl/component_factory.py``); nothing removes it, and kfp.local's
    ``SubprocessRunner`` runs the command with this process's environment
    (``run_local_subprocess`` in ``kfp/local/subprocess_task_handler.py``): one
    ``/tmp/tmp.XXXX/`` per task, 403 from one 2-trial run. For the block, ``TMPDIR`` points
    ``mktemp`` at a new folder under ``parent``, which is removed afterwards with all in it.
    """
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="kfp-local-tasks-", dir=parent))
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous
        shutil.rmtree(folder, ignore_errors=True)


_TASK_PROCESS = "hpo-kfp-task-"
"""The name prefix of the processes :func:`kfp_local_warm_tasks` forks."""
_WARM: dict[str, Any] = {}
"""The forkserver context of :func:`kfp_local_warm_tasks`, made once per process."""


@contextlib.contextmanager
def kfp_local_warm_tasks(preload: tuple[str, ...]) -> Iterator[None]:
    """Runs kfp.local's lightweight-component tasks in processes forked from a warm server.

    kfp.local's ``SubprocessRunner`` starts every task as ``sh -ec 'program_path=$(mktemp
    -d); printf "%s" "$0" > "$program_path/ephemeral_component.py"; _KFP_RUNTIME=true python3
    -m kfp.dsl.executor_main --component_module_path ... "$@"'`` (``component_factory.py``,
    ``run_local_subprocess`` in ``subprocess_task_handler.py``): a new interpreter that
    imports the step's code (an experiment store's SQLAlchemy, Optuna, ...) before it does
    anything, about a second of CPU per task, most of a local trial's overhead (measured in
    ``benchmarks/RESULTS.md``). For the block, such a task runs the same executor with the
    same arguments and environment in a process forked from a multiprocessing
    ``forkserver`` that imported ``preload`` once: still one process per task, isolated as
    before, without the interpreter start and the imports. Its output is printed when it
    ends (kfp.local streamed it). Any other command runs as kfp.local runs it.
    """
    from multiprocessing import spawn

    from kfp.local import subprocess_task_handler as handler

    original = handler.run_local_subprocess
    original_preparation = spawn.get_preparation_data
    context = warm_server(preload)

    def preparation(name: str) -> dict[str, Any]:
        # A forked task runs the executor, nothing of this process's __main__: without this,
        # multiprocessing imports the main script again in every task (running it, if it has
        # no `if __name__ == "__main__"` guard).
        data: dict[str, Any] = original_preparation(name)
        if name.startswith(_TASK_PROCESS):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    def run(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        task = _lightweight_task(full_command)
        if task is None:
            return int(original(full_command=full_command, env_vars=env_vars))
        program, arguments = task
        folder = Path(tempfile.mkdtemp())
        (folder / "ephemeral_component.py").write_text(program, encoding="utf-8")
        output = folder / "output.log"
        environment = {**os.environ, **(env_vars or {}), "_KFP_RUNTIME": "true"}
        argv = ["--component_module_path", str(folder / "ephemeral_component.py"), *arguments]
        process = context.Process(
            target=_warm_task,
            args=(argv, environment, os.getcwd(), str(output), os.getpid()),
            name=f"{_TASK_PROCESS}{folder.name}",
            daemon=False,
        )
        process.start()
        try:
            process.join()
        except BaseException:
            # Stopped (Ctrl-C, SIGTERM): the step stops its trial on SIGINT, as a step does.
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid or 0, signal.SIGINT)
            process.join(timeout=30)
            raise
        finally:
            if output.exists():
                print(output.read_text(encoding="utf-8", errors="replace"), end="")
                print("\n")
            # The task's own word on how it ended: multiprocessing reports 255 when it cannot
            # read a forkserver child's status, which happens now and then with many at once.
            status = folder / "status"
            code = int(status.read_text()) if status.exists() else (process.exitcode or 1)
            shutil.rmtree(folder, ignore_errors=True)
        return code

    handler.run_local_subprocess = run
    spawn.get_preparation_data = preparation
    try:
        yield
    finally:
        handler.run_local_subprocess = original
        spawn.get_preparation_data = original_preparation


def warm_server(preload: tuple[str, ...]) -> Any:
    """The forkserver context of :func:`kfp_local_warm_tasks`, its server started (once per
    process, ``preload`` imported there; a later call's ``preload`` is ignored)."""
    if "context" not in _WARM:
        import multiprocessing
        from multiprocessing import forkserver

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["kfp.dsl.executor_main", *preload])
        # Started now, in the runtime mode a task's interpreter has (`import kfp` then skips
        # the compiler and client: seconds), rather than lazily from a loop's thread.
        previous = os.environ.get("_KFP_RUNTIME")
        os.environ["_KFP_RUNTIME"] = "true"
        try:
            forkserver.ensure_running()
        finally:
            if previous is None:
                os.environ.pop("_KFP_RUNTIME", None)
            else:
                os.environ["_KFP_RUNTIME"] = previous
        _WARM["context"] = context
    return _WARM["context"]


def _lightweight_task(full_command: list[str]) -> tuple[str, list[str]] | None:
    """(component source, executor arguments) of a lightweight component's command, or None."""
    if len(full_command) < 4 or full_command[:2] != ["sh", "-ec"]:
        return None
    script = full_command[2]
    if "kfp.dsl.executor_main" not in script or '"$program_path/ephemeral_component.py"' not in script:
        return None
    if "pip install" in script:  # a component that installs packages needs its own shell
        return None
    return full_command[3], list(full_command[4:])


def _interrupt_when_gone(pid: int) -> None:
    """Sends this process SIGINT once process ``pid`` has ended (a daemon thread waiting on a
    pidfd, which a reused pid cannot fool; Linux >= 5.3): at once if it already has."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGINT)
        return
    except (AttributeError, OSError):  # no pidfds here: no watch
        return

    def watch() -> None:
        select.select([descriptor], [], [])  # readable once the process has ended
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="hpo-kfp-run-watch", daemon=True).start()


def _warm_task(argv: list[str], environment: dict[str, str], cwd: str, output: str, run_pid: int) -> None:
    """In the forked process: the executor, as ``python -m kfp.dsl.executor_main`` runs it."""
    import runpy

    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Stopped as by Ctrl-C, stopping its trial, when the run's process dies even by SIGKILL:
    # the forkserver outlives it (each task holds the pipe that keeps it up).
    _interrupt_when_gone(run_pid)
    sys.argv = ["executor_main", *argv]
    code = 1
    try:
        runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        Path(output).with_name("status").write_text(str(code), encoding="utf-8")
    os._exit(code)


@contextlib.contextmanager
def kfp_compiler_libyaml() -> Iterator[None]:
    """KFP's compiler writes a pipeline with libyaml's emitter, for the block.

    ``write_pipeline_spec_to_file`` (``kfp/compiler/pipeline_spec_builder.py``) dumps with
    PyYAML's pure-Python ``Dumper``: 0.2 s for a lanes pipeline of 160 KB, 0.7 s at 500 KB,
    paid by every ``hpo-kfp run`` before its first step. libyaml's ``CDumper`` writes the
    same documents (only long quoted strings fold at other places) in a fifth of the time.
    Used for the local runs' own record of their pipeline; a pipeline compiled for a cluster
    is written by KFP's dumper unchanged.
    """
    import types

    import yaml
    from kfp.compiler import pipeline_spec_builder as builder

    dumper = getattr(yaml, "CDumper", None)
    original = builder.yaml
    if dumper is None:
        yield
        return
    shim = types.ModuleType("yaml")
    shim.__dict__.update(original.__dict__)

    def dump_all(documents: Any, stream: Any = None, **options: Any) -> Any:
        return original.dump_all(documents, stream, Dumper=dumper, **options)

    shim.dump_all = dump_all  # type: ignore[attr-defined]
    builder.yaml = shim
    try:
        yield
    finally:
        builder.yaml = original


def load_pipeline_file(path: Path) -> Any:
    """A compiled pipeline (or component) file loaded as ``kfp.components.load_component_from_file``
    loads it, parsed with libyaml where PyYAML has it.

    KFP parses the file with PyYAML's pure-Python ``safe_load_all``: about 0.3 s for a lanes
    pipeline of 160 KB, 0.8 s at 640 KB, paid by every ``hpo-kfp run`` before its first step.
    libyaml's ``CSafeLoader`` builds the same documents (the same YAML 1.1 rules) in a tenth of
    the time; the component is then made as KFP makes it (``ComponentSpec.from_ir_dicts``,
    ``YamlComponent``).
    """
    import yaml
    from kfp import components
    from kfp.dsl import structures, yaml_component

    text = Path(path).read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return components.load_component_from_file(str(path))
    documents = list(yaml.load_all(text, Loader=loader))
    if len(documents) not in (1, 2) or "implementation" in documents[0]:
        return components.load_component_from_text(text)  # KFP's own errors and v1 handling
    spec = structures.ComponentSpec.from_ir_dicts(documents[0], documents[1] if len(documents) == 2 else {})
    return yaml_component.YamlComponent(component_spec=spec, component_yaml=text)


def defining_a_pipeline() -> bool:
    """Whether a ``@dsl.pipeline`` function is being defined (``Pipeline.get_default_pipeline``:
    a component called outside one runs at once, through ``kfp.local``)."""
    from kfp.dsl import pipeline_context

    return pipeline_context.Pipeline.get_default_pipeline() is not None


_GENERATED: Path | None = None


def component_from_source(source: str, function: str, base_image: str) -> Any:
    """A lightweight component made from Python ``source`` that defines ``function``.

    KFP embeds a lightweight component's code from ``inspect.getsource`` of its function, so
    a function made by ``exec`` (no file behind it) cannot become one. The source is written
    to a module file in a folder of this process's, imported, and decorated; KFP copies the
    source into the component then, and the file is not needed afterwards.
    """
    global _GENERATED  # noqa: PLW0603 - one folder per process, made on first use
    from kfp import dsl

    if _GENERATED is None:
        import atexit
        import shutil

        _GENERATED = Path(tempfile.mkdtemp(prefix="hpo-kfp-components-"))
        atexit.register(shutil.rmtree, _GENERATED, ignore_errors=True)
    digest = hashlib.sha256(f"{source}{base_image}".encode()).hexdigest()[:16]
    path = _GENERATED / f"generated_{function}_{digest}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dsl.component(base_image=base_image, install_kfp_package=False)(getattr(module, function))


def holds_pipeline_channel(value: Any) -> bool:
    """Whether a task argument is, or holds, a pipeline channel (a pipeline parameter, a task
    output, an f-string or a list or dict with one in it): its value is known only at run time."""
    from kfp.dsl import pipeline_channel

    return bool(pipeline_channel.extract_pipeline_channels_from_any(value))


def resolve_component_command(
    command: Sequence[str], executor_input: dict[str, Any], *, pipeline: str, task: str, job_id: str
) -> list[str]:
    """A component's command and args with KFP's placeholders resolved from
    ``executor_input``, as kfp.local resolves a task's (``replace_placeholders`` in
    ``kfp/local/placeholder_utils.py``): ``{{$}}`` becomes the executor input as JSON, an
    input or output placeholder its value or path, an ``IfPresent`` or ``Concat`` structure
    its parts. KFP's launcher does the same on a cluster (``backend/src/v2/component``)."""
    from kfp.local import placeholder_utils

    return list(
        placeholder_utils.replace_placeholders(
            full_command=list(command),
            executor_input_dict=copy.deepcopy(executor_input),
            pipeline_resource_name=pipeline,
            task_resource_name=task,
            pipeline_root=os.path.dirname(executor_input["outputs"]["outputFile"]),
            unique_pipeline_id=job_id,
        )
    )


def kfp_server_healthz(client: Any) -> dict[str, Any]:
    """The KFP API server's healthz document as it sent it: ``tag_name`` (its release),
    ``commit_sha``, ``multi_user``.

    ``kfp.Client.get_kfp_healthz()`` reads it into ``V2beta1GetHealthzResponse``, which keeps
    only ``multi_user`` and ``pipeline_store``, although the server's handler writes the
    release too (``backend/src/apiserver/main.go``, ``/apis/v2beta1/healthz``). So the body is
    read raw through the client's own ``HealthzServiceApi`` (private ``_healthz_api``), which
    carries the client's host, token and proxy settings.
    """
    import json

    response = client._healthz_api.healthz_service_get_healthz(_preload_content=False)
    document = json.loads(response.data or b"{}")
    return document if isinstance(document, dict) else {}


# --- Optuna ----------------------------------------------------------------------------


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """What the sampler stored on the study (QMC's counter, say); Optuna's public accessor
    for these was removed, the storage still has them."""
    return dict(study._storage.get_study_system_attrs(study._study_id))


def set_study_system_attrs(study: optuna.Study, attrs: dict[str, Any]) -> None:
    """Restores what :func:`study_system_attrs` returned, into a rebuilt study."""
    for key, value in attrs.items():
        study._storage.set_study_system_attr(study._study_id, key, value)


def set_trial_system_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Stores what a sampler learned on the trial it is sampling (as Optuna's own samplers
    do, through the storage: a sampler sees the trial frozen)."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def update_trial(
    study: optuna.Study,
    trial: FrozenTrial,
    *,
    system_attrs: dict[str, Any],
    state: TrialState,
    values: Sequence[float] | None,
    intermediate_values: dict[int, float],
) -> None:
    """Brings a running trial of a kept study to what a rebuilt study would hold: the system
    attributes and intermediate values it lacks, then its end, written through the storage as
    ``Study.add_trial`` writes them (``Study.tell`` would also call the sampler's
    ``after_trial``, which a rebuilt study never sees for a trial it is given)."""
    from optuna.trial import TrialState

    storage, trial_id = study._storage, trial._trial_id
    for key, value in system_attrs.items():
        if trial.system_attrs.get(key, _ABSENT) != value:
            storage.set_trial_system_attr(trial_id, key, value)
    for step, value in intermediate_values.items():
        storage.set_trial_intermediate_value(trial_id, step, value)
    if state != TrialState.RUNNING:
        storage.set_trial_state_values(trial_id, state, values)


_ABSENT = object()


def added_trial(
    state: TrialState,
    *,
    params: dict[str, Any] | None = None,
    distributions: dict[str, BaseDistribution] | None = None,
    values: Sequence[float] | None = None,
    system_attrs: dict[str, Any] | None = None,
    intermediate_values: dict[int, float] | None = None,
) -> FrozenTrial:
    """A trial as ``optuna.trial.create_trial`` makes it (times: now), cheap to deep-copy.

    The rebuilt study receives every trial of the history. Made by ``create_trial`` and
    copied as Optuna's in-memory storage copies every trial it adds (``copy.deepcopy``),
    each costs ~0.2 ms: most of a suggest call over 1000 trials. Here a trial is made with
    ``FrozenTrial``'s own constructor (``Study.add_trial`` still validates it), and its deep
    copy, which relies on a ``FrozenTrial`` keeping its fields in ``__dict__``, shares what
    cannot change: the distributions (Optuna never alters one after it is made) and scalars.
    """
    from optuna.trial import TrialState

    now = datetime.datetime.now()
    trial: FrozenTrial = _added_trial_class()(
        number=-1,
        trial_id=-1,
        state=state,
        value=None,
        values=values,
        datetime_start=None if state == TrialState.WAITING else now,
        datetime_complete=now if state.is_finished() else None,
        params=params or {},
        distributions=distributions or {},
        user_attrs={},
        system_attrs=system_attrs or {},
        intermediate_values=intermediate_values or {},
    )
    return trial


_ADDED_TRIAL: type[Any] | None = None


def _added_trial_class() -> type[Any]:
    global _ADDED_TRIAL  # noqa: PLW0603 - made once, on first use (it needs Optuna)
    if _ADDED_TRIAL is not None:
        return _ADDED_TRIAL
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    atomic = frozenset({str, int, float, bool, type(None), datetime.datetime})
    shared = (enum.Enum, BaseDistribution)

    def share(value: Any, memo: dict[int, Any]) -> Any:
        kind = type(value)
        if kind in atomic:
            return value
        if kind is dict:
            return {key: share(item, memo) for key, item in value.items()}
        if kind is list:
            return [share(item, memo) for item in value]
        if isinstance(value, shared):
            return value
        return copy.deepcopy(value, memo)

    class AddedTrial(FrozenTrial):
        """A ``FrozenTrial`` whose deep copy shares immutable parts."""

        def __deepcopy__(self, memo: dict[int, Any]) -> AddedTrial:
            copied = AddedTrial.__new__(AddedTrial)
            copied.__dict__.update({name: share(value, memo) for name, value in self.__dict__.items()})
            return copied

    _ADDED_TRIAL = AddedTrial
    return AddedTrial


def import_optuna_importance_without_sklearn() -> None:
    """Imports ``optuna.importance`` with scikit-learn hidden, unless either is loaded already.

    The package imports scikit-learn eagerly for its fANOVA and impurity evaluators (3 to 4 s
    on 2 cores, most of the report step); the report uses the PED-ANOVA evaluator, which
    needs only numpy. Optuna treats scikit-learn as optional, so it loads fine without it.
    """
    if "optuna.importance" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn...` fail
    try:
        import optuna.importance  # noqa: F401
    finally:
        del sys.modules["sklearn"]

"""Lightweight components whose signature depends on the experiment.

KFP builds a lightweight component from its function's source (``inspect.getsource``), so
a component with, say, one output per hyperparameter cannot come from ``exec``: the
source is written to a module file, imported, and decorated. KFP embeds the source in the
component when it is decorated; the file is not needed afterwards.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import atexit
import hashlib
import importlib.util
import keyword
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, List, Tuple

from kfp import dsl

__all__ = ["best_op", "identifier", "unpack_op"]

_DIRECTORY = Path(tempfile.mkdtemp(prefix="hpo-kfp-components-"))
atexit.register(shutil.rmtree, _DIRECTORY, ignore_errors=True)


def identifier(name: str) -> str:
    """A Python identifier for a parameter name (``--learning-rate`` -> ``learning_rate``)."""
    text = re.sub(r"\W+", "_", name).strip("_") or "parameter"
    if text[0].isdigit() or keyword.iskeyword(text):
        text = "p_" + text
    return text


def unpack_op(fields: List[Tuple[str, str]], base_image: str) -> Any:
    """A component turning a loop item into one typed output per hyperparameter.

    Args:
        fields: ``(name, python type name)`` per hyperparameter; names are identifiers.
    """
    annotation = ", ".join(f'("{name}", {kind})' for name, kind in fields)
    values = ", ".join(f'{kind}(values["{name}"])' for name, kind in fields)
    source = f"""from typing import NamedTuple


def unpack(trial: str) -> NamedTuple("Assignment", [{annotation}]):
    import json
    from collections import namedtuple

    item = json.loads(trial)
    if item.get("skip"):
        raise RuntimeError("this round has no trial to run")
    values = item["parameters"]
    return namedtuple("Assignment", {[name for name, _ in fields]!r})({values})
"""
    return _component(source, "unpack", base_image)


def best_op(fields: List[Tuple[str, str, str]], base_image: str) -> Any:
    """A component exposing the best trial: its parameters as a dict and one by one, its
    objective and name, the decision, and the history as an artifact.

    Args:
        fields: ``(output name, parameter name, python type name)`` per hyperparameter.
    """
    outputs = [
        ("best_parameters", "dict"),
        ("best_objective", "float"),
        ("best_trial", "str"),
        ("decision", "str"),
    ] + [(output, kind) for output, _, kind in fields]
    annotation = ", ".join(f'("{name}", {kind})' for name, kind in outputs)
    values = "".join(f', {kind}(best["parameters"][{parameter!r}])' for _, parameter, kind in fields)
    source = f"""from typing import NamedTuple

from kfp.dsl import Artifact, Output


def best(result: str, history: Output[Artifact]) -> NamedTuple("Best", [{annotation}]):
    import json
    from collections import namedtuple

    data = json.loads(result)
    with open(history.path, "w", encoding="utf-8") as stream:
        stream.write(data["history"])
    best = data["decision"]["best"]
    if best is None:
        raise RuntimeError("no trial succeeded, so there is no best: " + json.dumps(data["decision"]))
    outputs = namedtuple("Best", {[name for name, _ in outputs]!r})
    decision = json.dumps(data["decision"])
    return outputs(best["parameters"], float(best["objective"]), best["name"], decision{values})
"""
    return _component(source, "best", base_image)


def _component(source: str, function: str, base_image: str) -> Any:
    digest = hashlib.sha256(f"{source}{base_image}".encode()).hexdigest()[:16]
    path = _DIRECTORY / f"generated_{function}_{digest}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dsl.component(base_image=base_image, install_kfp_package=False)(getattr(module, function))

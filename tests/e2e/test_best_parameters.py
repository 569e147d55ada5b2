"""Why the best parameters travel as typed JSON: kfp.local hands a dict parameter's ints on
as floats; the JSON of :func:`hpo_kfp.wire.typed_parameters_json` keeps them ints."""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import json
from pathlib import Path

from kfp import dsl, local


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _best() -> str:
    from hpo_kfp.wire import typed_parameters_json

    return typed_parameters_json({"lr": 0.02, "layers": 3}, {"lr": "float", "layers": "int"})


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _best_dict() -> dict:
    return {"lr": 0.02, "layers": 3}


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _types(as_json: str, as_dict: dict) -> str:
    import json

    return json.dumps(
        {
            "json": {k: type(v).__name__ for k, v in json.loads(as_json).items()},
            "dict": {k: type(v).__name__ for k, v in as_dict.items()},
        }
    )


@dsl.pipeline
def _passed_on() -> str:
    return _types(as_json=_best().output, as_dict=_best_dict().output).output


def test_typed_json_keeps_an_int_parameter_an_int_where_a_dict_does_not(tmp_path: Path) -> None:
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True
    )
    types = json.loads(_passed_on().output)
    assert types["json"] == {"lr": "float", "layers": "int"}
    assert types["dict"] == {"lr": "float", "layers": "float"}  # the defect the JSON avoids

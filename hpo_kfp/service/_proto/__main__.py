"""Regenerates the protobuf modules of this folder: ``python -m hpo_kfp.service._proto [OUT]``.

Writes into ``OUT`` (default: this folder's package root, so the committed files) the
``api_pb2.py``, ``api_pb2.pyi``, ``api_pb2_grpc.py``, ``health_pb2.py`` and ``health_pb2.pyi``
modules, named by their place in the package so that they import each other absolutely.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTOS = ("api.proto", "health.proto")
"""The files compiled, in this folder."""

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[2]
"""The folder holding the ``hpo_kfp`` package: protoc's include path."""


def generate(out: Path) -> None:
    """Compiles every file of :data:`PROTOS` into ``out`` (a package root).

    Raises:
        RuntimeError: protoc failed; its messages went to standard error.
    """
    from grpc_tools import protoc

    for name in PROTOS:
        source = _HERE.relative_to(_ROOT) / name
        arguments = ["protoc", f"-I{_ROOT}", f"--python_out={out}", f"--pyi_out={out}", str(source)]
        if name == "api.proto":
            arguments.insert(-1, f"--grpc_python_out={out}")
        if protoc.main(arguments) != 0:
            raise RuntimeError(f"protoc could not compile {source}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else _ROOT)

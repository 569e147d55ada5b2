"""The release and the runtime image its pipeline steps run in."""

from __future__ import annotations

__all__ = ["RUNTIME_IMAGE", "VERSION"]

VERSION = "0.1.0"

RUNTIME_IMAGE = f"hpo-kfp:{VERSION}"
"""Built from the ``Dockerfile`` at the project root. Push it to a registry your cluster
pulls from and pass its full name as the components' ``base_image``
(``hpo-kfp compile --image REGISTRY/hpo-kfp:0.1.0``)."""

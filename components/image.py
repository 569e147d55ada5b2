"""The runtime image the components run in by default."""

from hpo_kfp.runtime import RUNTIME_IMAGE

__all__ = ["RUNTIME_IMAGE"]

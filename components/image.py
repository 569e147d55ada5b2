"""The runtime image the components run in by default."""

RUNTIME_IMAGE = "hpo-kfp:0.1.0"
"""Built from the ``Dockerfile`` at the project root; push it to your registry and pass its
name as ``base_image`` (``hpo-kfp compile --image``)."""

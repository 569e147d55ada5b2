"""The KFP components of a tuning loop: suggest, run_trial, collect_metrics, decide.

Each is a thin lightweight-Python component over :mod:`hpo_kfp.steps`; the runtime image
(the ``Dockerfile`` at the root) already holds hpo-kfp and kfp, so the components do not
pip-install anything when they start (``install_kfp_package=False``).
"""

from components.collect_metrics.component import collect_metrics_op
from components.collect_metrics.native import collect_native_metrics_op, collect_native_value_op
from components.decide.component import decide_op
from components.image import RUNTIME_IMAGE
from components.report.component import report_op
from components.run_trial.component import run_trial_op
from components.suggest.component import suggest_op

__all__ = [
    "RUNTIME_IMAGE",
    "collect_metrics_op",
    "collect_native_metrics_op",
    "collect_native_value_op",
    "decide_op",
    "report_op",
    "run_trial_op",
    "suggest_op",
]

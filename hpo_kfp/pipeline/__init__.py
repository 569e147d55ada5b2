"""The KFP layer: the loop's components, the pipeline builders, the kfp.local launcher.

Everything here imports KFP; the core below it does not. Importing this package checks
that the installed kfp and Optuna are releases this one supports (one line if not).
"""

from hpo_kfp.compat import check_supported

check_supported("kfp")
check_supported("optuna")

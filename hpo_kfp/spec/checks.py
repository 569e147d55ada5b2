"""Checks an experiment must pass to start, beyond what its document alone says.

Parsing checks the document; these check it against this installation and the pipeline it
becomes: the algorithm's optional libraries, and, for an algorithm that runs synchronous
rounds, the rounds one pipeline may unroll (asynchronous runs hold a bounded share of the
trials each and follow one another, so their size is never the experiment's). ``run``
and ``compile`` make the same checks when they build the pipeline, and ``validate`` makes
them up front, so a file that validates also starts.
"""

from __future__ import annotations

from hpo_kfp.algorithms import get_algorithm, require_dependencies
from hpo_kfp.errors import SpecError
from hpo_kfp.rounds import check_rounds, rounds_needed
from hpo_kfp.spec.experiment import Experiment
from hpo_kfp.spec.optimization_job import is_optimization_job, job_path

__all__ = ["check_startable"]


def check_startable(experiment: Experiment) -> None:
    """Refuses an experiment that ``run`` or ``compile`` would refuse, whatever the runner.

    Raises:
        SamplerUnavailable: The algorithm needs a library that is not installed.
        SpecError: ``maxTrialCount`` needs more synchronous rounds than one pipeline unrolls; the path is
            the field of the experiment's own format (``spec.trialConfig.numTrials`` in an
            OptimizationJob).
    """
    require_dependencies(experiment.algorithm.name)
    if not get_algorithm(experiment.algorithm.name).synchronous:
        return
    try:
        check_rounds(rounds_needed(experiment))
    except SpecError as error:
        if not is_optimization_job(experiment.source):
            raise
        raise SpecError(job_path(error.path), error.must, error.got) from error

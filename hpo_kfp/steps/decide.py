"""The decide step: merge the round's results, record the experiment, say whether it is done."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hpo_kfp.decide import decide
from hpo_kfp.history import History
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.wire import DecisionDocument, RecordedTrial, read

__all__ = ["decide_step"]


def decide_step(
    spec: str,
    history_in: str,
    results: list[str],
    history_out: str,
    settings: str = "",
    decision_out: str = "",
) -> bool:
    """Merges the round's results and decides; returns whether the experiment is done.

    Args:
        results: Each a :class:`~hpo_kfp.wire.RecordedTrial` as JSON, or the round's
            :class:`~hpo_kfp.wire.NoTrial` item, which is left out.
        decision_out: Where to write the :class:`~hpo_kfp.wire.DecisionDocument` (JSON:
            ``done``, ``experiment``, ``status``, ``reason``, ``trials`` (counts) and ``best``).
    """
    experiment = parse_experiment(spec, trial_template=None)
    history = History.from_json(Path(history_in).read_text(encoding="utf-8"))
    messages = [read(text, RecordedTrial) for text in results]
    records = [message.record for message in messages if isinstance(message, RecordedTrial)]
    options = StepSettings.from_json(settings)
    store = options.open_store()
    if store is None:
        history = history.upsert(records)
    else:
        # The store is the truth: it has this round's records, and other runs' trials too.
        key = options.experiment_key(experiment)
        history = replace(store.history(key), run_limit=history.run_limit)
    decision = decide(experiment, history)
    if store is not None:
        store.save_decision(key, decision, history.study_attrs)
    Path(history_out).write_text(history.to_json(), encoding="utf-8")
    if decision_out:
        document = DecisionDocument.of(experiment.name, decision)
        Path(decision_out).write_text(document.to_json(), encoding="utf-8")
    return decision.done

"""Prior trials from elsewhere (JSON or CSV), checked against the experiment's search space.

As the Kruize HPO service allowed, results obtained outside this experiment — an earlier
manual sweep, another tool — can seed it: imported trials inform the sampler and can be
the best trial, but spend none of the experiment's trial budget.

JSON: a list (or ``{"trials": [...]}``) of ``{"parameters": {...}, "metrics": {...}}``,
optionally with ``"status"``, ``"started"``, ``"finished"``, ``"reason"`` and ``"series"``.
CSV: a header of parameter and metric names, one trial per row, optionally the columns
``status``, ``name``, ``started``, ``finished``, ``reason`` and ``series`` (JSON text). A
trial without its objective metric must say its status (``Failed``, ``MetricsUnavailable``).

:func:`export_trials` writes an experiment's finished trials in either format, which this
module reads back whole: parameters, metrics, status, times, reason and every series.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hpo_kfp.errors import PriorError
from hpo_kfp.history import TrialRecord
from hpo_kfp.space import SearchSpace
from hpo_kfp.spec import Experiment, Parameter
from hpo_kfp.suggest import trial_name

__all__ = ["export_trials", "read_optuna_study", "read_prior_trials"]

_STATUSES = ("Succeeded", "Failed", "MetricsUnavailable", "EarlyStopped")
_COLUMNS = ("status", "name", "started", "finished", "reason", "series")
"""CSV columns that are not parameters or metrics."""


def read_prior_trials(path: str | Path, experiment: Experiment, first_number: int = 0) -> list[TrialRecord]:
    """Reads prior trials, numbered from ``first_number`` (the store numbers them anew as it
    imports them).

    Raises:
        PriorError: The file is unreadable or a trial breaks a rule; the message names the
            trial (JSON index or CSV row), the field, the rule and the value.
    """
    source = Path(path)
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark.
        text = source.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise PriorError(f"the file must be readable, but got {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise PriorError(
            f"the file must be UTF-8 text, but got byte 0x{error.object[error.start]:02x}"
        ) from None
    entries = _csv(text) if source.suffix.lower() == ".csv" else _json(text)
    if not entries:
        raise PriorError("the file must hold at least one trial, but it holds none")
    return [_record(experiment, where, entry, first_number + n) for n, (where, entry) in enumerate(entries)]


def read_optuna_study(storage: str, study_name: str | None, experiment: Experiment) -> list[TrialRecord]:
    """The finished trials of an Optuna study, checked as a file's are: its values are the
    experiment's objectives in order; completed trials succeeded, pruned ones stopped early
    (their intermediate values the primary objective's series), failed ones failed. What
    ``export --optuna-storage`` stored besides (each trial's status, reason and other metrics,
    as user attributes) comes back too.

    Raises:
        PriorError: The storage cannot be read, holds no such study, or a trial breaks a rule.
    """
    import optuna
    from optuna.trial import TrialState

    from hpo_kfp.study_view import quiet_optuna

    try:
        with quiet_optuna():
            if study_name is None:
                names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
                if len(names) != 1:
                    raise PriorError(
                        f"--study-name: must name one of the storage's studies ({names}), but got nothing"
                    )
                study_name = names[0]
            study = optuna.load_study(study_name=study_name, storage=storage)
            trials = study.get_trials(deepcopy=False)
    except PriorError:
        raise
    except KeyError:
        raise PriorError(f"--study-name: must name a study of the storage, but got {study_name!r}") from None
    except Exception as error:  # a malformed URL, a database it cannot open
        raise PriorError(f"the Optuna storage must be readable, but {str(error).splitlines()[0]}") from None
    terms = experiment.objective.terms
    if len(study.directions) != len(terms):
        raise PriorError(
            f"study {study_name}: must have the experiment's {len(terms)} objectives, but has "
            f"{len(study.directions)}"
        )
    states = {TrialState.COMPLETE: "Succeeded", TrialState.PRUNED: "EarlyStopped", TrialState.FAIL: "Failed"}
    entries = []
    for trial in trials:
        if trial.state not in states:
            continue  # running or waiting: not finished anywhere
        attributes = trial.user_attrs
        metrics = {k.removeprefix("metric:"): v for k, v in attributes.items() if k.startswith("metric:")}
        metrics.update(zip((t.metric for t in terms), trial.values or (), strict=False))
        steps = sorted(trial.intermediate_values.items())
        entry: dict[str, Any] = {
            "parameters": dict(trial.params),
            "metrics": metrics,
            "status": attributes.get("status", states[trial.state]),
            "started": _aware(trial.datetime_start),
            "finished": _aware(trial.datetime_complete),
            "series": {terms[0].metric: [[None, value] for _, value in steps]} if steps else None,
        }
        if "status" in attributes or "reason" in attributes:  # written by export: its reason, even none
            entry["reason"] = attributes.get("reason", "")
        entries.append((f"trial {trial.number}", entry))
    if not entries:
        raise PriorError(f"study {study_name}: must hold at least one finished trial, but holds none")
    return [_record(experiment, where, entry, n) for n, (where, entry) in enumerate(entries)]


def _aware(moment: datetime | None) -> str | None:
    """Optuna's naive local time as ISO 8601 with its offset."""
    return None if moment is None else moment.astimezone().isoformat()


def _json(text: str) -> list[tuple[str, Mapping[str, Any]]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PriorError(
            f"the file must be JSON, but it is not ({error.msg} at line {error.lineno})"
        ) from None
    trials = document
    if isinstance(document, dict):  # {"trials": [...]}, or `report --json`'s {"results": [...]}
        trials = (
            document.get("trials") if isinstance(document.get("trials"), list) else document.get("results")
        )
    if not isinstance(trials, list):
        raise PriorError(
            'the file must hold a list of trials (or {"trials": [...]}, or report --json\'s results)'
        )
    result: list[tuple[str, Mapping[str, Any]]] = []
    for index, entry in enumerate(trials):
        if not isinstance(entry, dict) or not isinstance(entry.get("parameters"), dict):
            raise PriorError(f'trials[{index}]: must be an object with "parameters", but got {entry!r}')
        result.append((f"trials[{index}]", entry))
    return result


def _csv(text: str) -> list[tuple[str, Mapping[str, Any]]]:
    """Rows of a CSV file: a header of parameter names, metric names and an optional
    ``status``; comma, semicolon or tab separated (a spreadsheet's locale may use either)."""
    header = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=header.count)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if reader.fieldnames:
        reader.fieldnames = [name.strip() for name in reader.fieldnames]
    result: list[tuple[str, Mapping[str, Any]]] = []
    for row_number, row in enumerate(reader, start=2):  # row 1 is the header
        if None in row:  # DictReader's place for the fields past the header's
            fields = len(reader.fieldnames or ()) + len(row[None])
            raise PriorError(
                f"row {row_number}: must have the header's {len(reader.fieldnames or ())} fields, "
                f"but it has {fields}"
            )
        metrics = {k: v for k, v in row.items() if k not in _COLUMNS and v not in (None, "")}
        entry: dict[str, Any] = {"row": metrics, "status": row.get("status") or None}
        for column in ("started", "finished", "reason"):
            if column in row:
                entry[column] = row[column]
        if row.get("series"):
            try:
                entry["series"] = json.loads(row["series"])
            except json.JSONDecodeError as error:
                raise PriorError(
                    f"row {row_number}: series: must be JSON, but it is not ({error.msg})"
                ) from None
        result.append((f"row {row_number}", entry))
    return result


def _record(experiment: Experiment, where: str, entry: Mapping[str, Any], number: int) -> TrialRecord:
    names = {p.name for p in experiment.parameters}
    if "row" in entry:  # a CSV row: parameters and metrics side by side
        raw = dict(entry["row"])
        parameters = {name: raw.pop(name) for name in list(raw) if name in names}
        metric_values = raw
    else:
        parameters = _mapping(entry.get("parameters"), f"{where}: parameters")
        metric_values = _mapping(entry.get("metrics") or {}, f"{where}: metrics")
    space = SearchSpace(experiment.parameters)
    typed = {}
    for parameter in experiment.parameters:
        if parameter.name not in parameters:
            raise PriorError(f"{where}: {parameter.name}: must be given, but got nothing")
        raw = parameters.pop(parameter.name)
        typed[parameter.name] = _value(parameter, raw, where)
        rule = space.violation(parameter.name, typed[parameter.name])
        if rule is not None:
            raise PriorError(f"{where}: {parameter.name}: {rule}, but got {raw!r}")
    if parameters:
        raise PriorError(
            f"{where}: {sorted(parameters)[0]}: must be a parameter of the experiment, "
            "but got an unknown name"
        )
    metrics = {}
    for name, value in metric_values.items():
        if name not in experiment.objective.metrics:
            raise PriorError(
                f"{where}: {name}: must be a metric of the experiment "
                f"({', '.join(experiment.objective.metrics)}), but got an unknown name"
            )
        metrics[name] = _finite(value, f"{where}: {name}")
    status: Any = entry.get("status")
    objectives = [term.metric for term in experiment.objective.terms]
    if status is None:
        status = "Succeeded" if all(m in metrics for m in objectives) else None
    if status not in _STATUSES:
        raise PriorError(
            f"{where}: status: must be one of {', '.join(_STATUSES)} (or give the objective "
            f"{', '.join(objectives)}), but got {status!r}"
        )
    values = tuple(metrics[m] for m in objectives) if status == "Succeeded" else None
    if status == "Succeeded" and any(m not in metrics for m in objectives):
        raise PriorError(
            f"{where}: a Succeeded trial must report {', '.join(objectives)}, but got {sorted(metrics)}"
        )
    reason = entry["reason"] if entry.get("reason") is not None else "imported prior data"
    if not isinstance(reason, str):
        raise PriorError(f"{where}: reason: must be text, but got {reason!r}")
    return TrialRecord(
        name=trial_name(experiment.name, number),
        number=number,
        parameters=typed,
        status=status,
        values=values,
        metrics=metrics,
        series=_series(experiment, entry.get("series"), where),
        started=_moment(entry.get("started"), f"{where}: started"),
        finished=_moment(entry.get("finished"), f"{where}: finished"),
        reason=reason,
        origin="import",
    )


def _moment(raw: Any, label: str) -> str | None:
    """An ISO 8601 time with its offset (as exports write them), or None when not given."""
    if raw in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PriorError(f"{label}: must be an ISO 8601 time with its offset, but got {raw!r}")
    return moment.isoformat()


def _series(experiment: Experiment, raw: Any, where: str) -> dict[str, list[tuple[str | None, float]]]:
    """Each metric's reported values (``{"loss": [[time or null, value], ...]}``), or none."""
    if raw in (None, {}):
        return {}
    series = _mapping(raw, f"{where}: series")
    result: dict[str, list[tuple[str | None, float]]] = {}
    for name, points in series.items():
        label = f"{where}: series.{name}"
        if name not in experiment.objective.metrics:
            raise PriorError(f"{label}: must be a metric of the experiment, but got an unknown name")
        if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
            raise PriorError(f"{label}: must be a list of [time or null, value] pairs, but got {points!r}")
        result[str(name)] = [
            (None if p[0] is None else _moment(p[0], label), _finite(p[1], label)) for p in points
        ]
    return result


def _value(parameter: Parameter, raw: Any, where: str) -> Any:
    label = f"{where}: {parameter.name}"
    if parameter.type == "categorical":
        return str(raw)
    number = _finite(raw, label)
    if parameter.type == "int" or (
        parameter.type == "discrete"
        and float(number).is_integer()
        and any(isinstance(v, int) for v in parameter.values)
    ):
        if not number.is_integer():
            raise PriorError(f"{label}: must be a whole number, but got {raw!r}")
        return int(number)
    return number


def _finite(raw: Any, label: str) -> float:
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise PriorError(f"{label}: must be a number, but got {raw!r}") from None
    if not math.isfinite(number) or isinstance(raw, bool):
        raise PriorError(f"{label}: must be a finite number, but got {raw!r}")
    return number


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PriorError(f"{where}: must be an object of name: value, but got {value!r}")
    return dict(value)


def export_trials(experiment: Experiment, trials: Iterable[TrialRecord], path: str | Path, kind: str) -> int:
    """Writes the finished trials as ``kind`` (``json`` or ``csv``), in the formats
    :func:`read_prior_trials` reads; returns how many (active trials cannot be imported and
    are left out)."""
    finished = [t for t in trials if t.status in _STATUSES]
    documents = [_exported(t) for t in finished]
    if kind == "json":
        text = json.dumps({"trials": documents}, indent=1) + "\n"
    else:
        metrics = list(experiment.objective.metrics)
        header = [p.name for p in experiment.parameters] + metrics + list(_COLUMNS)
        stream = io.StringIO()
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        for document in documents:
            writer.writerow(
                [_cell(document["parameters"].get(p.name)) for p in experiment.parameters]
                + [_cell(document["metrics"].get(m)) for m in metrics]
                + [
                    document["status"],
                    document["name"],
                    document["started"] or "",
                    document["finished"] or "",
                ]
                + [document["reason"], json.dumps(document["series"]) if document["series"] else ""]
            )
        text = stream.getvalue()
    Path(path).write_text(text, encoding="utf-8")
    return len(finished)


def _exported(trial: TrialRecord) -> dict[str, Any]:
    return {
        "name": trial.name,
        "parameters": trial.parameters,
        "metrics": trial.metrics,
        "status": trial.status,
        "started": trial.started,
        "finished": trial.finished,
        "reason": trial.reason,
        "series": {name: [list(point) for point in points] for name, points in trial.series.items()},
    }


def _cell(value: Any) -> str:
    # repr keeps every digit of a float; csv quotes what needs it.
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)

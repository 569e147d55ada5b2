"""Pipeline size: compiled bytes for 5, 10, 25, 50 and 100 rounds, raw and compacted.

The experiment is ``examples/quadratic/experiment.yaml`` (4 trials a round). For each round
count the pipeline is built with ``pipelines.loop.build_pipeline(experiment, rounds=N)``,
compiled with ``compile_pipeline`` (raw: what the KFP compiler writes) and compacted with
``pipelines.compact.compact_file`` (what ``hpo-kfp compile`` and ``hpo-kfp run --local``
use). Bytes per round is the slope of a least-squares line through the points; linearity is
its R² and the largest gap between a point and the line.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

ROUNDS = (5, 10, 25, 50, 100)
EXPERIMENT = C.ROOT / "examples" / "quadratic" / "experiment.yaml"


def fit(xs: list[int], ys: list[int]) -> dict[str, float]:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    intercept = my - slope * mx
    predicted = [intercept + slope * x for x in xs]
    ss_res = sum((y - p) ** 2 for y, p in zip(ys, predicted, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    worst = max(abs(y - p) / y for y, p in zip(ys, predicted, strict=True))
    return {
        "slope": slope,
        "intercept": intercept,
        "r2": 1 - ss_res / ss_tot if ss_tot else 1.0,
        "worst_relative_gap": worst,
    }


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", nargs="+", type=int, default=list(ROUNDS))
    p.add_argument("--experiment", default=str(EXPERIMENT))
    args = p.parse_args()
    if args.quick:
        args.rounds = [2, 4, 8]
    from hpo_kfp.pipeline.compact import compact_file
    from hpo_kfp.pipeline.loop import build_pipeline, compile_pipeline
    from hpo_kfp.spec import load_experiment

    info = C.machine()
    started = time.monotonic()
    experiment = load_experiment(args.experiment)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rounds in args.rounds:
            path = Path(tmp) / f"p{rounds}.yaml"
            t0 = time.perf_counter()
            raw = compile_pipeline(build_pipeline(experiment, rounds=rounds), path)
            t1 = time.perf_counter()
            compacted = compact_file(path)
            t2 = time.perf_counter()
            rows.append(
                {
                    "rounds": rounds,
                    "raw_bytes": raw,
                    "compact_bytes": compacted,
                    "compile_s": t1 - t0,
                    "compact_s": t2 - t1,
                }
            )
            C.log(f"{rounds} rounds: raw {raw} B, compacted {compacted} B")
    elapsed = time.monotonic() - started
    info["loadavg_end"] = os.getloadavg()[0]
    xs = [r["rounds"] for r in rows]
    raw_fit = fit(xs, [r["raw_bytes"] for r in rows])
    compact_fit = fit(xs, [r["compact_bytes"] for r in rows])
    table_rows = [
        [
            r["rounds"],
            round(r["raw_bytes"] / 1000, 1),
            round(r["compact_bytes"] / 1000, 1),
            f"{100 * r['compact_bytes'] / r['raw_bytes']:.0f}%",
            round(r["raw_bytes"] / r["rounds"] / 1000, 2),
            round(r["compact_bytes"] / r["rounds"] / 1000, 2),
            r["compile_s"],
            r["compact_s"],
        ]
        for r in rows
    ]
    text = C.table(
        [
            "rounds",
            "raw KB",
            "compacted KB",
            "compacted/raw",
            "raw KB/round",
            "compacted KB/round",
            "compile s",
            "compact s",
        ],
        table_rows,
    )
    text += (
        f"\n\nLeast-squares line (KB = 1000 bytes): raw {raw_fit['intercept'] / 1000:.1f} KB + "
        f"{raw_fit['slope'] / 1000:.2f} KB/round (R² {raw_fit['r2']:.6f}, largest gap to the line "
        f"{100 * raw_fit['worst_relative_gap']:.2f}%); compacted {compact_fit['intercept'] / 1000:.1f} KB + "
        f"{compact_fit['slope'] / 1000:.2f} KB/round (R² {compact_fit['r2']:.6f}, largest gap "
        f"{100 * compact_fit['worst_relative_gap']:.2f}%)."
    )
    targets = []
    per_round = compact_fit["slope"] / 1000
    targets.append(
        f"- linear: {'MET' if compact_fit['r2'] > 0.999 else 'MISSED'} (compacted R² {compact_fit['r2']:.6f})"
    )
    targets.append(
        f"- ≤ 8 KB per round: {'MET' if per_round <= 8 else 'MISSED'} (compacted {per_round:.2f} KB/round, "
        f"raw {raw_fit['slope'] / 1000:.2f} KB/round)"
    )
    fifty = next((r for r in rows if r["rounds"] == 50), None)
    if fifty:
        kb = fifty["compact_bytes"] / 1000
        targets.append(
            f"- 50 rounds ≤ 450 KB: {'MET' if kb <= 450 else 'MISSED'} (compacted {kb:.0f} KB, "
            f"{100 * kb / 450:.0f}% of the budget; raw {fifty['raw_bytes'] / 1000:.0f} KB)"
        )
    text += "\n\n### Targets\n\n" + "\n".join(targets)
    C.publish(
        args,
        "pipeline_size",
        info,
        elapsed,
        text,
        experiment=str(args.experiment),
        rows=rows,
        fit={"raw": raw_fit, "compacted": compact_fit},
        targets=targets,
    )
    if args.write:
        shown = Path(args.experiment).resolve()
        with_root = shown.relative_to(C.ROOT) if shown.is_relative_to(C.ROOT) else shown
        body = (
            f"Command: `{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n"
            f"Experiment: `{with_root}`; sizes in KB = 1000 bytes (the target's unit). The compile time "
            "includes building the pipeline object.\n\n" + text
        )
        C.write_section("pipeline_size", "Pipeline size (`pipeline_size.py`)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""API requests per second per running trial: the Kubernetes runner following idle trials.

1, 10 and 100 trials (batch Jobs whose pod runs and has logged one line, then says nothing)
are run at once by ``KubernetesRunner.run_object`` against the project's Kubernetes emulator
(``tests/k8s_emulator``), each size in its own namespace, and the requests each namespace
receives are counted over a window after a warm-up. With ``--before COMMIT`` the same sizes
run at the same time, in other namespaces of the same emulator, by the runner of that commit
(a worktree, in a child process): the two sides share the machine and the server.

The runner's settings are its defaults (``KubernetesSettings()``): log reads every 2 s while
output comes, backing off to ``idle_check_seconds`` while none does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

SIZES = (1, 10, 100)
_JOB = ("batch", "v1", "jobs")
_COMPLETE = {"conditions": [{"type": "Complete", "status": "True", "reason": "Completed"}]}


def run_trials(base_url: str, prefix: str) -> None:
    """Runs every size's trials in namespaces ``{prefix}-{size}`` until their Jobs complete."""
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client

    from hpo_kfp.history import TrialRecord
    from hpo_kfp.runners.kubernetes import KubernetesRunner, KubernetesSettings
    from hpo_kfp.spec import parse_experiment

    configuration = client.Configuration()
    configuration.host = base_url
    configuration.connection_pool_maxsize = 512
    runner = KubernetesRunner(client.ApiClient(configuration), KubernetesSettings(kubernetes_version=None))
    document = C.experiment_document(
        "bench",
        [C.double("lr", 0.01, 0.1)],
        algorithm="random",
        max_trials=200,
        command=["train", "${trialParameters.lr}"],
    )
    experiment = parse_experiment(document)
    jobs = [
        (f"{prefix}-{size}", TrialRecord(name=f"bench-{index:04d}", number=index, parameters={"lr": 0.05}))
        for size in SIZES
        for index in range(size)
    ]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        done = [pool.submit(runner.run_object, experiment, trial, namespace=ns) for ns, trial in jobs]
        for future in done:
            assert future.result().run.succeeded


def play_the_job_controller(k8s: Any, namespaces: list[str], stop: threading.Event) -> None:
    """Gives every new Job a running pod that has logged one line."""
    seen: set[tuple[str, str]] = set()
    while not stop.wait(0.2):
        for namespace in namespaces:
            for job in k8s.list(*_JOB, namespace):
                name = job["metadata"]["name"]
                if (namespace, name) in seen:
                    continue
                seen.add((namespace, name))
                pod = f"{name}-pod"
                labels = job["spec"]["template"]["metadata"]["labels"]
                k8s.create_pod(namespace, pod, labels=labels, containers=("main",), owner=job)
                k8s.set_container_state(namespace, pod, "main", {"running": {}})
                k8s.set_pod_log(namespace, pod, "epoch=1 loss=0.5\n", container="main")


def count(k8s: Any, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in k8s.requests():
        if request.namespace == namespace:
            what = f"{request.verb} {request.plural}" + (
                f"/{request.subresource}" if request.subresource else ""
            )
            counts[what] = counts.get(what, 0) + 1
    return counts


def main() -> int:
    parser = C.parser(__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=75.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds counted")
    parser.add_argument("--before", help="also run the runner of this commit, side by side")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: run one side's trials
    args = parser.parse_args()
    if args.side:
        base_url, prefix = args.side.split(" ")
        run_trials(base_url, prefix)
        return 0
    if args.quick:
        args.warmup, args.window = 3.0, 3.0
    sys.path.insert(0, str(C.ROOT))  # this checkout's hpo_kfp and emulator (a --side gets PYTHONPATH)
    from tests.k8s_emulator import K8sEmulator

    info = C.machine()
    started = time.monotonic()
    k8s = K8sEmulator().start()
    sides = ["after"] + (["before"] if args.before else [])
    namespaces = [f"{side}-{size}" for side in sides for size in SIZES]
    stop = threading.Event()
    controller = threading.Thread(target=play_the_job_controller, args=(k8s, namespaces, stop), daemon=True)
    controller.start()
    children = []
    checkout = (
        C.worktree(args.before, Path("/tmp/hpo-kfp-before")) if args.before else contextlib.nullcontext()
    )
    with checkout as before:
        if before is not None:
            env = {**os.environ, "PYTHONPATH": str(before)}
            script = [sys.executable, str(Path(__file__).resolve()), "--side", f"{k8s.base_url} before"]
            children.append(subprocess.Popen(script, env=env, cwd=before))
        after = threading.Thread(target=run_trials, args=(k8s.base_url, "after"), daemon=True)
        after.start()
        time.sleep(args.warmup)
        first = {ns: count(k8s, ns) for ns in namespaces}
        time.sleep(args.window)
        last = {ns: count(k8s, ns) for ns in namespaces}
        for namespace in namespaces:
            for job in k8s.list(*_JOB, namespace):
                k8s.set_status(*_JOB, namespace, job["metadata"]["name"], _COMPLETE)
        after.join(timeout=120)
        for child in children:
            assert child.wait(timeout=120) == 0, "the before side failed"
    stop.set()
    k8s.stop()
    rows = []
    results: dict[str, Any] = {}
    for side in sides:
        for size in SIZES:
            namespace = f"{side}-{size}"
            window = {k: last[namespace].get(k, 0) - first[namespace].get(k, 0) for k in last[namespace]}
            per_second = sum(window.values()) / args.window / size
            results[namespace] = {"per_trial_per_second": per_second, "requests": window}
            detail = ", ".join(f"{k} {v}" for k, v in sorted(window.items()) if v)
            rows.append([side, size, f"{per_second:.3f}", detail])
    text = C.table(["runner", "trials", "requests/s per trial", f"requests in {args.window:g} s"], rows)
    elapsed = time.monotonic() - started
    C.publish(args, "runner_requests", info, elapsed, text, results=results)
    if args.write:
        body = (
            f"Command: `{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n"
            f"Idle trials (a running pod that logged one line), counted from {args.warmup:g} s after "
            f"the start for {args.window:g} s; `before` is commit {args.before or '(not run)'} side by side.\n\n"
            f"{text}\n"
        )
        C.write_section(
            "runner_requests", "Kubernetes runner: requests per running trial (`runner_requests.py`)", body
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``submit`` (one run on a KFP cluster), ``schedule`` (a recurring run), ``sweep``, and
``generic-pipeline`` (the uploadable pipeline, compiled for an image of the user's)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from hpo_kfp.cli._common import (
    add_store_options,
    add_store_secret_option,
    add_timing_options,
    namespace_argument,
    read_experiment,
    store_url,
    type_prefix,
    with_timings,
)
from hpo_kfp.errors import InputError, UsageError
from hpo_kfp.runtime import RUNTIME_IMAGE
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.store import CLUSTER_STORE, LOCAL_STORE
from hpo_kfp.submit import (
    ClusterAccess,
    check_kube_context,
    schedule,
    schedule_end,
    schedule_timing,
    submit,
)

__all__ = ["register"]


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="Katib Experiment YAML")
    parser.add_argument("--host", help="KFP API URL (or use --kube-context)")
    parser.add_argument(
        "--namespace",
        type=namespace_argument("--namespace"),
        help="KFP namespace (multi-user profile) to run in",
    )
    parser.add_argument("--token", help="bearer token for the KFP API (default: $KFP_TOKEN)")
    parser.add_argument(
        "--kube-context", help="reach the cluster with this kube config context's credentials"
    )
    parser.add_argument("--sa-token", help="path of a projected service-account token (inside a cluster)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the API's TLS certificate")
    parser.add_argument(
        "--image", default=RUNTIME_IMAGE, help=f"image of every step (default: {RUNTIME_IMAGE})"
    )
    parser.add_argument(
        "--trial-namespace",
        default="",
        type=namespace_argument("--trial-namespace"),
        help="namespace of trial objects (default: the run's)",
    )
    add_timing_options(parser)
    add_store_options(parser, CLUSTER_STORE, namespace=False)
    add_store_secret_option(parser)
    add_shape_options(parser)


def add_shape_options(parser: argparse.ArgumentParser) -> None:
    """``--sync``: synchronous rounds instead of asynchronous lanes."""
    parser.add_argument(
        "--sync",
        action="store_true",
        help="run trials in synchronous rounds of parallelTrialCount (reproducible; slower when trials "
        "differ in length); hyperband always does",
    )


def register(commands: Any) -> None:
    run = commands.add_parser("submit", help="compile and start one tuning run on a KFP cluster")
    _cluster_options(run)
    run.add_argument("--run-name", help="the run's name (default: the experiment's)")
    run.add_argument(
        "--trials-per-run",
        type=int,
        default=0,
        metavar="N",
        help="new trials the run may start (default: every trial the experiment has left)",
    )
    run.set_defaults(handler=_submit)

    recurring = commands.add_parser(
        "schedule", help="a recurring run that adds N trials to the experiment each time"
    )
    _cluster_options(recurring)
    timing = recurring.add_mutually_exclusive_group(required=True)
    timing.add_argument("--cron", help="cron expression, e.g. '0 2 * * *' (nightly at 02:00)")
    timing.add_argument("--every", help="interval, e.g. 6h, 1d")
    recurring.add_argument("--trials-per-run", type=int, required=True, help="new trials each run adds")
    recurring.add_argument("--name", help="the recurring run's name")
    end = recurring.add_mutually_exclusive_group()
    end.add_argument(
        "--until",
        help="no run starts after this time: an RFC 3339 time (2027-01-31T18:00:00Z) or a date "
        "(2027-01-31: the end of that day, UTC); default: never",
    )
    end.add_argument(
        "--runs", type=int, metavar="N", help="start N runs, then stop (with --every); default: no end"
    )
    recurring.set_defaults(handler=_schedule)

    sweep = commands.add_parser(
        "sweep", help="delete trial objects a dead step left on the cluster (by the experiment's label)"
    )
    sweep.add_argument("file", help="Katib Experiment YAML")
    sweep.add_argument(
        "--namespace",
        default="",
        type=namespace_argument("--namespace"),
        help="the trials' namespace (default: the spec's, else the kube context's)",
    )
    sweep.add_argument("--kube-context", help="reach the cluster with this kube config context's credentials")
    sweep.add_argument(
        "--all", action="store_true", help="also delete objects of trials the store says are still running"
    )
    add_store_options(sweep, LOCAL_STORE, namespace=False)
    sweep.set_defaults(handler=_sweep)

    generic = commands.add_parser(
        "generic-pipeline",
        help="compile the generic uploadable pipeline (the experiment is a run parameter) for an image",
    )
    generic.add_argument("-o", "--output", required=True, help="where to write the pipeline YAML")
    generic.add_argument(
        "--image", default=RUNTIME_IMAGE, help=f"image of every step (default: {RUNTIME_IMAGE})"
    )
    generic.set_defaults(handler=_generic_pipeline)


def _generic_pipeline(args: argparse.Namespace) -> int:
    from hpo_kfp.pipeline.compact import compact_file
    from hpo_kfp.pipeline.generic import build_generic_pipeline
    from hpo_kfp.pipeline.tasks import compile_pipeline

    image = args.image
    if not image or any(c.isspace() for c in image):
        raise UsageError(f"--image: must be an image reference without spaces, but got {image!r}")
    path = Path(args.output)
    # The same build as the committed pipelines/hpo_experiment.yaml (hpo_kfp.pipeline.publish).
    compile_pipeline(build_generic_pipeline(base_image=image), path)
    compact_file(path)
    print(f"{path}: the generic pipeline, every step in {image} ({path.stat().st_size} bytes)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from hpo_kfp.history import ACTIVE
    from hpo_kfp.runners.kubernetes import KubernetesRunner
    from hpo_kfp.store import ExperimentKey, open_store

    experiment = read_experiment(args)
    template = experiment.trial_template
    if template is None or template.trial_spec is None:
        raise UsageError(
            f"{args.file}: spec.trialTemplate.trialSpec: must be inline to know the trials' kind, "
            "but got nothing"
        )
    if args.kube_context:
        check_kube_context(args.kube_context)
    namespace = args.namespace or experiment.namespace or _kube_namespace(args.kube_context)
    keep: list[str] = []
    if not args.all:
        store = open_store(store_url(args), type_prefix=type_prefix(args))
        history = store.history(ExperimentKey.of(experiment, namespace))
        keep = [trial.name for trial in history.trials if trial.status in ACTIVE]
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not args.kube_context:
        runner = KubernetesRunner.from_environment()
    else:
        from kubernetes import client, config

        # Read $KUBECONFIG now: the client reads it once, when it is first imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), context=args.kube_context)
        runner = KubernetesRunner(client.ApiClient())
    args.error_source = "sweep"
    deleted = runner.sweep(
        api_version=str(template.trial_spec.get("apiVersion", "")),
        kind=str(template.trial_spec.get("kind", "")),
        namespace=namespace,
        experiment=experiment.name,
        keep=keep,
    )
    kept = f"; kept {len(keep)} of trials still running" if keep else ""
    print(f"{experiment.name}: deleted {len(deleted)} trial objects in {namespace}{kept}")
    for name in sorted(deleted):
        print(f"  {name}")
    return 0


def _kube_namespace(context: str | None) -> str:
    """The namespace of the kube config context (or of this pod, inside a cluster)."""
    from kubernetes import config

    pod = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if os.environ.get("KUBERNETES_SERVICE_HOST") and pod.is_file():
        return pod.read_text(encoding="utf-8").strip()
    try:
        contexts, current = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
    except config.ConfigException:
        return "default"
    chosen = next((c for c in contexts if c["name"] == context), current) or {}
    return str(chosen.get("context", {}).get("namespace") or "default")


def _access(args: argparse.Namespace) -> ClusterAccess:
    if not args.host and not args.kube_context:
        raise UsageError("--host: the KFP API URL is needed (or --kube-context), but got nothing")
    return ClusterAccess(
        host=args.host,
        namespace=args.namespace,
        token=args.token or os.environ.get("KFP_TOKEN"),
        kube_context=args.kube_context,
        service_account_token=args.sa_token,
        verify_ssl=not args.insecure,
    )


def _settings(args: argparse.Namespace) -> StepSettings:
    settings = StepSettings(
        runner="kubernetes",
        store=store_url(args, "kubernetes"),
        type_prefix=type_prefix(args),
        namespace=args.trial_namespace,
        store_secret=args.store_secret,
    )
    return with_timings(settings, args)


def _submit(args: argparse.Namespace) -> int:
    if args.trials_per_run < 0:
        raise UsageError(f"--trials-per-run: must be 0 (no limit) or more, but got {args.trials_per_run}")
    experiment = read_experiment(args)
    access = _access(args)
    args.error_source = args.host
    submitted = submit(
        experiment,
        access,
        _settings(args),
        image=args.image,
        run_name=args.run_name,
        synchronous=args.sync,
        trials_per_run=args.trials_per_run,
    )
    print(f"{experiment.name}: run {submitted.run_id} started: {submitted.url}")
    print(f"{experiment.name}: {submitted.plan.describe()}")
    return 0


def _schedule(args: argparse.Namespace) -> int:
    experiment = read_experiment(args)
    if args.trials_per_run < 1:
        raise UsageError(f"--trials-per-run: must be at least 1, but got {args.trials_per_run}")
    try:  # checked before the cluster is contacted
        until = schedule_end(args.until) if args.until is not None else None
        schedule_timing(cron=args.cron, every=args.every, until=until, runs=args.runs)
    except InputError as error:
        raise UsageError(str(error)) from None
    access = _access(args)
    args.error_source = "schedule"
    recurring = schedule(
        experiment,
        access,
        _settings(args),
        image=args.image,
        trials_per_run=args.trials_per_run,
        cron=args.cron,
        every=args.every,
        name=args.name,
        synchronous=args.sync,
        until=until,
        runs=args.runs,
    )
    when = f"cron {args.cron!r}" if args.cron else f"every {args.every}"
    if args.runs is not None:
        when += f", {args.runs} runs"
    elif until is not None:
        when += f", until {until}"
    print(
        f"{experiment.name}: recurring run {recurring} created ({when}, "
        f"{args.trials_per_run} trials per run, one run at a time, caching off)"
    )
    return 0

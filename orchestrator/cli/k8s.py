"""`orchestrator k8s render|submit|validate|status|logs`: the same CONFIG as a KubeRay RayJob.

`render` needs nothing but this package; `submit`, `status` and `logs` drive `kubectl`
(`orchestrator.k8s.kubectl`) against the current kube context. `validate` checks manifests
edited by hand; `render` and `submit` check what they make before writing or applying it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from orchestrator.config import load_config
from orchestrator.errors import OrchestratorError
from orchestrator.k8s.cel_rules import CheckUnavailable
from orchestrator.k8s.check import (
    CRDS_ENV,
    check_files,
    check_rendered,
    crd_folder,
    unchecked_note,
)
from orchestrator.k8s.kubectl import follow, job_status, kubectl, namespace_arguments
from orchestrator.k8s.render import (
    DEFAULT_IMAGE,
    PROFILES,
    RenderOptions,
    job_name_for,
    render,
    to_yaml,
)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `k8s render|submit|validate|status|logs` to the CLI's subparsers."""
    k8s = commands.add_parser(
        "k8s", parents=[common], help="run a config on Kubernetes as a KubeRay RayJob"
    )
    sub = k8s.add_subparsers(title="k8s commands")

    render_cmd = sub.add_parser(
        "render", parents=[common], help="write the RayJob and its ConfigMap as YAML",
        description="Render CONFIG as a ConfigMap + RayJob (ray.io/v1). Without -o, print "
        "the YAML (pipe it to `kubectl apply -f -`).",
    )
    _add_render_arguments(render_cmd)
    render_cmd.add_argument("-o", "--output", type=Path, help="folder to write JOB.yaml into")
    render_cmd.set_defaults(handler=_render)

    submit = sub.add_parser(
        "submit", parents=[common], help="render, `kubectl apply`, and follow the job"
    )
    _add_render_arguments(submit)
    submit.add_argument("--no-follow", action="store_true", help="apply and return at once")
    submit.set_defaults(handler=_submit)

    validate = sub.add_parser(
        "validate", parents=[common], help="check manifests against the KubeRay CRDs and "
        "Kubernetes' schemas, offline",
        description="Check FILEs (multi-document YAML) the way the API server and the KubeRay "
        "operator would: schemas with defaults, unknown fields, CEL rules and the rules they "
        "leave to the operator. One line per problem; exit 2 if there is any.",
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _add_crds_argument(validate)
    validate.set_defaults(handler=_validate)

    status = sub.add_parser("status", parents=[common], help="a RayJob's status")
    _add_job_arguments(status)
    status.set_defaults(handler=_status)

    logs = sub.add_parser("logs", parents=[common], help="a RayJob's driver logs")
    _add_job_arguments(logs)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(handler=_logs)


def _add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="an experiment YAML config")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides such as ray.num_workers=4")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu-dev")
    parser.add_argument("--image", default=DEFAULT_IMAGE,
                        help="the image built from k8s/Dockerfile, pushed to your registry")
    parser.add_argument("--namespace", help="Kubernetes namespace (default: kubectl's)")
    parser.add_argument("--storage-path", default=RenderOptions.storage_path,
                        help="Ray Train checkpoints: a path on the shared PVC or s3://BUCKET/P")
    parser.add_argument("--job-name", help="RayJob name (default: the config's name)")
    _add_crds_argument(parser)


def _add_crds_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--crds", type=Path, default=None, metavar="DIR",
        help=f"folder of the KubeRay CRD YAML files (default: ${CRDS_ENV})",
    )


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="the RayJob name (`k8s render` prints it)")
    parser.add_argument("--namespace", help="Kubernetes namespace (default: kubectl's)")


def render_from_args(args: argparse.Namespace) -> list[dict[str, Any]]:
    for item in args.overrides:
        if "=" not in item:
            raise OrchestratorError(
                f"{item!r} is not a key=value override; give one CONFIG file, then overrides"
            )
    config = load_config(args.config, args.overrides)
    options = RenderOptions(
        profile=args.profile, image=args.image, namespace=args.namespace,
        storage_path=args.storage_path, job_name=args.job_name or job_name_for(config.name),
    )
    return render(config, options)


def checked_render(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rendered manifests, refused in one line when the checks find a problem.

    A render that fails the checks (a `--image x:latest`, a name KubeRay refuses) is never
    written or applied. Without CRDs the RayJob's schema is not checked: say so on stderr.
    """
    manifests = render_from_args(args)
    crd_dir = crd_folder(args.crds)
    try:
        found = check_rendered(manifests, crd_dir)
    except CheckUnavailable as exc:
        print(f"note: the rendered manifests were not checked: {exc}", file=sys.stderr)
        return manifests
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise OrchestratorError(f"the rendered manifests are not valid: {found[0]}{more}")
    note = unchecked_note(manifests, crd_dir)
    if note:
        print(note, file=sys.stderr)
    return manifests


def _validate(args: argparse.Namespace) -> int:
    """One line per problem on stderr and exit 2; one summary line and 0 when all are valid."""
    crd_dir = crd_folder(args.crds)
    report = check_files(args.files, crd_dir)
    for line in report.lines:
        print(line, file=sys.stderr)
    if report.lines:
        return 2
    against = f"the KubeRay CRDs in {crd_dir}" if crd_dir else "Kubernetes' schemas"
    print(f"{report.objects} objects in {report.files} files are valid (checked against "
          f"{against} and the lint rules)")
    return 0


def _render(args: argparse.Namespace) -> int:
    manifests = checked_render(args)
    text = to_yaml(manifests)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    job_name = manifests[-1]["metadata"]["name"]
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"{job_name}.yaml"
    path.write_text(text)
    print(f"wrote {path} (RayJob {job_name}); apply it with `kubectl apply -f {path}`")
    return 0


def _submit(args: argparse.Namespace) -> int:
    manifests = checked_render(args)
    job = manifests[-1]["metadata"]["name"]
    kubectl(["apply", "-f", "-"], args.namespace, stdin=to_yaml(manifests))
    print(f"submitted RayJob {job}; follow it with `orchestrator k8s logs {job} -f`")
    if args.no_follow:
        return 0
    return follow(job, args.namespace)


def _status(args: argparse.Namespace) -> int:
    status = job_status(args.job, args.namespace)
    for key in ("jobDeploymentStatus", "jobStatus", "rayClusterName", "dashboardURL",
                "startTime", "endTime", "failed", "succeeded", "message"):
        if key in status:
            print(f"{key}: {status[key]}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    """The submitter Job (named like the RayJob) tails the driver's logs."""
    command = ["logs", f"job/{args.job}"] + (["--follow"] if args.follow else [])
    return subprocess.call(["kubectl", *namespace_arguments(args.namespace), *command])



"""MLflow: where runs go, one run per launch, and its status at the end.

The tracking URI is always explicit and absolute: Ray workers run in another directory,
so a relative sqlite path would land somewhere else, and MLflow 3 refuses `./mlruns`.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import DatasetInput, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from orchestrator.config import TrackingConfig
from orchestrator.errors import OrchestratorError

T = TypeVar("T")

DEFAULT_STORE = "mlflow.db"
# MLflow 3's UI opens an experiment in its GenAI view (traces) unless the experiment says it
# is model training: then runs, charts and artifacts come first.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = {EXPERIMENT_KIND_TAG: "custom_model_development"}


def resolve_tracking_uri(config: TrackingConfig) -> str:
    """The configured URI made absolute; else $MLFLOW_TRACKING_URI (how Kubernetes jobs get
    it, from a Secret); else a sqlite store in the working directory."""
    default = f"sqlite:///{Path.cwd() / DEFAULT_STORE}"
    uri = config.uri or os.environ.get("MLFLOW_TRACKING_URI") or default
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{(Path.cwd() / uri[len('sqlite:///'):]).resolve()}"
    elif "://" not in uri:
        raise OrchestratorError(
            f"tracking.uri {uri!r} is not a URI; use sqlite:///PATH/mlflow.db or "
            "http://HOST:PORT of an MLflow server"
        )
    return uri


def artifact_root(uri: str) -> str | None:
    """For a sqlite store, artifacts live next to the database, where `orchestrator ui`
    finds them; a server decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return None


# How MLflow clients authenticate to a tracking server; Ray workers need them too.
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
)


def credentials() -> dict[str, str]:
    """The MLflow credential variables set here, to hand to the training workers."""
    return {name: os.environ[name] for name in CREDENTIAL_VARIABLES if name in os.environ}


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail before any cluster starts when a tracking server does not answer, or does not
    take our credentials."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            pass
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OrchestratorError(
            f"cannot reach the MLflow tracking server at {uri} ({reason}); start it "
            "(`orchestrator ui` or `mlflow server`) or set tracking.uri to a sqlite:/// store"
        ) from None
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except MlflowException as exc:
        if exc.get_http_status_code() not in (401, 403):
            raise
        given = "no credentials" if not credentials() else "the credentials given"
        raise OrchestratorError(
            f"the MLflow tracking server at {uri} refused {given} "
            f"(HTTP {exc.get_http_status_code()}); set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to an account of that server"
        ) from None


def start_run(uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> str:
    """Create the launch's MLflow run (RUNNING) and return its id."""
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        experiment_id = client.create_experiment(experiment, artifact_location=artifact_root(uri),
                                                 tags=EXPERIMENT_KIND)
    else:
        experiment_id = found.experiment_id
        if EXPERIMENT_KIND_TAG not in found.tags:  # made by an older version, or by hand
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG,
                                      EXPERIMENT_KIND[EXPERIMENT_KIND_TAG])
    return client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id


def log_params(uri: str, run_id: str, params: dict[str, Any]) -> None:
    """Params are the values a run started with: a restarted run (a resumed sweep trial,
    a PBT clone with new values, which go to tags) leaves those it logged before."""
    client = MlflowClient(tracking_uri=uri)
    logged = client.get_run(run_id).data.params
    items = [Param(key, str(value)) for key, value in params.items() if key not in logged]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run_id, params=items[start : start + 100])


def log_artifacts(client: MlflowClient, run_id: str, artifacts: dict[str, Any]) -> None:
    """What a task module made on test (confusion matrix, attention maps, sample pages):
    matplotlib figures as PNGs, strings as text files, under their names."""
    from matplotlib.figure import Figure  # not needed by whoever logs no artifacts

    for name, artifact in artifacts.items():
        if isinstance(artifact, Figure):
            client.log_figure(run_id, artifact, name)
        else:
            client.log_text(run_id, artifact, name)


STORE_BUSY_WAIT_S = 120.0


def through_busy_store(write: Callable[[], T]) -> T:
    """One write to the store, waiting out a busy store for up to STORE_BUSY_WAIT_S.

    A sqlite store stays locked while another process writes, and in a sweep whose trials
    end together on a loaded machine that outlasted MLflow's own 20 s wait: a trial that had
    trained failed, its run left RUNNING."""
    deadline = time.monotonic() + STORE_BUSY_WAIT_S
    while True:
        try:
            return write()
        except MlflowException as exc:
            if exc.error_code != "TEMPORARILY_UNAVAILABLE" or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def log_dataset_input(client: MlflowClient, run_id: str, dataset: DatasetInput) -> None:
    """Link the run to its dataset, a record that the experiment's runs share.

    MLflow's SQL store looks the dataset up and inserts it when missing, two steps apart:
    trials of a sweep that start together can all miss it, and every insert after the first
    breaks the unique key (experiment, name, digest) with BAD_REQUEST. That failed a trial
    before it trained (35 of 120 such calls from 4 processes at once). Tried again, the call
    finds the committed row and only links it; a request bad for any other reason fails
    the second time as it did the first."""
    def log() -> None:
        client.log_inputs(run_id, datasets=[dataset])

    try:
        through_busy_store(log)
    except MlflowException as exc:
        if exc.error_code != "BAD_REQUEST":
            raise
        through_busy_store(log)


def end_run(uri: str, run_id: str, status: str) -> None:
    """FINISHED, FAILED, or KILLED (interrupted: `launch --resume` continues it)."""
    client = MlflowClient(tracking_uri=uri)
    through_busy_store(lambda: client.set_terminated(run_id, status))


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()

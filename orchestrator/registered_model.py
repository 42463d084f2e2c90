"""The best checkpoint as a registered MLflow model that serves, and `models:/` URIs back
to a checkpoint file.

Each launch logs its best checkpoint as an MLflow pyfunc made from code
(`pyfunc_model.py`: nothing pickled; the checkpoint, read weights-only, carries the weights,
vocabulary and config), with a signature and an input example per task. The model becomes
a version of the registered model named after the experiment, and the alias
(`tracking.model_alias`, "best") points at the version whose run scored best on the task's
monitor metric.

Logging stays cheap: it runs at the end of every launch and sweep trial, so the model is
never loaded here (MLflow's `log_model` would load it to validate the input example, and
infer requirements in a subprocess): `pyfunc.save_model` writes the folder, and the client
creates the logged model and the version. Heavy imports (mlflow.pyfunc) are inside functions:
the launching driver imports this module and stays free of torch.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import OrchestratorError
from orchestrator.run_files import CHECKPOINT_FILE, checkpoint_file
from orchestrator.task_metrics import TASK_METRICS

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from orchestrator.config import ExperimentConfig

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
SCORE_TAG = "score"  # a version's run's best monitor value, tagged when it is registered
ALIAS_ATTEMPTS = 20
LOGGED_MODEL_NAME = "model"  # the pyfunc's name among the run's logged models
CHECKPOINT_ARTIFACT = f"artifacts/{CHECKPOINT_FILE}"  # inside the model's folder
# The packages the pyfunc imports, pinned to this install (never inferred: MLflow would
# import the model in a subprocess to find them). rnn-orchestrator brings the rest.
PINNED = ("rnn-orchestrator", "mlflow", "torch", "pytorch-lightning")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))$")
URI_FORMS = "models:/NAME@ALIAS or models:/NAME/VERSION"


@dataclass(frozen=True)
class Serving:
    """What a task's model takes in a request: one column, and predict params whose
    defaults are the matching CLI flags' (`orchestrator translate --beam-size` ...)."""

    column: str
    dtype: str  # MLflow type; `binary` arrives base64-encoded in a JSON request
    params: dict[str, Any] = field(default_factory=dict)


SERVING: dict[str, Serving] = {
    "language_model": Serving("prompt", "string",
                              {"length": 200, "temperature": 0.8, "seed": 0}),
    "sentiment": Serving("text", "string"),
    "translation": Serving("text", "string", {"beam_size": 5}),
    "image_captioning": Serving("image", "binary", {"beam_size": 3}),
    "video_captioning": Serving("video", "binary", {"beam_size": 3}),
    "video_frame_classification": Serving("video", "binary"),
}


def log_best_model(uri: str, run_id: str, config: ExperimentConfig,
                   checkpoint: Path) -> str | None:
    """Log `checkpoint` as the run's pyfunc model; with `tracking.register_model`, register
    it and return the new version (the alias moves to it only if its run is better)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    model_id, location = _log_pyfunc(client, run_id, config, checkpoint)
    if not config.tracking.register_model:
        return None
    name = config.tracking.experiment  # a valid model name (TrackingConfig checks it)
    score = best_score(client, run_id, config.task)
    version = _new_version(client, name, run_id, (model_id, location), config.task, score)
    point_alias_at_best(client, name, config.tracking.model_alias, version, config.task)
    return version


def _log_pyfunc(client: MlflowClient, run_id: str, config: ExperimentConfig,
                checkpoint: Path) -> tuple[str, str]:
    """The pyfunc folder written locally, uploaded as a logged model of the run (READY,
    listed among the run's outputs); returns the logged model's id and artifact location."""
    import mlflow.pyfunc
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name=LOGGED_MODEL_NAME,
                                        source_run_id=run_id, tags={"task": config.task})
    try:
        with _quiet(), tempfile.TemporaryDirectory(prefix="orchestrator-model-") as folder:
            staged = _staged_checkpoint(checkpoint, Path(folder))
            path = Path(folder) / "model"
            mlflow.pyfunc.save_model(
                path, python_model=str(PYFUNC_FILE), artifacts={"checkpoint": str(staged)},
                signature=signature(config.task), input_example=input_example(config),
                pip_requirements=pip_requirements(),
                mlflow_model=Model(artifact_path=logged.artifact_location, run_id=run_id,
                                   model_uuid=logged.model_id, model_id=logged.model_id),
            )
            client.log_model_artifacts(logged.model_id, str(path))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged.model_id, logged.artifact_location


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's INFO lines and its progress bar (for copying one local file) kept out of
    the launch's output while the model is written; both settings are put back after."""
    logger, variable = logging.getLogger("mlflow"), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    level, bar = logger.level, os.environ.get(variable)
    logger.setLevel(logging.WARNING)
    os.environ[variable] = "false"
    try:
        yield
    finally:
        logger.setLevel(level)
        if bar is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = bar


def _staged_checkpoint(checkpoint: Path, folder: Path) -> Path:
    """The checkpoint under the name `resolve_checkpoint` reads: a hard link where the
    file system allows (MLflow refuses symbolic links), else a copy."""
    if checkpoint.name == CHECKPOINT_FILE:
        return checkpoint
    staged = folder / CHECKPOINT_FILE
    try:
        os.link(checkpoint, staged)
    except OSError:
        shutil.copyfile(checkpoint, staged)
    return staged


def signature(task: str) -> Any:
    """The task's request (one named column, the predict params) and answer (a string a
    row), explicit: MLflow would otherwise run the model to infer it."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    serving = SERVING[task]
    params = [ParamSpec(name, "double" if isinstance(value, float) else "long", value)
              for name, value in serving.params.items()]
    return ModelSignature(inputs=Schema([ColSpec(serving.dtype, serving.column)]),
                          outputs=Schema([ColSpec("string")]),
                          params=ParamSchema(params) if params else None)


def input_example(config: ExperimentConfig) -> tuple[Any, dict[str, Any]]:
    """One request row as the run's own prompts (the samples it logged), or a small
    black image or clip; with the default params."""
    import pandas as pd

    serving = SERVING[config.task]
    if serving.dtype == "binary":
        value: Any = _media_example(serving.column)
    else:
        value = config.generate.prompts[0] if config.generate.prompts else "the "
    return pd.DataFrame({serving.column: [value]}), dict(serving.params)


def _media_example(kind: str) -> bytes:
    """A 16-pixel black PNG, or a two-frame black mp4: valid files the model reads."""
    import io

    import numpy as np

    if kind == "video":
        from orchestrator.datasets.video_frames import encode_mp4

        return encode_mp4(np.zeros((2, 16, 16, 3), dtype=np.uint8))
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="PNG")
    return buffer.getvalue()


def pip_requirements() -> list[str]:
    """The installed versions of the packages the pyfunc imports (a local build tag such
    as torch's +cpu dropped: pip cannot resolve it)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in PINNED:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def _new_version(client: MlflowClient, name: str, run_id: str, logged: tuple[str, str],
                 task: str, score: float | None) -> str:
    """A new version of the registered model `name` (created on its first use) from the
    logged model (id, artifact location). The source is the location, not `models:/ID`:
    MLflow's sqlite registry resolves that through the process-wide tracking URI, which
    a launch with `tracking.uri` in its config never sets."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name, description="Best checkpoints of the experiment of the same name "
                "(orchestrator); the alias follows the best run.")
        except MlflowException as exc:  # a sweep trial created it meanwhile
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    model_id, location = logged
    tags = {"task": task} | ({SCORE_TAG: repr(score)} if score is not None else {})
    created = client.create_model_version(name, source=location, run_id=run_id, tags=tags,
                                          model_id=model_id)
    return str(created.version)


def point_alias_at_best(client: MlflowClient, name: str, alias: str, version: str,
                        task: str) -> None:
    """Move `alias` to the version of `task` with the best score (`version`, just made, when
    no version has a score and no version holds the alias yet).

    MLflow has no compare-and-set, and a sweep's trials register at the same moment: two
    writes of one alias at once make one fail (a unique key), and a write decided on an old
    reading can land after a better one. So each run writes, then reads again until what
    it reads is the best of the versions it sees; the last writer sees every version made
    before it, so the alias ends on the best."""
    from mlflow.exceptions import MlflowException

    for _ in range(ALIAS_ATTEMPTS):
        holder = _alias_holder(client, name, alias)
        target = _best_version(client, name, task) or (version if holder is None else None)
        if target is None or target == holder:
            return
        try:
            client.set_registered_model_alias(name, alias, target)
        except MlflowException:  # another run wrote it in the same instant: read again
            time.sleep(random.uniform(0.05, 0.5))
    # the run and its version stand; only the alias may lag
    print(f"could not move the alias {alias!r} of registered model {name!r} in "
          f"{ALIAS_ATTEMPTS} attempts; set it in MLflow's UI", file=sys.stderr)


def _alias_holder(client: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _best_version(client: MlflowClient, name: str, task: str) -> str | None:
    """The version of `task` whose run scored best on the task's monitor metric (the first
    such version on a tie); versions of other tasks and without a score take no part."""
    scored = []
    for found in client.search_model_versions(f"name = '{name}'"):
        if found.tags.get("task") != task:
            continue
        score = _version_score(client, found, task)
        if score is not None:
            scored.append((score, int(found.version)))
    if not scored:
        return None
    sign = -1 if TASK_METRICS[task].mode == "max" else 1
    return str(min(scored, key=lambda item: (sign * item[0], item[1]))[1])


def _version_score(client: MlflowClient, found: ModelVersion, task: str) -> float | None:
    """The score tagged at registration; a version registered before the tag existed is
    scored from its run's history. A version whose run was deleted (a user's verdict on
    the run) or is gone has none, so the alias leaves it."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(found.run_id) if found.run_id else None
        if run is None or run.info.lifecycle_stage == "deleted":
            return None
        if SCORE_TAG in found.tags:
            return float(found.tags[SCORE_TAG])
        return best_score(client, found.run_id, task)
    except MlflowException:
        return None


def best_score(client: MlflowClient, run_id: str, task: str) -> float | None:
    """The run's best value of the task's monitor metric: the epoch its best checkpoint
    (the logged model) comes from, which need not be the last value logged."""
    metrics = TASK_METRICS[task]
    values = [metric.value for metric in client.get_metric_history(run_id, metrics.monitor)
              if not math.isnan(metric.value)]
    if not values:
        return None
    return max(values) if metrics.mode == "max" else min(values)


def resolve_checkpoint(path_or_uri: str | Path) -> Path:
    """The checkpoint file that a path (a .ckpt or a Ray checkpoint folder) or a registered
    model URI names: `models:/NAME@ALIAS`, `models:/NAME/VERSION` in the tracking store
    of $MLFLOW_TRACKING_URI (else ./mlflow.db, as `launch` writes by default)."""
    text = str(path_or_uri)
    if not text.startswith("models:/"):
        return checkpoint_file(path_or_uri)
    match = MODEL_URI.match(text)
    if match is None:
        raise OrchestratorError(f"{text} is not a registered model URI; use {URI_FORMS}")
    from mlflow.tracking import MlflowClient

    uri = _registry_uri(text)
    client = MlflowClient(uri)
    version = _model_version(client, text, match["name"], match["alias"], match["version"])
    return _checkpoint_of(client, uri, text, version)


def _registry_uri(text: str) -> str:
    """Where `models:/` URIs are looked up; a missing local store is an error here, not
    an empty store created in the working directory."""
    from orchestrator.config import TrackingConfig
    from orchestrator.tracking import check_reachable, resolve_tracking_uri

    uri = resolve_tracking_uri(TrackingConfig())
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise OrchestratorError(
            f"{text}: there is no MLflow store at {uri[len('sqlite:///'):]}; run the command "
            "where `orchestrator launch` ran, or set MLFLOW_TRACKING_URI to the store"
        )
    check_reachable(uri)
    return uri


def _model_version(client: MlflowClient, text: str, name: str, alias: str | None,
                   version: str | None) -> ModelVersion:
    """The version a URI names; an unknown name, alias or version is a one-line error
    listing those that exist."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        names = [found.name for found in client.search_registered_models(max_results=20)]
        raise OrchestratorError(f"{text}: no registered model {name!r}; registered: "
                                f"{', '.join(names) or 'none'}") from None
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException:
        pass
    if alias is not None:
        aliases = ", ".join(f"{key} (version {value})" for key, value in model.aliases.items())
        raise OrchestratorError(f"{text}: model {name!r} has no alias {alias!r}; aliases: "
                                f"{aliases or 'none'}")
    versions = sorted(int(found.version) for found in
                       client.search_model_versions(f"name = '{name}'"))
    raise OrchestratorError(f"{text}: model {name!r} has no version {version!r}; versions: "
                            f"{', '.join(map(str, versions)) or 'none'}")


def _checkpoint_of(client: MlflowClient, uri: str, text: str, version: ModelVersion) -> Path:
    """The version's checkpoint: in place for a local artifact store, else downloaded to a
    folder removed when this process exits."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    location = client.get_model_version_download_uri(version.name, version.version)
    folder = None
    if not location.startswith(("file:", "/")):
        folder = tempfile.mkdtemp(prefix="orchestrator-checkpoint-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location.rstrip('/')}/{CHECKPOINT_ARTIFACT}", dst_path=folder,
            tracking_uri=uri, registry_uri=uri)
    except (MlflowException, OSError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise OrchestratorError(
            f"{text} (version {version.version}) holds no orchestrator checkpoint at "
            f"{CHECKPOINT_ARTIFACT} ({reason}); only models that `orchestrator launch` "
            "registered load") from None
    return checkpoint_file(local)

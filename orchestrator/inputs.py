"""What a run is given, checked before anything starts: paths, the dataset, the Ray cluster.

Shared by the doors that start work (`launch`, `eval`, `sweep`); light, like `launch`, so
that a sweep's trial actors can import it without torch.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from pathlib import Path

from orchestrator.config import DEFAULT_SAMPLES, PACKAGED_WEIGHTS, ExperimentConfig
from orchestrator.datasets.manifest import (
    MANIFEST_NAME,
    DatasetError,
    DatasetManifest,
    check_local_shards,
    is_local,
    load_manifest,
    rebuild_hint,
)
from orchestrator.datasets.verification import damaged_files
from orchestrator.errors import OrchestratorError
from orchestrator.task_params import FRAME_READERS


def resolve_paths(config: ExperimentConfig) -> ExperimentConfig:
    """Local paths made absolute (Ray workers run in another working directory), and
    the task's built-in sample dataset when no data.path is given."""
    config = config.model_copy(deep=True)
    if config.data.path is None:
        config.data.sample = config.data.sample or DEFAULT_SAMPLES[config.task]
        config.data.path = f"data/sample-{config.data.sample}"
    if is_local(config.data.path):
        config.data.path = str(Path(config.data.path).resolve())
    if "://" not in config.ray.storage_path:
        config.ray.storage_path = str(Path(config.ray.storage_path).resolve())
    model = config.model
    if model.encoder_weights not in (None, PACKAGED_WEIGHTS):
        model.encoder_weights = str(Path(model.encoder_weights).resolve())
    if model.vectors is not None and Path(model.vectors).exists():  # not a packaged set's name
        model.vectors = str(Path(model.vectors).resolve())
    if config.train.init_from is not None:
        config.train.init_from = str(Path(config.train.init_from).resolve())
    return config


def check_model_files(config: ExperimentConfig) -> None:
    """Pretrained weights and word vectors the config names exist, fit the model and can
    be read, before anything starts: a worker would otherwise fail minutes later."""
    model = config.model
    if model.vectors is not None:
        if config.task != "sentiment":
            raise OrchestratorError(f"model.vectors={model.vectors} applies to the sentiment "
                                    f"task only, not {config.task}; remove it")
        from orchestrator.datasets.word_vectors import check_vectors  # needs numpy, torch

        try:
            check_vectors(model.vectors, model.embedding_dim)
        except ValueError as exc:
            raise OrchestratorError(str(exc)) from None
    if config.task in FRAME_READERS:
        from orchestrator.lightning_modules.image_encoders import check_encoder  # torch

        try:
            check_encoder(model.encoder, model.encoder_weights)
        except ValueError as exc:
            raise OrchestratorError(str(exc)) from None


def check_initial_weights(config: ExperimentConfig) -> None:
    """train.init_from (if set) fits the model this config builds on its checked dataset:
    the module is built here, as a worker builds it, and the checkpoint's weights are
    loaded into it (weights-only)."""
    if config.train.init_from is None:
        return
    from orchestrator.worker.tasks import TASKS, load_initial_weights  # torch, Lightning

    task = TASKS[config.task]
    try:
        module = task.build_module(config, task.build_datamodule(config))
    except DatasetError as exc:
        raise OrchestratorError(str(exc)) from None
    load_initial_weights(module, config)


def ensure_dataset(config: ExperimentConfig) -> DatasetManifest:
    """Generate the built-in sample corpus if asked, then check the dataset is whole: a
    truncated or corrupt shard fails here, in one line naming it, not minutes later inside
    a Ray worker. Sizes are checked every time; checksums are hashed once and remembered
    beside the manifest (`datasets.verification`), so a large dataset costs one pass."""
    path = config.data.path
    if is_local(path) and not (Path(path) / MANIFEST_NAME).is_file():
        _generate_sample(config, Path(path))
    try:
        manifest = load_manifest(path)
        check_local_shards(manifest)
    except DatasetError as exc:
        raise OrchestratorError(str(exc)) from None
    if manifest.task != config.task:
        raise OrchestratorError(
            f"data.path {path} holds a {manifest.task!r} dataset but task is {config.task!r}"
        )
    for split in ("train", "val", "test"):
        if split not in manifest.splits:
            raise OrchestratorError(f"data.path {path} has no {split!r} split")
        if manifest.splits[split].samples == 0:  # its metrics would be NaN, silently
            raise OrchestratorError(
                f"data.path {path}: the {split!r} split has no samples (its metrics would "
                f"be NaN); {_how_to_rebuild(config, manifest)}")
    damaged = damaged_files(manifest)
    if damaged:
        raise OrchestratorError(
            f"data.path {path}: {', '.join(damaged)}; {_how_to_rebuild(config, manifest)}"
        )
    _check_shared_vocabulary(config, manifest)
    return manifest


def _check_shared_vocabulary(config: ExperimentConfig, manifest: DatasetManifest) -> None:
    """One embedding for both languages needs one vocabulary: a joint sentencepiece model."""
    text = manifest.text or {}
    joint = text.get("src_model") is not None and text.get("src_model") == text.get("tgt_model")
    if config.task == "translation" and config.model.share_embeddings and not joint:
        raise OrchestratorError(
            f"model.share_embeddings=true needs one vocabulary for both languages, but "
            f"data.path {config.data.path} has one per language; prepare it with "
            "`--subword bpe --subword-joint` (or unigram), or set model.share_embeddings=false"
        )


# Room a run needs where it writes: a few checkpoints of a small model, the MLflow store's
# growth. Far below what a large model needs, far above "full".
MIN_FREE_BYTES = 256 * 2**20


def check_storage(storage_path: str, tracking_uri: str) -> None:
    """The checkpoint folder and a sqlite tracking store must be writable and have room:
    found full or read-only after the first epoch, a run would lose its checkpoints."""
    if "://" not in storage_path:
        check_writable(Path(storage_path), "ray.storage_path")
    if tracking_uri.startswith("sqlite:///"):
        store = Path(tracking_uri[len("sqlite:///"):])
        check_writable(store.parent, "the folder of tracking.uri")


def check_writable(folder: Path, what: str, need_bytes: int = MIN_FREE_BYTES) -> None:
    """Write a probe file where `folder` is or would be created (its nearest existing
    parent); then ask for `need_bytes` free there."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OrchestratorError(f"{what} {folder} cannot be made: {existing} is a file, "
                                "not a folder; give a folder path")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise OrchestratorError(f"{what} {folder} is not writable ({exc.strerror or exc} in "
                                f"{existing}); give a folder you can write to") from None
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        raise OrchestratorError(
            f"{what} {folder} has {free / 2**20:.0f} MiB free, less than the "
            f"{need_bytes / 2**20:.0f} MiB a run needs for checkpoints and metrics; "
            "free some space or give another folder"
        )


def _generate_sample(config: ExperimentConfig, path: Path) -> None:
    """Write the configured sample dataset at `path`, all or nothing; never over files that
    are there (they may be the user's)."""
    if config.data.sample is None:
        raise OrchestratorError(
            f"data.path {path} has no {MANIFEST_NAME}; make one with `orchestrator data "
            f"prepare text --input FILE --out {path}`, or set data.sample=grammar"
        )
    if path.is_dir() and any(path.iterdir()):
        raise OrchestratorError(
            f"data.path {path} holds files but no {MANIFEST_NAME} (not a dataset, or one "
            f"an older version left half-written); delete it to generate the "
            f"{config.data.sample!r} sample there, or set data.path to an empty folder"
        )
    from orchestrator.datasets.samples import SAMPLE_DATASETS  # the generators need torch

    print(f"generating the {config.data.sample!r} sample dataset in {path}")
    try:
        SAMPLE_DATASETS[config.data.sample](path, config.seed)
    except DatasetError:
        if not (path / MANIFEST_NAME).is_file():
            raise
        # another run generated the same sample meanwhile; theirs is whole, ours is gone


def _how_to_rebuild(config: ExperimentConfig, manifest: DatasetManifest) -> str:
    """A generated sample is rebuilt by deleting it; anything else by `data prepare`."""
    if config.data.sample is not None:
        return f"delete {manifest.location} and the next run generates it again"
    return rebuild_hint(manifest)


def connect_ray(address: str | None, resources: dict[str, float] | None = None) -> str:
    """Join the cluster at `address`, or start a local instance (with `resources`).

    Workers' output stays in their Ray log files (`ray_logs_folder`): forwarded to this
    console, Lightning's bar and Ray Train's messages were hundreds of lines a run; the
    driver prints one line per epoch instead (`orchestrator.progress`)."""
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise OrchestratorError(
                f"cannot join the Ray cluster at ray.address={address} "
                f"({' '.join(str(exc).split())[:200]}); is it running (`ray start --head`)?"
            ) from None
        return ray.get_runtime_context().gcs_address
    # "local" never attaches to another cluster on the machine by accident. Ray Train's
    # placement-group cleaner finds the cluster by auto-detection, which fails when the
    # machine runs several Ray instances; naming our dashboard lets it find ours.
    port = free_port()
    ray.init(address="local", resources=resources, dashboard_port=port, runtime_env={
        "env_vars": {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}}, **quiet)
    print(f"Ray: a local instance, dashboard http://127.0.0.1:{port}, worker logs in "
          f"{ray_logs_folder()}", flush=True)
    return ray.get_runtime_context().gcs_address


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """A HOST:PORT that takes no connection is refused at once, before any data is made:
    Ray would keep retrying for minutes before it gave up."""
    if not address:
        return
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise OrchestratorError(
            f"no Ray cluster answers at ray.address={address} ({exc.strerror or exc}); start "
            "one there (`ray start --head`) or leave ray.address empty for a local instance"
        ) from None


def ray_logs_folder() -> str:
    """Where this node's Ray processes, the Train workers among them, write their output."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)  # no public API for it
    return node.get_logs_dir_path() if node is not None else "the Ray session's logs folder"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

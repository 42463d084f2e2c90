"""`orchestrator data prepare frame-labels`: clips labelled frame by frame -> shards of the
clip (`mp4`) plus `json {"labels": [...], "id": ...}`, and `dataset.json` naming the labels.

The layout read is a folder of mp4 clips, each with a JSON list beside it (`clip7.mp4` and
`clip7.json`) holding one label per frame of the clip. The list must be as long as the clip
has frames: a label list that drifts from its frames would teach wrong answers silently, so
every clip's frames are counted here and each mismatch is named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds
from tqdm import tqdm

from orchestrator.datasets.manifest import DatasetManifest, SplitInfo, describe_files
from orchestrator.datasets.video_frames import count_frames

LABELS_FILE = "labels.json"
TASK = "video_frame_classification"


@dataclass
class LabelledClip:
    id: str  # unique in the dataset: splits are by clip
    path: Path  # the clip
    labels: list[str]  # one per frame of the clip


def read_frame_labels(videos: Path) -> list[LabelledClip]:
    """Every clip in `videos` with its sibling `.json` label list; a clip without one, a
    file that is not a list of strings, or a list not as long as the clip is an error
    naming every offending file at once."""
    clips, problems = [], []
    for path in sorted(videos.glob("*.mp4")):
        labels_file = path.with_suffix(".json")
        try:
            labels = _label_list(labels_file)
            frames = count_frames(path)
        except Exception as exc:  # noqa: BLE001 - json, OS and PyAV errors all name the file
            problems.append(f"{path.name}: {exc}")
            continue
        if len(labels) != frames:
            problems.append(f"{labels_file.name} has {len(labels)} labels for the "
                            f"{frames} frames of {path.name}")
            continue
        clips.append(LabelledClip(path.stem, path, labels))
    if problems:
        raise ValueError(f"{len(problems)} clip(s) in {videos} cannot be used: "
                         f"{'; '.join(problems[:10])}")
    if not clips:
        raise ValueError(f"{videos} holds no .mp4 clips")
    return clips


def _label_list(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"no label list {path.name} beside it")
    labels = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(labels, list) or not labels \
            or not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"{path.name} is not a JSON list of label names (strings)")
    return labels


def prepare_frame_labels(
    splits: dict[str, list[LabelledClip]], out_dir: Path, samples_per_shard: int = 250,
    show_progress: bool = True,
) -> DatasetManifest:
    """Write `{split}-NNNNNN.tar` shards, `labels.json` and `dataset.json` into `out_dir`.
    The label set is the training split's; a label met only in val or test is an error."""
    if not splits.get("train"):
        raise ValueError("a frame-labelled dataset needs a non-empty 'train' split")
    names = sorted({label for clip in splits["train"] for label in clip.labels})
    for split, clips in splits.items():
        unseen = sorted({label for clip in clips for label in clip.labels} - set(names))
        if unseen:
            raise ValueError(f"labels {', '.join(unseen)} occur in {split} but not in train")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / LABELS_FILE).write_text(json.dumps(names))
    infos = {name: _write_split(name, clips, out_dir, samples_per_shard, show_progress)
             for name, clips in splits.items()}
    files = [LABELS_FILE] + [shard for info in infos.values() for shard in info.shards]
    manifest = DatasetManifest(task=TASK, vocab_file=LABELS_FILE, splits=infos, labels=names,
                               **describe_files(out_dir, files), text={"media": "mp4"},
                               location=str(out_dir))
    (out_dir / "dataset.json").write_text(manifest.to_json())
    return manifest


def _write_split(split: str, clips: list[LabelledClip], out_dir: Path,
                 samples_per_shard: int, show_progress: bool) -> SplitInfo:
    pattern = str(out_dir / f"{split}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=samples_per_shard, verbose=0) as writer:
        for number, clip in enumerate(tqdm(clips, desc=f"{split} shards", unit="clip",
                                           disable=not show_progress)):
            meta = {"labels": clip.labels, "id": clip.id}
            writer.write({"__key__": f"{split}-{number:08d}", "mp4": clip.path.read_bytes(),
                          "json": json.dumps(meta).encode("utf-8")})
    shards = sorted(path.name for path in out_dir.glob(f"{split}-*.tar"))
    frames = sum(len(clip.labels) for clip in clips)
    return SplitInfo(samples=len(clips), tokens=frames, shards=shards)

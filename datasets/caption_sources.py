"""Raw captioned media in the common layouts -> `CaptionedItem`s (one per image or clip).

Images: Flickr8k's `captions.txt` (CSV `image,caption`) or COCO's `captions_*.json`.
Video: MSR-VTT/MSVD-style CSV (a clip id column, a caption column, optionally a file
column) or MSR-VTT's JSON (`videos` + `sentences`). Every caption must name a file that
exists: the error says which caption (file and line) names which missing file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.datasets.video_frames import VIDEO_SUFFIXES


@dataclass
class CaptionedItem:
    id: str  # unique in the dataset: splits and metrics are by item, never by caption
    path: Path  # the image or clip
    captions: list[str] = field(default_factory=list)


class MissingMedia(ValueError):
    """A caption names an image or clip that is not there."""


def read_flickr_captions(captions_file: Path, images: Path) -> list[CaptionedItem]:
    """Flickr8k `captions.txt`: a header `image,caption`, then one caption a line."""
    items: dict[str, CaptionedItem] = {}
    with captions_file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _require_columns(captions_file, reader.fieldnames, ("image", "caption"))
        for row in reader:
            name = row["image"].strip()
            item = items.get(name) or _new_item(name, images / name, captions_file,
                                                reader.line_num)
            items[name] = item
            item.captions.append(row["caption"].strip())
    return list(items.values())


def read_coco_captions(captions_file: Path, images: Path) -> list[CaptionedItem]:
    """COCO `captions_<split>.json`: `images` (id, file_name) and `annotations` (image_id,
    caption). Files are looked up in IMAGES and in IMAGES/<split> (COCO's `val2014/`)."""
    data = json.loads(captions_file.read_text(encoding="utf-8"))
    folder = captions_file.stem.removeprefix("captions_")
    items: dict[int, CaptionedItem] = {}
    names = {image["id"]: image["file_name"] for image in data["images"]}
    for number, annotation in enumerate(data["annotations"]):
        image_id = annotation["image_id"]
        if image_id not in items:
            name = names.get(image_id, f"<image id {image_id}>")
            candidates = [images / name, images / folder / name]
            path = next((p for p in candidates if p.is_file()), candidates[0])
            items[image_id] = _new_item(str(image_id), path, captions_file, number,
                                        where="annotation")
        items[image_id].captions.append(annotation["caption"].strip())
    return list(items.values())


def read_video_csv(captions_file: Path, videos: Path) -> list[CaptionedItem]:
    """A CSV with a clip id column (`video_id`, `video` or MSVD's `VideoID`), a caption column
    (`caption`, `sentence` or `Description`) and optionally `file`; MSVD's `Start`/`End`
    name the clip `<id>_<start>_<end>.*` and only `Language == English` rows are kept."""
    items: dict[str, CaptionedItem] = {}
    with captions_file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        id_column = _pick(captions_file, columns, ("video_id", "video", "VideoID"))
        caption_column = _pick(captions_file, columns, ("caption", "sentence", "Description"))
        for row in reader:
            if row.get("Language", "English") != "English":
                continue
            clip = row[id_column].strip()
            if "Start" in row and "End" in row:
                clip = f"{clip}_{row['Start']}_{row['End']}"
            if clip not in items:
                path = _listed_clip(captions_file, videos, row["file"]) if row.get("file") \
                    else _find_clip(videos, clip)
                items[clip] = _new_item(clip, path, captions_file, reader.line_num)
            items[clip].captions.append(row[caption_column].strip())
    return list(items.values())


def read_video_json(captions_file: Path, videos: Path) -> list[CaptionedItem]:
    """MSR-VTT's `{"videos": [...], "sentences": [{"video_id", "caption"}]}` (clips are
    `<video_id>.mp4`), or a list of `{"video_id", "caption" or "captions", "file"?}`."""
    data = json.loads(captions_file.read_text(encoding="utf-8"))
    rows = data["sentences"] if isinstance(data, dict) else data
    items: dict[str, CaptionedItem] = {}
    for number, row in enumerate(rows):
        clip = str(row["video_id"])
        if clip not in items:
            path = videos / row["file"] if row.get("file") else _find_clip(videos, clip)
            items[clip] = _new_item(clip, path, captions_file, number, where="entry")
        captions = row.get("captions") or [row["caption"]]
        items[clip].captions.extend(caption.strip() for caption in captions)
    return list(items.values())


def _new_item(
    item_id: str, path: Path, captions_file: Path, number: int, where: str = "line"
) -> CaptionedItem:
    if not path.is_file():
        raise MissingMedia(
            f"{captions_file} {where} {number}: {path.name} is not in {path.parent} "
            "(a caption names a missing file)"
        )
    return CaptionedItem(item_id, path)


def _listed_clip(captions_file: Path, videos: Path, name: str) -> Path:
    """A `file` column is relative to the CSV's folder, or a name inside VIDEOS."""
    beside = captions_file.parent / name
    return beside if beside.is_file() else videos / Path(name).name


def _find_clip(videos: Path, clip: str) -> Path:
    for suffix in VIDEO_SUFFIXES:
        if (videos / f"{clip}{suffix}").is_file():
            return videos / f"{clip}{suffix}"
    return videos / f"{clip}.mp4"


def _require_columns(path: Path, columns: list[str] | None, needed: tuple[str, ...]) -> None:
    missing = [name for name in needed if name not in (columns or [])]
    if missing:
        raise ValueError(f"{path} needs the columns {', '.join(needed)} "
                         f"(its header is {', '.join(columns or [])})")


def _pick(path: Path, columns: list[str], choices: tuple[str, ...]) -> str:
    for name in choices:
        if name in columns:
            return name
    raise ValueError(f"{path} has none of the columns {', '.join(choices)} "
                     f"(its header is {', '.join(columns)})")

"""`dataset.json`: the manifest that describes a folder (or URL) of shards.

It is the contract between `orchestrator data prepare`, user-made data and the readers:
the task, each split's sample/token counts and shard list, the vocabulary file, and a
sha256 checksum and size in bytes for every file (`sizes` is newer: manifests without it
still load, and are checked by checksum only).
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "dataset.json"
FORMAT_VERSION = 1

# Which `orchestrator data prepare KIND` makes each task's data: errors name the command
# that rebuilds a damaged dataset.
PREPARE_KINDS = {
    "language_model": "text",
    "sentiment": "classification",
    "translation": "translation",
    "image_captioning": "captions",
    "video_captioning": "video",
}


class DatasetError(Exception):
    """A dataset that is missing, incomplete or corrupt; the message says which file."""


@dataclass
class SplitInfo:
    samples: int
    tokens: int
    shards: list[str]  # file names relative to the dataset location


@dataclass
class DatasetManifest:
    task: str
    vocab_file: str
    splits: dict[str, SplitInfo]
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> "sha256:<hex>"
    sizes: dict[str, int] = field(default_factory=dict)  # file name -> bytes (cheap to check)
    labels: list[str] | None = None  # classification: class names in index order
    # translation: the target side's vocabulary (vocab_file is the source side's), the
    # language codes and how text is tokenised: {"src": "de", "tgt": "en", "tokenizer": ...}
    target_vocab_file: str | None = None
    text: dict[str, str] | None = None
    format_version: int = FORMAT_VERSION
    location: str = ""  # where it was read from; shard URLs resolve against it

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("location")
        return json.dumps(data, indent=2)

    def shard_urls(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DatasetError(
                f"dataset {self.location} has no {split!r} split (has: {', '.join(self.splits)})"
            )
        return [resolve(self.location, name) for name in self.splits[split].shards]

    def read_file(self, name: str) -> str:
        return read_bytes(resolve(self.location, name)).decode("utf-8")

    def read_binary(self, name: str) -> bytes:
        return read_bytes(resolve(self.location, name))


def load_manifest(location: str) -> DatasetManifest:
    """Read `dataset.json` from a local folder or an http(s)/file URL."""
    url = resolve(location, MANIFEST_NAME)
    try:
        data = json.loads(read_bytes(url))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {url}: {exc}") from None
    splits = {name: SplitInfo(**info) for name, info in data.pop("splits").items()}
    return DatasetManifest(splits=splits, location=location, **data)


def is_local(location: str) -> bool:
    """A folder on this machine (checkable), not a URL webdataset opens."""
    return "://" not in location and not location.startswith("pipe:")


def check_local_shards(manifest: DatasetManifest) -> None:
    """Fail early, naming the file, when a local dataset lost a shard or the vocabulary."""
    if not is_local(manifest.location):
        return
    root = Path(manifest.location)
    names = [manifest.vocab_file] + [s for info in manifest.splits.values() for s in info.shards]
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise DatasetError(
            f"dataset {root} is missing {', '.join(missing)}; {rebuild_hint(manifest)}"
        )


def rebuild_hint(manifest: DatasetManifest) -> str:
    """How to make a damaged dataset again: the `data prepare` kind of its task, so the user
    need not work out which of the five commands wrote it."""
    kind = PREPARE_KINDS.get(manifest.task, "KIND")
    return (f"prepare it again with `orchestrator data prepare {kind} ... "
            f"--out {manifest.location} --overwrite`")


def describe_files(root: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The `checksums` and `sizes` of a manifest for freshly written files: the writers'
    one way to record what later checks compare against."""
    return {
        "checksums": {name: sha256_of(root / name) for name in names},
        "sizes": {name: (root / name).stat().st_size for name in names},
    }


def verify_checksums(manifest: DatasetManifest) -> list[str]:
    """Names of local files whose sha256 differs from the manifest's (corrupt shards)."""
    root = Path(manifest.location)
    return [
        name for name, expected in manifest.checksums.items() if sha256_of(root / name) != expected
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def resolve(location: str, name: str) -> str:
    if "://" in location:
        return location.rstrip("/") + "/" + name
    return str(Path(location) / name)


def read_bytes(url: str) -> bytes:
    if url.startswith(("http://", "https://", "file://")):
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()
    return Path(url).read_bytes()

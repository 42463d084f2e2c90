"""Is a local dataset still what its `dataset.json` says? Checked before any run starts.

Sizes are checked every time (one stat per file catches a truncated or half-copied shard).
Checksums are hashed once: each file whose sha256 matched is remembered in
`.dataset.verified.json` beside the manifest with its size and mtime_ns, and is not hashed
again while both stay the same; a file whose size or mtime changed is hashed again. The
trade-off: content forged with the same size and mtime passes the cached check, so
`orchestrator data verify` hashes everything and never reads the cache. A dataset folder we
cannot write to is simply hashed every time.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from orchestrator.datasets.manifest import MANIFEST_NAME, DatasetManifest, is_local, sha256_of

VERIFIED_CACHE = ".dataset.verified.json"


def damaged_files(manifest: DatasetManifest, use_cache: bool = True) -> list[str]:
    """`name (what is wrong)` for each local file that differs from the manifest; empty when
    the dataset is whole, or not local. Wrong sizes are reported without hashing anything."""
    if not is_local(manifest.location):
        return []
    root = Path(manifest.location)
    wrong = [f"{name} ({problem})" for name, expected in manifest.sizes.items()
             if (problem := _size_problem(root / name, expected))]
    if wrong:
        return wrong
    cache = _read_cache(root) if use_cache else {}
    verified: dict[str, dict[str, Any]] = {}
    for name, expected in manifest.checksums.items():
        entry = _stat_entry(root / name, expected)
        if entry is None:
            wrong.append(f"{name} (missing)")
        elif cache.get(name) == entry or sha256_of(root / name) == expected:
            verified[name] = entry
        else:
            wrong.append(f"{name} (its sha256 differs from {MANIFEST_NAME}'s)")
    if use_cache and verified != cache:
        _write_cache(root, verified)
    return wrong


def remember_verified(root: Path, manifest: DatasetManifest) -> None:
    """Record freshly written files (hashed by their writer) as verified, so the first run
    on a new dataset does not hash it all again."""
    if not is_local(str(root)):
        return
    entries = {name: _stat_entry(root / name, checksum)
               for name, checksum in manifest.checksums.items()}
    _write_cache(root, {name: entry for name, entry in entries.items() if entry is not None})


def _size_problem(path: Path, expected: int) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    return None if size == expected else f"{size} bytes, {MANIFEST_NAME} says {expected}"


def _stat_entry(path: Path, checksum: str) -> dict[str, Any] | None:
    """What the cache holds for a file: the checksum that matched, valid for this size and
    modification time only. None when the file is missing."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": checksum}


def _read_cache(root: Path) -> dict[str, Any]:
    """The remembered entries; an unreadable or malformed cache counts as empty (it only
    ever saves work, it never vouches for a file on its own)."""
    try:
        data = json.loads((root / VERIFIED_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(root: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Replace the cache whole (a reader never sees half of it); skipped where the dataset
    folder is read-only."""
    temporary = root / f"{VERIFIED_CACHE}.{os.getpid()}.tmp"
    try:
        temporary.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, root / VERIFIED_CACHE)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)

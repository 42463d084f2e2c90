"""Writing a dataset folder all-or-nothing: a dataset is never lost, never half-written.

A writer fills a temporary folder beside the target (`.NAME.partial-XXXXXXXX`, same parent,
so the final move is a rename on one filesystem). Only when it is complete does it take the
target's place; an existing dataset is replaced only when asked (`overwrite`), and only then:
the old one is renamed aside, the new one renamed in, and the old one deleted. Any failure
before that (bad input found late, an exception, Ctrl-C) removes the partial folder and leaves
the previous dataset byte-for-byte as it was. A killed process leaves at most a hidden
partial folder, never a target that looks like a dataset.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.datasets.manifest import MANIFEST_NAME, DatasetError, DatasetManifest
from orchestrator.datasets.verification import remember_verified

PARTIAL_MARK = ".partial-"
ASIDE_MARK = ".replaced-"


def build_dataset(
    target: Path, write: Callable[[Path], DatasetManifest], overwrite: bool = False
) -> DatasetManifest:
    """Run `write(folder)` on a fresh folder and move the result to `target`; the manifest
    returned points at `target`, where the dataset now is, not at the temporary folder."""
    with building(target, overwrite) as folder:
        manifest = write(folder)
    manifest.location = str(target)
    remember_verified(target, manifest)  # the writer hashed these files a moment ago
    return manifest


@contextmanager
def building(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """A fresh, empty folder beside `target` to write into; moved into place on success,
    removed on any failure. Refuses up front (before the caller reads its input) when
    `target` holds something and `overwrite` is not set."""
    refuse_existing(target, overwrite)
    real = target.resolve()
    real.parent.mkdir(parents=True, exist_ok=True)
    partial = _fresh_folder(real.parent, f".{real.name}{PARTIAL_MARK}")
    try:
        yield partial
        _move_into_place(partial, real, target, overwrite)
    except BaseException:  # Ctrl-C too: a partial dataset must never stay behind
        shutil.rmtree(partial, ignore_errors=True)
        raise


def refuse_existing(target: Path, overwrite: bool) -> None:
    """One line naming the folder when writing there would replace something unasked."""
    if target.exists() and not target.is_dir():
        raise DatasetError(f"--out {target} is a file, not a folder; give a folder path")
    if overwrite or not target.is_dir() or not any(target.iterdir()):
        return
    what = "a dataset" if (target / MANIFEST_NAME).is_file() else "files (not empty)"
    raise DatasetError(
        f"--out {target} already holds {what}; pass --overwrite to replace it "
        "(the old one is kept until the new one is complete)"
    )


def _move_into_place(partial: Path, real: Path, target: Path, overwrite: bool) -> None:
    """Rename the complete folder in; with `overwrite`, the old one goes aside first and is
    deleted only once the new one is in place (put back if the swap fails)."""
    try:
        os.rename(partial, real)  # succeeds when `real` is absent or an empty folder
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        if not overwrite:  # something appeared at the target while we were writing
            refuse_existing(target, overwrite)
            raise
    aside = _fresh_folder(real.parent, f".{real.name}{ASIDE_MARK}")
    os.rename(real, aside)  # onto the empty `aside` folder: atomic on POSIX
    try:
        os.rename(partial, real)
    except BaseException:
        os.rename(aside, real)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _fresh_folder(parent: Path, prefix: str) -> Path:
    """A new empty folder `parent/prefix<random>`, made with the user's usual permissions
    (tempfile.mkdtemp's 0700 would make the final dataset private)."""
    while True:
        folder = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue

"""Write-then-rename helpers: an output path either holds a complete result or nothing.

Every file or directory rpnt produces is first written under a hidden temporary name in
the same directory (so the final ``os.replace`` is atomic on one filesystem) and renamed
only when writing finished without an exception. A killed job therefore never leaves a
half-written store, checkpoint or table at the path Snakemake or a user looks at.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rpnt.errors import RpntError


def _tmp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def check_overwrite(final: str | Path, force: bool) -> Path:
    """Refuse to replace an existing output unless ``force`` is set."""
    final = Path(final)
    if final.exists() and not force:
        raise RpntError(f"{final} already exists; pass --force to replace it")
    return final


@contextlib.contextmanager
def atomic_path(final: str | Path, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling path; on success move it to ``final``.

    Works for files and directories (e.g. Zarr stores). On any exception the temporary
    path is removed and ``final`` is left untouched. With ``force=False`` an existing
    ``final`` is an error raised before anything is written.
    """
    final = check_overwrite(final, force)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        raise RpntError(f"internal error: nothing was written for {final}")
    if final.exists() and final.is_dir() and not final.is_symlink():
        # A directory cannot be replaced atomically by os.replace; move the old one aside
        # first so there is never a moment with a half-written directory at ``final``.
        old = _tmp_sibling(final)
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)


def write_text(final: str | Path, text: str) -> Path:
    """Atomically write a text file."""
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)


def write_json(final: str | Path, obj: Any) -> Path:
    """Atomically write JSON (sorted keys, indented, trailing newline)."""
    return write_text(final, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

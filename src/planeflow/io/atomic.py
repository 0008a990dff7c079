"""Atomic file writes: write to a temporary name in the same folder, then rename.

A step that dies half-way (killed, disk full) leaves no file under the final name,
so nothing downstream can trust a partial output.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and the exception re-raised.
    ``suffix`` is kept at the end of the temporary name (np.save appends ``.npy``
    to names without it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # leftovers of an earlier writer of this same output that was killed (SIGKILL,
    # node failure) before it could clean up; one job writes a given output at a time
    for stale in path.parent.glob(f".{path.name}.*.tmp*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    # mkstemp creates the file readable by its owner only; give it the permissions a
    # plain open() would (0666 minus the umask) so lab members can read shared results
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_npy(path: str | os.PathLike, obj, allow_pickle: bool = True) -> None:
    """``np.save`` that never leaves a partial ``.npy`` under the final name."""
    import numpy as np

    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, obj, allow_pickle=allow_pickle)


def save_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def save_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")

"""Writes that never leave half a file and never overwrite what the command did not create.

Every output is written under a temporary name beside its target (same folder, so the same
filesystem), flushed to disk and then renamed into place with ``os.replace``: a reader sees the old
file or the new one, never a truncated one, whatever stops the writer (a full disk, an exception,
SIGKILL, a power cut). A failed write removes its temporary and leaves the target as it was.
Renaming also replaces a symlink at the target by the new file instead of writing through it into
the link's target.

``check_output`` is the rule the commands share: an existing output is replaced only with
``--overwrite`` (or ``--append`` for ``convert``), and an output that is one of the inputs is
refused outright. ``OutputError`` is a ``ValueError``, so the CLI prints it as one ``error:`` line
and exits with status 2.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"  # every temporary name ends with it, so a folder's owner can sweep leftovers


class OutputError(ValueError):
    """An output path the command must not write: it exists (no ``--overwrite``) or it is an input."""


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file, or every file under a folder and the folder itself, to disk."""
    path = Path(path)
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as fh:
            os.fsync(fh.fileno())
    for folder in {p.parent for p in files} | ({path} if path.is_dir() else set()):
        fsync_dir(folder)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the renames inside a folder durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove(path: str | os.PathLike) -> None:
    """Remove a file, a symlink or a folder tree; nothing when absent."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def temp_name(target: str | os.PathLike, kind: str = "") -> Path:
    """A fresh temporary name beside ``target`` (hidden, unique, ending in ``TMP_SUFFIX``)."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{kind}", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``target``'s new content to (a file or a folder); on success it is
    flushed and renamed onto ``target`` (a folder replaces a folder as a whole), on failure removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        yield tmp
        fsync_path(tmp)
        replace(tmp, target)
    finally:
        remove(tmp)


def replace(source: Path, target: Path) -> None:
    """Rename ``source`` onto ``target``; a folder target is moved aside first and removed after."""
    if target.is_dir() and not target.is_symlink():
        old = temp_name(target, "old")
        os.replace(target, old)
        try:
            os.replace(source, target)
        except BaseException:
            os.replace(old, target)  # put the previous content back
            raise
        remove(old)
    else:
        if source.is_dir() and (target.is_symlink() or target.exists()):
            remove(target)  # a folder cannot be renamed onto a file or a link: the (asked-for) overwrite removes it
        os.replace(source, target)
    fsync_dir(target.parent)


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    output: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
    what: str = "output",
) -> Path:
    """Refuse an output that is one of the ``inputs`` (or, for a folder, holds one), and an existing one unless
    ``overwrite``. A symlink counts as existing; an empty folder as absent. Returns the output as a Path."""
    out = Path(output)
    for source in map(Path, inputs):
        if _same(out, source) or out.resolve() == source.resolve():
            raise OutputError(f"{what} {out} is the input {source}: write to another path")
        if out.is_dir() and out.resolve() in source.resolve().parents:
            raise OutputError(f"{what} {out} holds the input {source}: write to another folder")
    exists = out.is_symlink() or out.is_file() or (out.is_dir() and any(out.iterdir()))
    if exists and not overwrite:
        kind = "a symlink" if out.is_symlink() else "a folder with files" if out.is_dir() else "a file"
        raise OutputError(f"{what} {out} already exists ({kind}); pass --overwrite to replace it, or write elsewhere")
    return out

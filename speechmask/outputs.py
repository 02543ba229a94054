"""Checks a command makes before it touches anything, and output folders written as one set.

Every command first validates its arguments and configs, checks that its inputs are readable and
its outputs writable (and absent, unless `--force`), and only then starts work; what it writes
replaces the old files only once the new ones are complete (`atomic.atomic_output` for one file,
`OutputFolder` for a set), so an interrupted or failed run leaves the old outputs as they were.

An `OutputFolder` is staged in a hidden sibling (`.NAME.staging-PID-XXXX`) and renamed into
place. Replacing an existing folder renames it aside (`.NAME.old-XXXX`), renames the staged one
in, moves what the command keeps across runs (the attack suite's `cache/`) into it, and removes
the old one. The next run of any command on that folder finishes or undoes an interrupted
replacement: with no folder in place the old one is renamed back; with the new one in place the
kept entries are carried over; a staging folder whose process is gone is removed. Each of these
is reported in one line.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Iterable

from .atomic import _umask
from .errors import SpeechmaskError


class OutputError(SpeechmaskError):
    """An output that cannot be written: exists without --force, unwritable, or outside its
    folder."""


def note(message: str) -> None:
    """One line to stderr that is not an error (a recovered folder, a warning about data)."""
    print(f"speechmask: note: {message}", file=sys.stderr)


def check_input_file(path: Path, what: str = "file") -> None:
    """`path` is a readable file (one byte is read); SpeechmaskError naming it otherwise."""
    path = Path(path)
    if not path.exists():
        raise SpeechmaskError(f"{path}: no such {what}")
    if not path.is_file():
        raise SpeechmaskError(f"{path}: is not a file (expected a {what})")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise SpeechmaskError(f"{path}: cannot be read ({exc.strerror})") from None


def check_writable_folder(folder: Path) -> None:
    """The folder exists and takes new files, or can be created: probed by writing and removing
    a temporary file in it (or in its nearest existing ancestor), which also catches read-only
    file systems and folders that are files."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{folder}: cannot be created ({probe} is not a folder)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".speechmask-probe-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write there ({exc.strerror or exc})") from None


def check_new_file(path: Path | None, force: bool, flag: str = "--force") -> None:
    """`path` may be written: not a folder, absent unless `force`, its folder writable."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file name")
    if path.exists() and not force:
        raise OutputError(f"{path}: already exists (use {flag} to overwrite it)")
    check_writable_folder(path.parent)


def confined(root: Path, parts: Iterable[str], where: str) -> Path:
    """`root / parts...` for parts taken from data (a manifest's speaker and id), refused unless
    each part is one plain path component: no separators, no `.`/`..`, no absolute paths, no
    control characters. `where` names the data (`m.jsonl:12`)."""
    rel = []
    for part in parts:
        text = str(part)
        bad = (not text or text in (".", "..") or "/" in text or "\\" in text
               or text.startswith("~") or any(ord(c) < 32 for c in text)
               or PurePosixPath(text).is_absolute())
        if bad:
            raise OutputError(f"{where}: {text!r} cannot be used in a file name (one path "
                              "component, no '/', '..' or control characters)")
        rel.append(text)
    path = Path(root, *rel)
    if Path(os.path.abspath(path)).parent != Path(os.path.abspath(root)).joinpath(*rel[:-1]):
        raise OutputError(f"{where}: {'/'.join(rel)!r} resolves outside {root}")
    return path


class OutputFolder:
    """A folder one command writes as a set. `owned`: glob patterns of what the command writes
    (an existing one means the folder holds earlier results: refused without `force`); `keep`:
    patterns of what survives a replacement (caches, resumable work). Anything else already in
    the folder is refused, even with `force`: it is not the command's to delete.

        out = OutputFolder(path, force, owned=["report.json", ...], keep=["cache"])
        out.check()            # before any work
        with out.staged() as staging:
            ...write into staging...
    """

    def __init__(self, folder: Path, force: bool, owned: Iterable[str],
                 keep: Iterable[str] = ()):
        self.folder, self.force = Path(folder), force
        self.owned, self.keep = list(owned), list(keep)

    def _matches(self, name: str, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    def check(self) -> None:
        """Finish or undo an interrupted replacement, then refuse what cannot be written."""
        self.recover()
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"{self.folder}: is a file, expected a folder")
        if self.folder.is_dir():
            names = sorted(os.listdir(self.folder))
            foreign = [n for n in names if not self._matches(n, self.owned + self.keep)]
            if foreign:
                raise OutputError(f"{self.folder / foreign[0]}: not written by this command; "
                                  "move it away or choose another output folder")
            earlier = [n for n in names if self._matches(n, self.owned)]
            if earlier and not self.force:
                raise OutputError(f"{self.folder / earlier[0]}: already exists (use --force to "
                                  "replace the folder's outputs)")
        check_writable_folder(self.folder.parent)

    def _siblings(self, kind: str) -> list[Path]:
        parent = self.folder.parent
        if not parent.is_dir():
            return []
        return sorted(parent / n for n in os.listdir(parent)
                      if n.startswith(f".{self.folder.name}.{kind}-"))

    def recover(self) -> None:
        for staging in self._siblings("staging"):
            pid = staging.name.rsplit(".staging-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                raise OutputError(f"{self.folder}: another speechmask process ({pid}) is "
                                  "writing it")
            shutil.rmtree(staging, ignore_errors=True)
            note(f"{staging}: removed the partial output of an interrupted run")
        for old in self._siblings("old"):
            if not self.folder.exists():
                os.rename(old, self.folder)
                note(f"{self.folder}: restored the outputs an interrupted run had set aside")
            else:
                self._carry(old)
                shutil.rmtree(old, ignore_errors=True)
                note(f"{self.folder}: finished replacing it (an interrupted run had left {old})")

    def _carry(self, old: Path) -> None:
        for name in sorted(os.listdir(old)):
            if self._matches(name, self.keep) and not (self.folder / name).exists():
                os.rename(old / name, self.folder / name)

    def staged(self) -> "_Staging":
        return _Staging(self)

    def commit(self, staging: Path) -> None:
        parent = self.folder.parent
        if not self.folder.exists():
            os.rename(staging, self.folder)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.old-", dir=parent))
        os.rmdir(old)
        os.rename(self.folder, old)
        os.rename(staging, self.folder)
        self._carry(old)
        shutil.rmtree(old)


class _Staging:
    def __init__(self, out: OutputFolder):
        self.out = out
        self.path: Path | None = None

    def __enter__(self) -> Path:
        parent = self.out.folder.parent
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.folder.name}.staging-"
                                                 f"{os.getpid()}-", dir=parent))
        os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        return self.path

    def __exit__(self, kind, value, tb) -> bool:
        if kind is None:
            self.out.commit(self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""Shared tail of every real-corpus loader: probe audio, collect bad files, assign splits, write."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ...audio import probe_audio
from ...errors import AudioError, CorpusError
from ...parallel import progress_map
from ..manifest import assign_splits, write_manifest


@dataclass
class ScanResult:
    """What a loader found under its root: candidate rows (every schema field but `duration_s`,
    `split`, `speaker_split`; `path` absolute) and files it already knows are bad."""

    rows: list[dict] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    _ids: set[str] = field(default_factory=set, repr=False)

    def add(self, utt_id: str, audio: Path, listed_in: str | None = None, **fields) -> None:
        """Add one utterance: a file named by metadata (`listed_in`) must exist, else it is
        reported as bad; a repeated id (the same file listed twice) is kept once."""
        if listed_in is not None and not audio.is_file():
            self.bad.append((str(audio), f"listed in {listed_in} but missing"))
        elif utt_id not in self._ids:
            self._ids.add(utt_id)
            self.rows.append({"id": utt_id, "path": str(audio), **fields})


def _probe(path: str) -> tuple[str, float | None, str | None]:
    try:
        return path, probe_audio(path), None
    except AudioError as exc:
        return path, None, str(exc)


def finalize(scan: ScanResult, *, corpus: str, jobs: int = 1, seed: int = 0,
             progress: bool | None = None) -> tuple[list[dict], list[tuple[str, str]]]:
    """Decode every candidate's audio (in parallel), drop and report bad files, assign both split
    schemes. Returns (rows sorted by id, bad files as (path, reason))."""
    if not scan.rows:
        raise CorpusError(f"no usable {corpus} utterances found"
                          + (f" ({len(scan.bad)} bad entries)" if scan.bad else ""))
    by_path = {row["path"]: row for row in scan.rows}
    bad = list(scan.bad)
    rows = []
    for path, duration, error in progress_map(_probe, sorted(by_path), jobs=jobs,
                                              desc=f"checking {corpus} audio", disable=progress is False):
        if error is not None:
            bad.append((path, error.removeprefix(f"{path}: ")))
            continue
        row = by_path[path]
        row["duration_s"] = round(duration, 4)
        row.setdefault("corpus", corpus)
        rows.append(row)
    if not rows:
        raise CorpusError(f"every {corpus} audio file was bad ({len(bad)} files); first: "
                          f"{bad[0][0]}: {bad[0][1]}")
    rows.sort(key=lambda r: r["id"])
    assign_splits(rows, seed)
    return rows, sorted(bad)


def require_dir(root: Path, what: str) -> Path:
    """`root` must be a folder; the error names what was expected there."""
    if not root.is_dir():
        raise CorpusError(f"{root}: not a folder (expected {what})")
    return root


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CorpusError(f"{path}: missing ({what})")
    return path


def read_text(path: Path, what: str) -> str:
    """A corpus's text file, decoded as UTF-8; CorpusError naming the file, what it should be and
    where the bytes stop being text."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot be read ({exc.strerror}; expected {what})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CorpusError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}; "
                          f"expected {what})") from None


def build_manifest(fmt: str, root: Path, out: Path, *, jobs: int = 1, seed: int = 0,
                   force: bool = False) -> tuple[list[dict], list[tuple[str, str]]]:
    """Scan `root` in layout `fmt`, check every file, write `out` atomically.

    Refuses before any work if `out` exists and not `force`, so nothing is lost or half-written.
    """
    from . import LOADERS  # the registry imports this module

    if fmt not in LOADERS:
        raise CorpusError(f"unknown corpus format {fmt!r} (choose from {', '.join(LOADERS)})")
    if out.exists() and not force:
        raise CorpusError(f"{out}: already exists (use --force to overwrite)")
    scan = LOADERS[fmt](Path(root))
    rows, bad = finalize(scan, corpus=fmt, jobs=jobs, seed=seed)
    write_manifest(out, rows, force=True)
    return rows, bad


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_NOT_WORD = re.compile(r"[^\w']|_")


def normalize_transcript(text: str) -> str:
    """Lowercase; keep letters, digits and apostrophes (other characters become spaces); drop
    apostrophe-only tokens; collapse whitespace. 'Turn on the LIGHTS, please!' -> 'turn on the
    lights please'."""
    words = _NOT_WORD.sub(" ", text.translate(_APOSTROPHES).lower()).split()
    return " ".join(w for w in words if w.strip("'"))

"""LibriSpeech loader: SPEAKERS.TXT + <subset>/<spk>/<chapter>/<spk>-<chapter>.trans.txt + .flac."""

from __future__ import annotations

from pathlib import Path

from ...errors import CorpusError
from .common import ScanResult, normalize_transcript, read_text, require_dir, require_file

_GENDERS = {"F": "f", "M": "m"}


def _genders(path: Path) -> dict[str, str | None]:
    """Speaker id -> 'm'/'f' from SPEAKERS.TXT (`ID | SEX | SUBSET | MINUTES | NAME`, ';' comments).

    Split at most 4 times: one reader's name contains '|'."""
    genders: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|", 4)]
        if len(fields) >= 2 and fields[0]:
            genders[fields[0]] = _GENDERS.get(fields[1].upper())
    return genders


def _root(root: Path) -> Path:
    """Accept the LibriSpeech/ folder itself or the folder that holds it."""
    if not (root / "SPEAKERS.TXT").is_file() and (root / "LibriSpeech" / "SPEAKERS.TXT").is_file():
        return root / "LibriSpeech"
    return root


def scan(root: Path) -> ScanResult:
    """Scan every subset folder (train-clean-100, dev-clean, ...) under the LibriSpeech/ folder."""
    root = _root(require_dir(Path(root).expanduser().absolute(), "the LibriSpeech/ folder"))
    genders = _genders(require_file(root / "SPEAKERS.TXT", "LibriSpeech speaker list"))
    trans_files = sorted(root.glob("*/*/*/*.trans.txt"))
    if not trans_files:
        raise CorpusError(f"{root}: no <subset>/<speaker>/<chapter>/*.trans.txt files "
                          "(expected an unpacked subset such as train-clean-100/)")
    result = ScanResult()
    for trans in trans_files:
        subset = trans.parent.parent.parent.name
        text = read_text(trans, "a LibriSpeech transcript file")
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            speaker = utt_id.split("-")[0]
            if utt_id.count("-") != 2 or not text.strip():
                result.bad.append((f"{trans}:{lineno}", "expected '<spk>-<chapter>-<n> TEXT'"))
                continue
            result.add(utt_id, trans.parent / f"{utt_id}.flac", listed_in=trans.name,
                       speaker=speaker, gender=genders.get(speaker),
                       transcript=normalize_transcript(text) or None, intent=None, slots={},
                       entities=[], official_split=subset)
    return result

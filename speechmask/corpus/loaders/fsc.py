"""Fluent Speech Commands loader: data/{train,valid,test}_data.csv + wavs/speakers/<id>/*.wav."""

from __future__ import annotations

import csv
from pathlib import Path

from ...errors import CorpusError
from .common import ScanResult, normalize_transcript, require_dir, require_file

#: Official split name -> csv file under data/.
SPLIT_FILES = {"train": "train_data.csv", "valid": "valid_data.csv", "test": "test_data.csv"}
SLOT_NAMES = ("action", "object", "location")
_GENDERS = {"male": "m", "m": "m", "female": "f", "f": "f"}


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows as dicts); names and values stripped (FSC headers carry stray spaces)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{path}: unreadable csv ({exc})") from None
    header = [name.strip() for name in lines[0]] if lines else []
    return header, [dict(zip(header, (v.strip() for v in line))) for line in lines[1:]]


def _genders(data: Path) -> dict[str, str | None]:
    """speakerId -> 'm'/'f'/None from data/speaker_demographics.csv (optional)."""
    path = data / "speaker_demographics.csv"
    if not path.is_file():
        return {}
    return {rec.get("speakerId", ""): _GENDERS.get(rec.get("gender", "").lower())
            for rec in _read_csv(path)[1]}


def scan(root: Path) -> ScanResult:
    """Scan a `fluent_speech_commands_dataset/` folder. intent = action_object_location."""
    root = require_dir(Path(root).expanduser().absolute(),
                       "the fluent_speech_commands_dataset/ folder")
    data = root / "data"
    csvs = {name: require_file(data / fname, f"Fluent Speech Commands {name} split csv")
            for name, fname in SPLIT_FILES.items()}
    genders = _genders(data)
    result = ScanResult()
    for split, path in csvs.items():
        header, records = _read_csv(path)
        if not {"path", "speakerId", *SLOT_NAMES} <= set(header):
            raise CorpusError(f"{path}: expected columns path, speakerId, transcription, "
                              f"action, object, location; got {', '.join(header) or 'none'}")
        for lineno, rec in enumerate(records, 2):
            if not any(rec.values()):
                continue  # blank line
            where = f"{path}:{lineno}"
            rel, speaker = rec.get("path", ""), rec.get("speakerId", "")
            text = rec.get("transcription", rec.get("transcript", ""))
            slots = {name: rec.get(name, "") for name in SLOT_NAMES}
            if not rel or not speaker or not text or not all(slots.values()):
                result.bad.append((where, "row lacks path, speakerId, transcription, action, "
                                          "object or location"))
                continue
            audio = root / rel
            result.add(f"{speaker}_{audio.stem}", audio, listed_in=path.name, speaker=speaker,
                       gender=genders.get(speaker),
                       transcript=normalize_transcript(text) or None,
                       intent="_".join(slots[name] for name in SLOT_NAMES), slots=slots,
                       entities=[], official_split=split)
    return result

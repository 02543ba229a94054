"""The one manifest schema (JSON lines): validation, reading, atomic writing, split assignment."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from ..audio import atomic_write_text
from ..errors import ManifestError

#: Every row carries these fields (ARCHITECTURE.md). `transcript`, `intent` and `gender` may be
#: null where a corpus does not have them (VoxCeleb has no transcripts, LibriSpeech no intents).
REQUIRED_FIELDS = ("id", "path", "speaker", "gender", "duration_s", "transcript", "intent",
                   "slots", "entities", "split", "speaker_split")
#: Written where known.
OPTIONAL_FIELDS = ("corpus", "voice", "template", "official_split")
SPLITS = ("train", "dev", "test")
GENDERS = ("m", "f", None)
ENTITY_TYPES = ("person", "phone_number", "amount", "time", "date", "place")

#: Utterance-level split: shares of each speaker's utterances.
UTTERANCE_SPLIT_FRACTIONS = {"dev": 0.15, "test": 0.15}
#: Speaker-disjoint split: shares of each gender's speakers.
SPEAKER_SPLIT_FRACTIONS = {"dev": 0.15, "test": 0.25}


def validate_row(row: dict, where: str = "row") -> None:
    """Raise ManifestError (prefixed with `where`, e.g. 'm.jsonl:12') if `row` breaks the schema."""
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in row]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    for key in ("id", "path", "speaker"):
        if not isinstance(row[key], str) or not row[key]:
            raise ManifestError(f"{where}: field '{key}' must be a non-empty string")
    if row["gender"] not in GENDERS:
        raise ManifestError(f"{where}: gender must be 'm', 'f' or null, got {row['gender']!r}")
    dur = row["duration_s"]
    if not isinstance(dur, (int, float)) or isinstance(dur, bool) or not dur > 0:
        raise ManifestError(f"{where}: duration_s must be a positive number, got {dur!r}")
    for key in ("transcript", "intent"):
        if row[key] is not None and not isinstance(row[key], str):
            raise ManifestError(f"{where}: field '{key}' must be a string or null")
    if not isinstance(row["slots"], dict):
        raise ManifestError(f"{where}: slots must be an object")
    for key in ("split", "speaker_split"):
        if row[key] not in SPLITS:
            raise ManifestError(f"{where}: {key} must be one of {SPLITS}, got {row[key]!r}")
    if not isinstance(row["entities"], list):
        raise ManifestError(f"{where}: entities must be a list")
    words = row["transcript"].split() if row["transcript"] else []
    for i, ent in enumerate(row["entities"]):
        _validate_entity(ent, words, f"{where}: entities[{i}]")


def _validate_entity(ent: object, words: list[str], where: str) -> None:
    if not isinstance(ent, dict) or not {"type", "text", "start_word", "end_word"} <= set(ent):
        raise ManifestError(f"{where}: needs type, text, start_word, end_word")
    start, end = ent["start_word"], ent["end_word"]
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(words)):
        raise ManifestError(f"{where}: word span [{start}, {end}) outside the transcript's "
                            f"{len(words)} words")
    if " ".join(words[start:end]) != ent["text"]:
        raise ManifestError(f"{where}: text {ent['text']!r} != transcript words "
                            f"{' '.join(words[start:end])!r}")


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Read and validate a manifest. Every problem is one ManifestError naming the file and
    line: unreadable files, binary or non-UTF-8 bytes, invalid JSON, non-finite numbers (JSON
    has none; Python's reader would accept `NaN` and `1e999`), rows off the schema."""
    return [row for _, row in read_manifest_lines(path)]


def read_manifest_lines(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """`read_manifest` with each row's line number, for errors about a row found later."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from None
    rows: list[tuple[int, dict]] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        where = f"{path}:{lineno}"
        if b"\0" in raw:
            raise ManifestError(f"{where}: binary data (NUL bytes), not a JSON-lines manifest")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                f"column {exc.start + 1})") from None
        if not line.strip():
            continue
        row = parse_json_line(line, where)
        validate_row(row, where)
        if row["id"] in seen:
            raise ManifestError(f"{where}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        rows.append((lineno, row))
    if not rows:
        raise ManifestError(f"{path}: manifest is empty")
    return rows


def parse_json_line(line: str, where: str):
    """One JSON value, strictly: no NaN/Infinity, no number that overflows a float."""
    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ManifestError(f"{where}: number {text} is out of range")
        return value

    def constant(name: str):
        raise ManifestError(f"{where}: {name} is not a number JSON allows")

    try:
        return json.loads(line, parse_float=finite, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise ManifestError(f"{where}: JSON nested too deeply") from None


def write_manifest(path: str | os.PathLike, rows: Iterable[dict], *, force: bool = False) -> Path:
    """Validate every row, then write the manifest atomically. Refuses to overwrite unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise ManifestError(f"{path}: already exists (use --force to overwrite)")
    rows = list(rows)
    for i, row in enumerate(rows):
        validate_row(row, f"{path}: row {i}")
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n" for row in rows)
    atomic_write_text(path, text)
    return path


def resolve_audio(manifest_path: str | os.PathLike, row: dict) -> Path:
    """A row's audio path: absolute as given, or relative to the manifest's folder."""
    p = Path(row["path"])
    return p if p.is_absolute() else Path(manifest_path).resolve().parent / p


def _rank(seed: int, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def _take_counts(n: int, fractions: dict[str, float], minimum: int) -> dict[str, int]:
    """How many of `n` items go to dev and test: rounded shares, at least one each once
    `n >= minimum`, always leaving most items for train."""
    counts = {}
    for name in ("test", "dev"):
        share = round(n * fractions[name])
        counts[name] = max(1, share) if n >= minimum else 0
    return counts


def assign_utterance_split(rows: list[dict], seed: int = 0) -> None:
    """Set `split` in place: per speaker, a seeded share of its utterances to dev and test,
    so every speaker with >= 3 utterances appears in train, dev and test."""
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_speaker[row["speaker"]].append(row)
    for spk_rows in by_speaker.values():
        spk_rows.sort(key=lambda r: _rank(seed, r["id"]))
        counts = _take_counts(len(spk_rows), UTTERANCE_SPLIT_FRACTIONS, minimum=3)
        for i, row in enumerate(spk_rows):
            row["split"] = ("test" if i < counts["test"]
                            else "dev" if i < counts["test"] + counts["dev"] else "train")


def assign_speaker_split(rows: list[dict], seed: int = 0) -> None:
    """Set `speaker_split` in place: speakers (not utterances) go to train/dev/test, chosen per
    gender so that every part is gender-balanced; a gender with >= 2 speakers has one in test."""
    genders: dict[str, str | None] = {}
    for row in rows:
        genders.setdefault(row["speaker"], row["gender"])
    groups: dict[str | None, list[str]] = defaultdict(list)
    for spk, gender in genders.items():
        groups[gender].append(spk)
    part: dict[str, str] = {}
    for speakers in groups.values():
        speakers.sort(key=lambda s: _rank(seed, s))
        n = len(speakers)
        n_test = max(1, round(n * SPEAKER_SPLIT_FRACTIONS["test"])) if n >= 2 else 0
        n_dev = max(1, round(n * SPEAKER_SPLIT_FRACTIONS["dev"])) if n >= 3 else 0
        for i, spk in enumerate(speakers):
            part[spk] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    for row in rows:
        row["speaker_split"] = part[row["speaker"]]


def assign_splits(rows: list[dict], seed: int = 0) -> None:
    """Both split schemes, in place."""
    assign_utterance_split(rows, seed)
    assign_speaker_split(rows, seed)

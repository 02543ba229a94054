"""SLURP loader: dataset/slurp/{train,devel,test}.jsonl + metadata.json, audio/slurp_real/*.flac."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...errors import CorpusError, ManifestError
from ..manifest import parse_json_line
from .common import ScanResult, normalize_transcript, read_text, require_dir, require_file

#: Official splits with real recordings. train_synthetic.jsonl (TTS audio in audio/slurp_synth)
#: is ignored on purpose: it has no real speakers and would distort the speaker splits.
SPLITS = ("train", "devel", "test")

#: SLURP entity type -> speechmask ENTITY_TYPES. Every annotated span is kept in `slots` under
#: its SLURP type; only these also become `entities`. SLURP has no phone-number or monetary
#: amount slot (currency_name is a currency, change_amount a volume/brightness step), so
#: 'phone_number' and 'amount' never occur; relation ('mom'), house_place ('kitchen'),
#: business_name etc. stay slots only.
ENTITY_MAP = {
    "person": "person",
    "place_name": "place",
    "date": "date",
    "time": "time",
    "timeofday": "time",
}

#: `[type : filler]` in sentence_annotation; the type ends at the first colon.
_SPAN = re.compile(r"\[\s*([^:\[\]]+?)\s*:\s*([^\[\]]*?)\s*\]")
#: usrid 'FE-488': F/M/UNK gender, E/O native language, id (SLURP README).
_GENDERS = {"F": "f", "M": "m"}


def _speakers(path: Path) -> dict[str, str]:
    """Recording file name -> usrid, from metadata.json."""
    try:
        records = json.loads(read_text(path, "SLURP metadata"))
        return {name: str(info["usrid"]) for record in records.values()
                for name, info in record.get("recordings", {}).items() if info.get("usrid")}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError) as exc:
        raise CorpusError(f"{path}: unreadable SLURP metadata "
                          f"(expected {{slurp_id: {{recordings: {{file: {{usrid}}}}}}}}: {exc})"
                          ) from None


def _annotate(entry: dict) -> tuple[str, dict[str, str], list[dict]]:
    """(normalised transcript, slots, entities) with word spans on that transcript."""
    annotation = entry.get("sentence_annotation") or entry["sentence"]
    words: list[str] = []
    spans: list[tuple[str, list[str], int]] = []  # (type, filler words, expected start)
    pos = 0
    for match in _SPAN.finditer(annotation):
        words += normalize_transcript(annotation[pos:match.start()]).split()
        filler = normalize_transcript(match.group(2)).split()
        spans.append((match.group(1).strip(), filler, len(words)))
        words += filler
        pos = match.end()
    words += normalize_transcript(annotation[pos:]).split()
    sentence = normalize_transcript(entry["sentence"]).split()
    if sentence and sentence != words:  # annotation text drifted from the sentence: trust it
        words = sentence
    slots: dict[str, str] = {}
    entities = []
    for kind, filler, guess in spans:
        if not filler:
            continue
        text = " ".join(filler)
        slots[kind] = f"{slots[kind]} | {text}" if kind in slots else text
        start = _locate(words, filler, guess)
        if kind in ENTITY_MAP and start is not None:
            entities.append({"type": ENTITY_MAP[kind], "text": text,
                             "start_word": start, "end_word": start + len(filler)})
    return " ".join(words), slots, entities


def _locate(words: list[str], filler: list[str], guess: int) -> int | None:
    """Start of `filler` in `words`: the occurrence nearest the annotation's own position."""
    n = len(filler)
    starts = [i for i in range(len(words) - n + 1) if words[i:i + n] == filler]
    return min(starts, key=lambda i: abs(i - guess)) if starts else None


def scan(root: Path) -> ScanResult:
    """Scan a SLURP checkout: one row per real recording (headset and far-field alike)."""
    root = require_dir(Path(root).expanduser().absolute(), "the SLURP repository folder")
    text_dir = root / "dataset" / "slurp"
    speakers = _speakers(require_file(text_dir / "metadata.json", "SLURP speaker metadata"))
    jsonls = {split: require_file(text_dir / f"{split}.jsonl", f"SLURP {split} annotations")
              for split in SPLITS}
    audio_dir = next((d for d in (root / "audio" / "slurp_real", root / "slurp_real")
                      if d.is_dir()), None)
    if audio_dir is None:
        raise CorpusError(f"{root / 'audio' / 'slurp_real'}: missing (SLURP real recordings, "
                          "unpacked from slurp_real.tar.gz)")
    result = ScanResult()
    for split, path in jsonls.items():
        for lineno, line in enumerate(read_text(path, "SLURP JSON lines").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                entry = parse_json_line(line, where)
                transcript, slots, entities = _annotate(entry)
                recordings = [rec["file"] for rec in entry["recordings"]]
                intent = (f"{entry['scenario']}_{entry['action']}"
                          if entry.get("scenario") and entry.get("action") else entry["intent"])
            except (ManifestError, KeyError, TypeError, AttributeError) as exc:
                result.bad.append((where, f"unparsable SLURP entry ({type(exc).__name__}: {exc})"))
                continue
            for name in recordings:
                audio = audio_dir / name
                usrid = speakers.get(name)
                if usrid is None and audio.is_file():
                    result.bad.append((str(audio), "no usrid for this recording in metadata.json"))
                    continue
                result.add(audio.stem, audio, listed_in=path.name, speaker=usrid,
                           gender=_GENDERS.get((usrid or "?").split("-")[0][:1]),
                           transcript=transcript or None, intent=intent, slots=dict(slots),
                           entities=[dict(e) for e in entities], official_split=split)
    return result

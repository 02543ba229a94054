"""VoxCeleb1/2 loader: vox1_meta.csv / vox2_meta.csv + wav/idNNNNN/<youtube_id>/NNNNN.wav."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ...errors import CorpusError
from .common import ScanResult, require_dir

#: Meta files looked for in the root and in a meta/ subfolder. vox1: tab-separated
#: `VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set`; vox2: comma-separated
#: `VoxCeleb2 ID , VGGFace2 ID , Gender , Set ` (names and values padded with spaces).
META_FILES = ("vox1_meta.csv", "vox2_meta.csv")
_SPEAKER_DIR = re.compile(r"^id\d{5}$")
_GENDERS = {"m": "m", "male": "m", "f": "f", "female": "f"}
#: How deep below the root idNNNNN folders are looked for (wav/, vox1_test_wav/wav/, dev/wav/...).
_MAX_DEPTH = 4


def _read_meta(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """Speaker id -> (gender, official set)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: unreadable VoxCeleb meta file ({exc})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    delimiter = "\t" if lines and "\t" in lines[0] else ","
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = [re.sub(r"\s+", "", h).lower() for h in rows[0]] if rows else []
    try:
        i_id = next(i for i, h in enumerate(header)
                    if h.startswith("voxceleb") and h.endswith("id"))
        i_gender, i_set = header.index("gender"), header.index("set")
    except (StopIteration, ValueError):
        raise CorpusError(f"{path}: expected columns 'VoxCeleb1 ID' (or 'VoxCeleb2 ID'), "
                          f"'Gender', 'Set'; got {rows[0] if rows else 'an empty file'}") from None
    meta = {}
    for row in rows[1:]:
        cells = [c.strip() for c in row]
        if len(cells) > max(i_id, i_gender, i_set) and cells[i_id]:
            meta[cells[i_id]] = (_GENDERS.get(cells[i_gender].lower()), cells[i_set] or None)
    return meta


def _speaker_dirs(root: Path) -> list[Path]:
    """Every idNNNNN folder up to _MAX_DEPTH below the root (dev and test zips side by side)."""
    found, stack = [], [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        for child in sorted(p for p in folder.iterdir() if p.is_dir()):
            if _SPEAKER_DIR.match(child.name):
                found.append(child)
            elif depth < _MAX_DEPTH:
                stack.append((child, depth + 1))
    return sorted(found)


def scan(root: Path) -> ScanResult:
    """Scan a VoxCeleb folder. transcript and intent are None (no transcripts)."""
    root = require_dir(Path(root).expanduser().absolute(), "the VoxCeleb folder")
    metas = [d / name for name in META_FILES for d in (root, root / "meta") if (d / name).is_file()]
    if not metas:
        raise CorpusError(f"{root / META_FILES[0]}: missing (VoxCeleb speaker metadata; "
                          f"expected {' or '.join(META_FILES)} in {root} or {root / 'meta'})")
    meta: dict[str, tuple[str | None, str | None]] = {}
    for path in metas:
        meta.update(_read_meta(path))
    result = ScanResult()
    for spk_dir in _speaker_dirs(root):
        speaker = spk_dir.name
        gender, official = meta.get(speaker, (None, None))  # not in meta: gender unknown
        for audio in sorted(spk_dir.glob("*/*.wav")):
            extra = {"official_split": official} if official else {}
            result.add(f"{speaker}-{audio.parent.name}-{audio.stem}", audio, speaker=speaker,
                       gender=gender, transcript=None, intent=None, slots={}, entities=[], **extra)
    if not result.rows:
        m4a = next(root.glob("**/id*/*/*.m4a"), None)
        raise CorpusError(f"{root}: no VoxCeleb audio found (expected wav/idNNNNN/<video>/NNNNN.wav"
                          + ("; VoxCeleb2 .m4a files must be converted to .wav first)" if m4a
                             else ")"))
    return result

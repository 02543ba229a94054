"""Google Speech Commands v0.01/v0.02 loader: <word>/<speaker>_nohash_<n>.wav + split lists."""

from __future__ import annotations

from pathlib import Path

from ...errors import CorpusError
from .common import ScanResult, normalize_transcript, read_text, require_dir, require_file

#: Official split lists (paths relative to the root, one per line); everything else is train.
SPLIT_LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}
#: Folders that are not words start with one of these (_background_noise_, hidden folders).
SKIP_PREFIXES = ("_", ".")
_MARK = "_nohash_"


def _read_list(path: Path) -> set[str]:
    text = read_text(path, "a Speech Commands list file")
    return {line.strip() for line in text.splitlines() if line.strip()}


def scan(root: Path) -> ScanResult:
    """Scan a Speech Commands folder. transcript = intent = the word; gender unknown."""
    root = require_dir(Path(root).expanduser().absolute(), "the Speech Commands folder")
    lists = {split: _read_list(require_file(root / name, f"Speech Commands {split} list"))
             for split, name in SPLIT_LISTS.items()}
    official = {rel: split for split, rels in lists.items() for rel in rels}
    result = ScanResult()
    found: set[str] = set()
    words = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(SKIP_PREFIXES))
    for word_dir in words:
        word = word_dir.name
        for audio in sorted(word_dir.glob("*.wav")):
            rel = f"{word}/{audio.name}"
            found.add(rel)
            speaker, mark, _ = audio.stem.partition(_MARK)
            if not mark or not speaker:
                result.bad.append((str(audio), "name does not follow <speaker>_nohash_<n>.wav"))
                continue
            result.rows.append({
                "id": f"{word}_{audio.stem}",
                "path": str(audio),
                "speaker": speaker,
                "gender": None,
                "transcript": normalize_transcript(word.replace("_", " ")) or None,
                "intent": word,
                "slots": {},
                "entities": [],
                "official_split": official.get(rel, "train"),
            })
    for rel, split in sorted(official.items()):
        if rel not in found:
            result.bad.append((str(root / rel), f"listed in {SPLIT_LISTS[split]} but missing"))
    if not result.rows and not result.bad:
        raise CorpusError(f"{root}: no <word>/<speaker>_nohash_<n>.wav files found")
    return result

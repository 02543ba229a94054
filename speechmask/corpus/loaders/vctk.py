"""VCTK loader: 0.92 (wav48_silence_trimmed/*_mic1.flac) and 0.80 (wav48/*.wav) layouts."""

from __future__ import annotations

from pathlib import Path

from ...errors import CorpusError
from .common import ScanResult, normalize_transcript, require_dir, require_file

#: VCTK 0.92 has two microphones per utterance; one is enough (mic1 is the usual choice).
MIC = "mic1"
_GENDERS = {"F": "f", "M": "m"}


def _genders(path: Path) -> dict[str, str | None]:
    """Speaker id (as 'p225', also for 0.80 files that write '225') -> gender.

    speaker-info.txt is whitespace-separated `ID AGE GENDER ACCENTS REGION [COMMENTS]`."""
    genders: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].upper() == "ID":
            continue
        spk = fields[0] if not fields[0].isdigit() else f"p{fields[0]}"
        genders[spk] = _GENDERS.get(fields[2].upper())
    return genders


def _audio(root: Path) -> list[tuple[Path, str]]:
    """(audio file, utterance id) for the layout found under the root."""
    if (root / "wav48_silence_trimmed").is_dir():  # 0.92: p225/p225_001_mic1.flac
        suffix = f"_{MIC}"
        return [(p, p.stem[:-len(suffix)])
                for p in sorted((root / "wav48_silence_trimmed").glob(f"*/*{suffix}.flac"))]
    if (root / "wav48").is_dir():  # 0.80: p225/p225_001.wav
        return [(p, p.stem) for p in sorted((root / "wav48").glob("*/*.wav"))]
    raise CorpusError(f"{root / 'wav48_silence_trimmed'}: missing (expected VCTK 0.92 "
                      f"wav48_silence_trimmed/ or VCTK 0.80 wav48/ under {root})")


def _transcript(path: Path) -> str | None:
    try:
        return normalize_transcript(path.read_text(encoding="utf-8", errors="replace")) or None
    except OSError:
        return None


def scan(root: Path) -> ScanResult:
    """Scan a VCTK folder; utterances without a txt/ file get transcript None."""
    root = require_dir(Path(root).expanduser().absolute(), "the VCTK corpus folder")
    genders = _genders(require_file(root / "speaker-info.txt", "VCTK speaker list"))
    result = ScanResult()
    for audio, utt_id in _audio(root):
        speaker = audio.parent.name
        if not utt_id.startswith(f"{speaker}_"):
            result.bad.append((str(audio), f"file name does not start with '{speaker}_'"))
            continue
        result.rows.append({
            "id": utt_id,
            "path": str(audio),
            "speaker": speaker,
            "gender": genders.get(speaker),
            "transcript": _transcript(root / "txt" / speaker / f"{utt_id}.txt"),
            "intent": None,
            "slots": {},
            "entities": [],
        })
    if not result.rows and not result.bad:
        raise CorpusError(f"{root}: no VCTK audio found (expected wav48_silence_trimmed/pNNN/"
                          f"pNNN_NNN_{MIC}.flac or wav48/pNNN/pNNN_NNN.wav)")
    return result

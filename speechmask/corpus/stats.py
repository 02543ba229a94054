"""Corpus statistics (`speechmask data stats`) and integer-vs-float front-end parity."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np


def corpus_stats(rows: list[dict]) -> dict:
    """Counts and durations of a validated manifest."""
    durations = np.array([r["duration_s"] for r in rows])
    genders = {}
    for r in rows:
        genders.setdefault(r["speaker"], r["gender"])
    split_speakers: dict[str, set] = {}
    for r in rows:
        split_speakers.setdefault(r["speaker_split"], set()).add(r["speaker"])
    return {
        "utterances": len(rows),
        "speakers": len(genders),
        "speakers_by_gender": dict(Counter(g or "unknown" for g in genders.values())),
        "hours": round(float(durations.sum()) / 3600, 4),
        "duration_s": {"mean": round(float(durations.mean()), 3),
                       "min": round(float(durations.min()), 3),
                       "max": round(float(durations.max()), 3)},
        "intents": dict(sorted(Counter(r["intent"] for r in rows if r["intent"]).items())),
        "entities": dict(sorted(Counter(e["type"] for r in rows for e in r["entities"]).items())),
        "utterances_with_entities": sum(1 for r in rows if r["entities"]),
        "split": dict(sorted(Counter(r["split"] for r in rows).items())),
        "speaker_split": {k: len(v) for k, v in sorted(split_speakers.items())},
        "corpora": dict(Counter(r.get("corpus", "?") for r in rows)),
    }


def frontend_parity(manifest: Path, rows: list[dict], n: int) -> dict:
    """SNR (dB) of the integer front-end against float64 on the first `n` utterances, where
    SNR = 10 log10(var(float) / mean((float - int)^2)) per utterance (variance, not power, so
    the features' offset does not flatter it)."""
    from ..audio import read_audio, to_pcm16
    from ..features import FrontendConfig, log_mel_numpy
    from ..features_int import dequantize, log_mel_int
    from .manifest import resolve_audio

    cfg = FrontendConfig()
    snrs = []
    for r in rows[:n]:
        pcm = to_pcm16(read_audio(resolve_audio(manifest, r)))
        ref = log_mel_numpy(pcm / 32768.0, cfg)
        snrs.append(snr_db(ref, dequantize(log_mel_int(pcm, cfg), cfg)))
    return {"utterances": len(snrs), "snr_db_median": round(float(np.median(snrs)), 2),
            "snr_db_min": round(float(np.min(snrs)), 2), "config": cfg.to_dict()}


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(var(reference) / mean squared error)."""
    err = np.mean((np.asarray(reference, np.float64) - estimate) ** 2)
    return float(10 * np.log10(np.var(reference) / max(err, 1e-30)))


def format_stats(s: dict) -> str:
    lines = [f"utterances        {s['utterances']}",
             f"speakers          {s['speakers']}  {s['speakers_by_gender']}",
             f"hours             {s['hours']}",
             f"duration (s)      mean {s['duration_s']['mean']}  min {s['duration_s']['min']}  "
             f"max {s['duration_s']['max']}",
             f"split             {s['split']}",
             f"speaker_split     {s['speaker_split']} (speakers)",
             f"intents           {len(s['intents'])}",
             f"entities          {s['entities']} in {s['utterances_with_entities']} utterances"]
    for name, count in s["intents"].items():
        lines.append(f"  {name:<22}{count}")
    if "frontend" in s:
        f = s["frontend"]
        lines.append(f"front-end parity  int16 vs float on {f['utterances']} utterances: "
                     f"SNR median {f['snr_db_median']} dB, min {f['snr_db_min']} dB")
    return "\n".join(lines)

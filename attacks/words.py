"""Which words a protection sends: the share of each word's time-frequency cells that leave the
device, by the word's role in the request.

Roles, from the manifest's annotations: *entity* words (inside an `entities` span: the sensitive
details EntER scores, such as phone numbers, names and dates), *slot* words (inside another slot
value, such as a room or a device), and *carrier* words (the rest: the template's own words,
which carry the intent). A mask that withholds words rather than alternating sends carrier words
and withholds entity words; a 40 ms comb sends half of every word. Word times come from a forced
alignment of the clean test audio (`pocketsphinx_asr.align`); utterances it cannot align are
counted and left out.
"""

from __future__ import annotations

import numpy as np

from .data import SuiteData

ROLES = ("entity", "slot", "carrier")
# a word counts as withheld whole when less than this share of its cells is sent
WHOLE = 0.1


def roles(row: dict) -> list[str]:
    """The role of each word of `row["transcript"]`: entity spans first, then slot values found
    in the transcript, carrier for the rest."""
    words = row["transcript"].lower().split()
    out = ["carrier"] * len(words)
    for slot in (row.get("slots") or {}).values():
        value = str(slot).lower().split()
        for start in range(len(words) - len(value) + 1):
            if value and words[start:start + len(value)] == value:
                out[start:start + len(value)] = ["slot"] * len(value)
                break
    for entity in row.get("entities") or []:
        start, end = max(0, int(entity["start_word"])), min(len(words), int(entity["end_word"]))
        if end > start:
            out[start:end] = ["entity"] * (end - start)
    return out


def alignments(data: SuiteData, idx: list[int]) -> dict[int, list[tuple[float, float]]]:
    """Forced alignments of the clean audio of rows `idx` (those that align)."""
    from .pocketsphinx_asr import align

    out = {}
    for i in idx:
        spans = align(data.wave(i), data.rows[i]["transcript"])
        if spans is not None:
            out[i] = spans
    return out


def words_sent(data: SuiteData, withheld: list[np.ndarray],
               spans: dict[int, list[tuple[float, float]]], idx: list[int]) -> dict:
    """Per role: `sent`, the mean over words of the share of their cells sent (frames x bands,
    `withheld[i]` `(T_i, n_mels)`), and `withheld_whole`, the share of words of which less than
    `WHOLE` is sent; with the word counts and the utterances left unaligned."""
    hop_s = data.frontend.hop_ms / 1000.0
    shares: dict[str, list[float]] = {r: [] for r in ROLES}
    for i in idx:
        if i not in spans:
            continue
        mask = withheld[i]
        for role, (start, end) in zip(roles(data.rows[i]), spans[i]):
            # the aligner's frames are 10 ms, as the front-end's hop: rounding maps them exactly
            a = min(int(round(start / hop_s)), mask.shape[0])
            b = min(max(a + 1, int(round(end / hop_s))), mask.shape[0])
            if b > a:
                shares[role].append(float(1.0 - mask[a:b].mean()))
    out: dict = {"aligned": sum(i in spans for i in idx), "utterances": len(idx)}
    for role in ROLES:
        s = np.asarray(shares[role])
        out[role] = {"words": int(s.size),
                     "sent": float(s.mean()) if s.size else None,
                     "withheld_whole": float((s < WHOLE).mean()) if s.size else None}
    return out

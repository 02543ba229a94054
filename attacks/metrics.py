"""Attack metrics: word error rate, entity error rate (EntER), speaker EER and DET points."""

from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer
import numpy as np
from sklearn.metrics import det_curve, roc_curve

_WORD_RE = re.compile(r"(?:[^\W_]|')+")


def normalize_words(text: str | None) -> list[str]:
    """Lowercase words of letters, digits and apostrophes; everything else separates words.

    Apostrophes at the edge of a word are quotes, not contractions, and are dropped
    ("'Hello'" -> "hello", "don't" stays). None gives no words.
    """
    words = (w.strip("'") for w in _WORD_RE.findall((text or "").lower()))
    return [w for w in words if w]


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Corpus-level WER, (S + D + I) / reference words, over normalized text.

    Pairs whose reference has no words are skipped; an empty hypothesis counts every
    reference word as a deletion. Not clipped: insertions can push it above 1.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"word_error_rate: {len(refs)} references but {len(hyps)} hypotheses")
    ref_texts, hyp_texts = [], []
    n_words = deleted = 0
    for ref, hyp in zip(refs, hyps):
        ref_words, hyp_words = normalize_words(ref), normalize_words(hyp)
        if not ref_words:
            continue
        n_words += len(ref_words)
        if hyp_words:
            ref_texts.append(" ".join(ref_words))
            hyp_texts.append(" ".join(hyp_words))
        else:
            deleted += len(ref_words)
    if not n_words:
        raise ValueError("word_error_rate: no reference has any words")
    errors = deleted
    if ref_texts:
        out = jiwer.process_words(ref_texts, hyp_texts)
        errors += out.substitutions + out.deletions + out.insertions
    return errors / n_words


def _contains(words: list[str], part: list[str]) -> bool:
    """True when `part` occurs as a contiguous run of `words`."""
    k = len(part)
    return any(words[i:i + k] == part for i in range(len(words) - k + 1))


def entity_recovery(rows: list[dict], hyps: list[str]) -> list[bool]:
    """For each entity of each manifest row, in order: does the hypothesis contain it?

    An entity is recovered iff its normalized words (`transcript.split()[start_word:end_word]`)
    occur contiguously in the normalized hypothesis of its row.
    """
    if len(rows) != len(hyps):
        raise ValueError(f"entity_recovery: {len(rows)} rows but {len(hyps)} hypotheses")
    recovered = []
    for row, hyp in zip(rows, hyps):
        hyp_words = normalize_words(hyp)
        transcript = (row.get("transcript") or "").split()
        for entity in row.get("entities") or []:
            start, end = entity["start_word"], entity["end_word"]
            if not 0 <= start < end <= len(transcript):
                raise ValueError(f"entity_recovery: span [{start}, {end}) of {entity.get('text')!r}"
                                 f" is outside the {len(transcript)}-word transcript")
            words = normalize_words(" ".join(transcript[start:end]))
            if not words:
                raise ValueError(f"entity_recovery: entity {entity.get('text')!r} has no words")
            recovered.append(_contains(hyp_words, words))
    return recovered


def entity_error_rate(rows: list[dict], hyps: list[str]) -> float | None:
    """Entity error rate (EntER): share of all entities not recovered; None without entities."""
    recovered = entity_recovery(rows, hyps)
    if not recovered:
        return None
    return 1.0 - sum(recovered) / len(recovered)


def _trials(target_scores: Sequence[float], nontarget_scores: Sequence[float]
            ) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of the pooled trials, labels 1 for target; rejects an empty side."""
    target = np.asarray(target_scores, dtype=float).ravel()
    nontarget = np.asarray(nontarget_scores, dtype=float).ravel()
    if not target.size or not nontarget.size:
        raise ValueError(f"need target and non-target scores, got {target.size} and "
                         f"{nontarget.size}")
    labels = np.r_[np.ones(target.size), np.zeros(nontarget.size)]
    return labels, np.r_[target, nontarget]


def eer(target_scores: Sequence[float], nontarget_scores: Sequence[float]) -> tuple[float, float]:
    """Equal error rate (fraction) and its threshold; higher score = more likely same speaker.

    A trial is accepted when score >= threshold. The EER and the threshold are interpolated
    linearly between the two ROC points where FPR and FNR cross.
    """
    labels, scores = _trials(target_scores, nontarget_scores)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    # The first ROC point (accept nothing) has threshold +inf: use the top score instead.
    thresholds = np.where(np.isfinite(thresholds), thresholds, scores.max())
    gap = fnr - fpr  # +1 at the first point, -1 at the last, non-increasing in between
    i = int(np.argmax(gap <= 0))
    w = gap[i - 1] / (gap[i - 1] - gap[i])
    rate = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    threshold = thresholds[i - 1] + w * (thresholds[i] - thresholds[i - 1])
    return float(rate), float(threshold)


def det_points(target_scores: Sequence[float], nontarget_scores: Sequence[float]
               ) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, fnr) of the DET curve, for plotting; both shaped (n_points,)."""
    labels, scores = _trials(target_scores, nontarget_scores)
    fpr, fnr, _ = det_curve(labels, scores)
    return fpr, fnr

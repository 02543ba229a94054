"""Attack metrics: EER against theory and brute force, WER and EntER hand cases, DET points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_curve

from attacks.metrics import (det_points, eer, entity_error_rate, entity_recovery,
                             normalize_words, word_error_rate)


@pytest.mark.parametrize("d", [0.0, 1.0, 2.0, 3.0])
def test_eer_matches_gaussian_theory(d):
    rng = np.random.default_rng(int(d * 10) + 1)
    n = 200_000
    rate, threshold = eer(rng.normal(d, 1.0, n), rng.normal(0.0, 1.0, n))
    assert rate == pytest.approx(norm.cdf(-d / 2), abs=0.005)
    assert threshold == pytest.approx(d / 2, abs=0.05)


def _brute_force_eer(target, nontarget):
    """(EER, threshold) at the threshold minimising |FAR - FRR| over every score and +inf."""
    best = None
    for t in np.r_[np.unique(np.r_[target, nontarget]), np.inf]:
        far, frr = np.mean(nontarget >= t), np.mean(target < t)
        if best is None or abs(far - frr) < best[0]:
            best = (abs(far - frr), (far + frr) / 2, t)
    return best[1], best[2]


@pytest.mark.parametrize("seed", range(8))
def test_eer_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_t, n_n = rng.integers(3, 40, size=2)
    target = rng.normal(rng.uniform(0, 2), rng.uniform(0.5, 2), n_t)
    nontarget = rng.normal(0.0, 1.0, n_n)
    step = 1.0 / min(n_t, n_n)
    rate, threshold = eer(target, nontarget)

    brute_rate, _ = _brute_force_eer(target, nontarget)
    assert abs(rate - brute_rate) <= step
    # The returned threshold really operates near the EER.
    assert abs(np.mean(nontarget >= threshold) - rate) <= step
    assert abs(np.mean(target < threshold) - rate) <= step

    fpr, tpr, _ = roc_curve(np.r_[np.ones(n_t), np.zeros(n_n)], np.r_[target, nontarget])
    k = np.argmin(np.abs(1 - tpr - fpr))
    assert abs(rate - (fpr[k] + 1 - tpr[k]) / 2) <= step
    assert min(fpr[k], 1 - tpr[k]) - step <= rate <= max(fpr[k], 1 - tpr[k]) + step


def test_eer_interpolates_between_roc_points():
    # ROC points at thresholds 2.5 (FPR 1/2, FNR 2/3) and 2 (FPR 1/2, FNR 1/3): they cross halfway.
    rate, threshold = eer([1.0, 2.0, 3.0], [0.0, 2.5])
    assert rate == pytest.approx(0.5)
    assert threshold == pytest.approx(2.25)


def test_eer_perfect_separation():
    nontarget, target = np.array([0.1, 0.3, 1.0]), np.array([2.0, 2.5, 4.0])
    rate, threshold = eer(target, nontarget)
    assert rate == 0.0
    assert nontarget.max() < threshold <= target.min()


def test_eer_identical_scores():
    rate, threshold = eer([0.7] * 5, [0.7] * 9)
    assert rate == pytest.approx(0.5)
    assert np.isfinite(threshold)


@pytest.mark.parametrize("target, nontarget", [([], [1.0]), ([1.0], []), ([], [])])
def test_eer_rejects_empty(target, nontarget):
    with pytest.raises(ValueError):
        eer(target, nontarget)


def test_det_points_monotone_in_unit_square():
    rng = np.random.default_rng(5)
    fpr, fnr = det_points(rng.normal(1.5, 1, 300), rng.normal(0, 1, 400))
    assert fpr.shape == fnr.shape and fpr.size > 10
    for rates in (fpr, fnr):
        assert np.all((rates >= 0) & (rates <= 1))
    assert np.all(np.diff(fpr) <= 0) and np.all(np.diff(fnr) >= 0)


@pytest.mark.parametrize("text, words", [
    ("Turn ON the lights.", ["turn", "on", "the", "lights"]),
    ("Don't call 555-0199, 'Bob'!", ["don't", "call", "555", "0199", "bob"]),
    (None, []),
    (" ... ", []),
])
def test_normalize_words(text, words):
    assert normalize_words(text) == words


@pytest.mark.parametrize("refs, hyps, expected", [
    (["turn on the lights"], ["turn on the lights"], 0.0),
    (["turn on the lights"], ["turn off the lights"], 0.25),
    (["turn on the lights"], [""], 1.0),
    (["turn on the lights"], [None], 1.0),
    (["turn on the lights", "call bob"], ["", "call bob"], 4 / 6),
    (["Turn ON the lights."], ["turn on the lights"], 0.0),
    (["", "call bob"], ["anything here", "call rob"], 0.5),
])
def test_word_error_rate(refs, hyps, expected):
    assert word_error_rate(refs, hyps) == pytest.approx(expected)


def test_word_error_rate_insertions_exceed_one():
    rate = word_error_rate(["lights on"], ["please turn all the lights on right now"])
    assert rate == pytest.approx(3.0)


@pytest.mark.parametrize("refs, hyps", [
    (["a b"], []),
    (["a"], ["a", "b"]),
    (["", "..."], ["x", "y"]),
])
def test_word_error_rate_rejects(refs, hyps):
    with pytest.raises(ValueError):
        word_error_rate(refs, hyps)


def _row(transcript, *spans):
    words = transcript.split()
    return {"transcript": transcript,
            "entities": [{"type": "person", "text": " ".join(words[s:e]), "start_word": s,
                          "end_word": e} for s, e in spans]}


CALL = _row("call John Smith now please", (1, 3))


@pytest.mark.parametrize("hyp, recovered", [
    ("Call john smith, now.", True),
    ("john smith", True),
    ("call john smyth now please", False),
    ("call john a smith now", False),
    ("call smith john now", False),
    ("", False),
])
def test_entity_recovery(hyp, recovered):
    assert entity_recovery([CALL], [hyp]) == [recovered]
    assert entity_error_rate([CALL], [hyp]) == (0.0 if recovered else 1.0)


def test_entity_error_rate_none_without_entities():
    rows = [_row("turn on the lights"), {"transcript": None, "entities": []}]
    assert entity_error_rate(rows, ["turn on the lights", "x"]) is None


def test_entity_error_rate_multi_row_fraction():
    rows = [_row("text Ann at five five five one two", (1, 2), (3, 8)),
            _row("what is the weather"),
            _row("email Bob Jones", (1, 3))]
    hyps = ["text ann at five five nine one two", "what is the weather", "email bob"]
    assert entity_recovery(rows, hyps) == [True, False, False]
    assert entity_error_rate(rows, hyps) == pytest.approx(2 / 3)


@pytest.mark.parametrize("rows, hyps", [
    ([CALL], []),
    ([_row("call John", (1, 3))], ["call john"]),
])
def test_entity_recovery_rejects(rows, hyps):
    with pytest.raises(ValueError):
        entity_recovery(rows, hyps)

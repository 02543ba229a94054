"""McAdams baseline: shapes, silence, identity at alpha = 1, formant warp, alphas, cost."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
from scipy.signal import lfilter

from attacks.mcadams import McAdamsConfig, anonymise, mcadams, mcadams_cost, utterance_alpha
from speechmask.errors import AudioError, ConfigError

SR = 16000
EDGE = SR * 20 // 1000  # 20 ms left out at each end when comparing waveforms


def vowel(formants: tuple[float, ...] = (700, 1200, 2500), seconds: float = 1.0,
          f0: float = 120.0, bandwidth: float = 80.0) -> np.ndarray:
    """A glottal-pulse train at f0 through one two-pole resonator per formant; peak 0.5."""
    wave = np.zeros(int(SR * seconds))
    wave[::int(SR / f0)] = 1.0
    radius = np.exp(-np.pi * bandwidth / SR)
    for hz in formants:
        wave = lfilter([1 - radius], [1, -2 * radius * np.cos(2 * np.pi * hz / SR), radius ** 2],
                       wave)
    return (0.5 * wave / np.max(np.abs(wave))).astype(np.float32)


def strong_formants(wave: np.ndarray, order: int = 8) -> np.ndarray:
    """Frequencies (Hz) of the sharp LPC poles (|z| > 0.85) of a 256 ms middle segment."""
    middle = wave.size // 2
    segment = wave[middle - 2048:middle + 2048].astype(np.float64) * np.hanning(4096)
    poles = np.roots(librosa.lpc(segment, order=order))
    poles = poles[(poles.imag > 0) & (np.abs(poles) > 0.85)]
    return np.sort(np.angle(poles)) * SR / (2 * np.pi)


@pytest.mark.parametrize("n", [1, 100, 321, 16000, 16001])
@pytest.mark.parametrize("alpha", [0.5, 0.8, 1.0])
def test_keeps_length_dtype_and_stays_finite(n, alpha):
    wave = np.resize(vowel(), n)
    out = mcadams(wave, alpha)
    assert out.shape == (n,) and out.dtype == np.float32 and np.all(np.isfinite(out))


@pytest.mark.parametrize("alpha", [0.5, 0.9])
def test_silence_passes_through(alpha):
    assert np.array_equal(mcadams(np.zeros(SR, np.float32), alpha), np.zeros(SR, np.float32))
    gapped = vowel()
    gapped[int(0.4 * SR):int(0.6 * SR)] = 0.0
    out = mcadams(gapped, alpha)
    assert np.all(np.isfinite(out))
    assert np.all(out[int(0.45 * SR):int(0.55 * SR)] == 0.0)  # frames wholly inside the gap
    assert np.sqrt(np.mean(out[:int(0.4 * SR)] ** 2)) > 0.01  # the voiced part is not muted


def test_alpha_one_reconstructs_the_input():
    wave = vowel()
    out = mcadams(wave, 1.0)[EDGE:-EDGE]
    error = wave[EDGE:-EDGE] - out
    assert 10 * np.log10(np.sum(wave[EDGE:-EDGE] ** 2) / max(np.sum(error ** 2), 1e-30)) > 20


@pytest.mark.parametrize("formants, tracked, alpha", [
    ((700, 1200, 2500), 700, 0.7),   # phi < 1 rad: low formants move up
    ((700, 1200, 2500), 700, 0.5),
    ((700, 1200, 2500), 1200, 0.7),
    ((700, 3500), 3500, 0.7),        # phi > 1 rad (above ~2546 Hz): high formants move down
    ((700, 3500), 3500, 0.5),
])
def test_formant_moves_to_phi_to_the_alpha(formants, tracked, alpha):
    wave = vowel(formants)
    before = strong_formants(wave)
    measured_in = before[np.argmin(np.abs(before - tracked))]
    assert abs(measured_in - tracked) < 40  # the measurement itself finds the formant
    predicted = (2 * np.pi * tracked / SR) ** alpha * SR / (2 * np.pi)
    after = strong_formants(mcadams(wave, alpha))
    measured_out = after[np.argmin(np.abs(after - predicted))]
    assert abs(measured_out - predicted) < 80
    assert abs(measured_out - measured_in) > 150
    assert np.sign(measured_out - measured_in) == np.sign(predicted - tracked)


@pytest.mark.parametrize("alpha", [0.5, 0.7, 0.9])
def test_output_never_louder_than_input_peak_and_not_muted(alpha):
    wave = vowel()
    out = mcadams(wave, alpha)
    assert np.max(np.abs(out)) <= np.max(np.abs(wave)) * (1 + 1e-6)
    assert np.sqrt(np.mean(out ** 2)) > 0.3 * np.sqrt(np.mean(wave ** 2))
    assert not np.allclose(out, wave, atol=1e-3)


@pytest.mark.parametrize("wave, alpha, error", [
    (np.zeros((2, 160)), 0.7, AudioError),
    (np.array([0.0, np.nan, 0.1]), 0.7, AudioError),
    (np.zeros(160), 0.0, ConfigError),
])
def test_rejects_bad_input(wave, alpha, error):
    with pytest.raises(error):
        mcadams(wave, alpha)


def test_rejects_fractional_frames():
    with pytest.raises(ConfigError, match="whole samples"):
        mcadams(vowel(), 0.7, McAdamsConfig(winlen_ms=20.01))


@pytest.mark.parametrize("seed", [0, 1, 1234])
def test_utterance_alpha_is_deterministic_and_spread(seed):
    cfg = McAdamsConfig()
    ids = [f"spk{i % 7:02d}-utt{i:04d}" for i in range(200)]
    alphas = np.array([utterance_alpha(utt_id, seed, cfg) for utt_id in ids])
    again = np.array([utterance_alpha(utt_id, seed, cfg) for utt_id in ids])
    assert np.array_equal(alphas, again)
    assert np.unique(alphas).size == 200
    assert np.all((alphas >= 0.5) & (alphas <= 0.9))
    assert alphas.min() < 0.55 and alphas.max() > 0.85
    assert 0.09 < alphas.std() < 0.14  # U[0.5, 0.9] has std 0.4 / sqrt(12) = 0.115
    assert utterance_alpha(ids[0], seed + 1, cfg) != alphas[0]


def test_utterance_alpha_follows_the_configured_range_and_anonymise_uses_it():
    narrow = McAdamsConfig(alpha_low=0.6, alpha_high=0.65)
    assert all(0.6 <= utterance_alpha(f"u{i}", 0, narrow) <= 0.65 for i in range(50))
    wave = vowel()
    assert np.array_equal(anonymise(wave, "u1", seed=3),
                          mcadams(wave, utterance_alpha("u1", 3, McAdamsConfig())))
    assert not np.allclose(anonymise(wave, "u1", seed=3), anonymise(wave, "u2", seed=3))


def test_cost_is_analytic_and_scales_with_frame_rate():
    cost = mcadams_cost()
    assert set(cost) == {"params", "macs_per_second", "weight_bytes", "activation_bytes"}
    assert cost["params"] == 0
    assert all(isinstance(v, int) for v in cost.values())
    assert all(cost[k] > 0 for k in ("macs_per_second", "weight_bytes", "activation_bytes"))
    assert cost["weight_bytes"] >= 2 * 320  # at least the int16 Hann table
    halved = mcadams_cost(dataclasses.replace(McAdamsConfig(), hop_ms=5.0))
    assert 1.9 < halved["macs_per_second"] / cost["macs_per_second"] < 2.1
    deeper = mcadams_cost(dataclasses.replace(McAdamsConfig(), lpc_order=30))
    assert deeper["macs_per_second"] > cost["macs_per_second"]
    assert deeper["activation_bytes"] > cost["activation_bytes"]

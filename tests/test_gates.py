"""Hard-concrete gates: sampling statistics against the analytic formulas, gradients, masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechmask.errors import ConfigError
from speechmask.features import FrontendConfig
from speechmask.models.gates import (GateConfig, binary_gates, deterministic_gates, expand_gates,
                                     mask_features, mask_waveform, prob_fully_open, prob_open,
                                     sample_gates)

CFG = GateConfig()


@pytest.mark.parametrize("log_alpha", [-3.0, -1.0, 0.0, 0.7, 2.5])
def test_sampling_matches_analytic_open_and_fully_open_probabilities(log_alpha):
    la = torch.full((200_000,), log_alpha)
    z = sample_gates(la, CFG, generator=torch.Generator().manual_seed(0))
    assert z.min() >= 0 and z.max() <= 1
    n = la.numel()
    tol = 4 * np.sqrt(0.25 / n)  # four standard errors of a proportion
    assert abs(float((z > 0).float().mean()) - float(prob_open(la[:1], CFG))) < tol
    assert abs(float((z == 1).float().mean()) - float(prob_fully_open(la[:1], CFG))) < tol


def test_expected_l0_is_the_mean_open_probability():
    la = torch.linspace(-4, 4, 64).repeat(4000, 1)
    z = sample_gates(la, CFG, generator=torch.Generator().manual_seed(1))
    empirical_l0 = (z > 0).float().sum(1).mean()
    assert float(empirical_l0) == pytest.approx(float(prob_open(la[0], CFG).sum()), rel=0.01)


def test_gradients_reach_the_gate_logits():
    la = torch.zeros(8, 5, 2, requires_grad=True)
    z = sample_gates(la, CFG, generator=torch.Generator().manual_seed(2))
    (z.sum() + prob_open(la, CFG).sum()).backward()
    assert torch.isfinite(la.grad).all() and la.grad.abs().sum() > 0


def test_inference_is_deterministic_and_thresholded():
    la = torch.tensor([-2.0, -0.01, 0.01, 2.0])
    assert torch.equal(binary_gates(la, CFG), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert torch.equal(binary_gates(la, CFG), (deterministic_gates(la, CFG) > 0.5).float())
    assert GateConfig(threshold=0.8).threshold_logit > 0


def test_expand_gates_to_frames_and_bands():
    cfg = GateConfig(segment_ms=30, band_groups=4)
    fe = FrontendConfig()
    edges = cfg.band_edges(fe.n_mels)
    assert edges == [(0, 10), (10, 20), (20, 30), (30, 40)]
    gates = torch.tensor([[[1.0, 0, 1, 0], [0, 1, 0, 1]]])
    m = expand_gates(gates, n_frames=7, seg_frames=cfg.frames_per_segment(fe), edges=edges)
    assert m.shape == (1, 7, 40)
    assert torch.all(m[0, :3, :10] == 1) and torch.all(m[0, :3, 10:20] == 0)
    assert torch.all(m[0, 3:6, 10:20] == 1) and torch.all(m[0, 6] == 0)  # tail frame not sent


def test_masked_features_take_the_floor_and_audio_is_zeroed():
    x = torch.randn(1, 4, 3)
    m = torch.tensor([[[1.0] * 3, [0.0] * 3, [1.0] * 3, [0.0] * 3]])
    floor = float(np.log(1e-6))
    out = mask_features(x, m, floor)
    assert torch.allclose(out[0, 1], torch.tensor(floor)) and torch.allclose(out[0, 0], x[0, 0])
    half = mask_features(x, torch.full_like(x, 0.5), floor)  # soft gate: amplitude halved
    assert torch.allclose(half, torch.log(0.25 * (torch.exp(x) - 1e-6) + 1e-6), atol=1e-5)
    wave = np.arange(1, 11, dtype=np.float32)
    assert mask_waveform(wave, np.array([1, 0, 1]), 3).tolist() == [1, 2, 3, 0, 0, 0, 7, 8, 9, 0]


@pytest.mark.parametrize("kwargs", [dict(segment_ms=25), dict(band_groups=0),
                                    dict(stretch_low=0.1), dict(threshold=1.0)])
def test_bad_gate_configs(kwargs):
    with pytest.raises(ConfigError):
        GateConfig(**kwargs).frames_per_segment(FrontendConfig())

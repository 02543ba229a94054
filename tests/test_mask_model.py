"""Mask generators: causal, streaming gates == offline gates, cost report, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechmask.masking import StreamingGates, gate_logits
from speechmask.models.gates import GateConfig
from speechmask.models.mask import MaskConfig, MaskGenerator

ARCH_CASES = [dict(arch="tiny"), dict(arch="tiny", context_segments=2, gate=GateConfig(40.0, 2)),
              dict(arch="small"), dict(arch="small", layers=2, kernel=3,
                                       gate=GateConfig(segment_ms=160.0, band_groups=4))]


def random_model(kwargs) -> MaskGenerator:
    torch.manual_seed(0)
    model = MaskGenerator(MaskConfig(**kwargs))
    with torch.no_grad():  # make every weight matter, including the biases
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model.eval()


@pytest.mark.parametrize("kwargs", ARCH_CASES)
def test_gates_are_causal(kwargs):
    model = random_model(kwargs)
    x = torch.randn(1, 120, 40)
    base = model(x)
    fps = model.cfg.fps
    cut = 5 * fps  # change everything from segment 5 on
    y = x.clone()
    y[:, cut:] += 3.0
    changed = model(y)
    assert torch.equal(base[:, :5], changed[:, :5])
    assert not torch.allclose(base[:, 5:], changed[:, 5:])


@pytest.mark.parametrize("kwargs", ARCH_CASES)
@pytest.mark.parametrize("chunk", [1, 3, 17, 64])
def test_streaming_gates_equal_offline_gates(kwargs, chunk):
    model = random_model(kwargs)
    feats = np.random.default_rng(1).standard_normal((203, 40)).astype(np.float32) * 3 - 5
    offline = gate_logits(model, feats)
    stream = StreamingGates(model)
    parts = [stream.push(feats[i:i + chunk]) for i in range(0, len(feats), chunk)]
    online = np.concatenate(parts)
    assert online.shape == offline.shape == (203 // model.cfg.fps, model.cfg.gate.band_groups)
    np.testing.assert_allclose(online, offline, atol=1e-4)
    assert np.array_equal(online > 0, offline > 0)
    assert len(stream.frames) <= model.cfg.window_frames  # bounded memory


@pytest.mark.parametrize("kwargs", ARCH_CASES)
def test_cost_report(kwargs):
    model = MaskGenerator(MaskConfig(**kwargs))
    cost = model.cost()
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    assert cost["macs_per_second"] > cost["params"]  # every weight is used many times a second
    assert 0 < cost["activation_bytes"] < 64 * 1024 and cost["weight_bytes"] >= cost["params"]


def test_small_model_fits_the_device_budget():
    """The default generator must be far inside the 48 KB (weights + arena) export target."""
    cost = MaskGenerator(MaskConfig()).cost()
    assert cost["weight_bytes"] + cost["activation_bytes"] < 16 * 1024
    assert cost["macs_per_second"] < 1e6  # < 0.2 % of a 480 MHz core at 1 MAC/cycle

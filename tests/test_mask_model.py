"""Mask generators: causal, streaming gates == offline gates, cost report, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechmask.device import StreamingGates, mask_cost
from speechmask.masking import gate_logits
from speechmask.models.gates import GateConfig
from speechmask.models.mask import MaskConfig, MaskGenerator

ARCH_CASES = [dict(arch="tiny"), dict(arch="tiny", context_segments=2, gate=GateConfig(40.0, 2)),
              dict(arch="small", feedback=0), dict(arch="tiny", feedback=3, gate=GateConfig(80.0)),
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
    seg_frames = model.cfg.frames_per_segment
    cut = 5 * seg_frames  # change everything from segment 5 on
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
    n = model.cfg.frames_per_segment
    assert online.shape == offline.shape == (203 // n, model.cfg.gate.band_groups)
    np.testing.assert_allclose(online, offline, atol=1e-4)
    assert np.array_equal(online > 0, offline > 0)
    assert len(stream.pending) < model.cfg.frames_per_segment  # bounded memory


@pytest.mark.parametrize("kwargs", ARCH_CASES)
def test_cost_report(kwargs):
    model = MaskGenerator(MaskConfig(**kwargs))
    cost = mask_cost(model)
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    assert cost["macs_per_second"] > cost["params"]  # every weight is used many times a second
    assert 0 < cost["activation_bytes"] < 64 * 1024 and cost["weight_bytes"] >= cost["params"]


def test_small_model_fits_the_device_budget():
    """The default generator must be far inside the 48 KB (weights + arena) export target."""
    cost = mask_cost(MaskGenerator(MaskConfig()))
    assert cost["weight_bytes"] + cost["activation_bytes"] < 16 * 1024
    assert cost["macs_per_second"] < 1e6  # < 0.2 % of a 480 MHz core at 1 MAC/cycle


def test_feedback_prior_alternates_on_steady_input():
    """With a constant audio path (logit 1) the initial feedback weight -3 closes every segment
    that follows an open one: 1, 0, 1, 0, ... The first segment sees 'nothing sent yet'."""
    model = MaskGenerator(MaskConfig(arch="tiny"))
    with torch.no_grad():
        model.net.fc2.weight.zero_()
    gates = (model(torch.zeros(1, 80, 40)) > 0).int()[0, :, 0].tolist()
    assert gates == [1, 0] * (len(gates) // 2)


def test_inference_feeds_back_binary_gates():
    model = random_model(dict(arch="small", feedback=2))
    x = torch.randn(2, 96, 40)
    a = model.segment_logits(x)
    w = model.cfg.logit_bound * torch.tanh(model.feedback.weight)
    prev, expect = torch.zeros(2, 2), []
    for s in range(a.shape[1]):
        la = model.cfg.logit_bound * torch.tanh((a[:, s] + prev @ w.T) / model.cfg.logit_bound)
        expect.append(la)
        prev = torch.cat([(la > 0).float(), prev[:, :1]], dim=1)
    torch.testing.assert_close(model(x), torch.stack(expect, 1))
    assert model(x).abs().max() <= model.cfg.logit_bound  # int8 output range is known


def test_training_samples_carry_gradients_to_feedback_and_audio_path():
    model = random_model(dict(arch="small"))
    x = torch.randn(3, 96, 40)
    noise = torch.rand(3, 96 // model.cfg.frames_per_segment, 1,
                       generator=torch.Generator().manual_seed(0))
    log_alpha, z = model(x, noise)
    assert z.shape == log_alpha.shape and ((z >= 0) & (z <= 1)).all()
    (z.sum() + log_alpha.sum()).backward()
    assert model.feedback.weight.grad.abs().sum() > 0
    assert model.net.inp.weight.grad.abs().sum() > 0


def test_soft_keep_interpolates_exactly_between_sent_and_withheld():
    """Mask training feeds the cloud model clean features and a keep weight; for binary keep
    it must see exactly what the device sends (masked features), mask flag included."""
    from speechmask.models.gates import expand_gates, floor_value, mask_features
    from speechmask.models.slu import SLUConfig, SLUModel

    torch.manual_seed(0)
    for level_norm in ("mean", "max"):
        slu = SLUModel(SLUConfig(intents=("a", "b"), level_norm=level_norm)).eval()
        x = torch.randn(2, 64, 40) * 2 - 3
        lengths = torch.tensor([64, 50])
        gates = (torch.rand(2, 8, 1) > 0.5).float()
        keep = expand_gates(gates, 64, 8, [(0, 40)])
        sent = mask_features(x, keep, floor_value(slu.cfg.frontend))
        torch.testing.assert_close(slu.prepare(x, lengths, keep), slu.prepare(sent, lengths))
        half = slu.prepare(x, lengths, keep * 0 + 0.5)
        assert torch.allclose(half[..., -1][:, :50], torch.tensor(0.5))  # flag in between


@pytest.mark.parametrize("kwargs", ARCH_CASES)
def test_input_shorter_than_one_segment_gives_no_gates(kwargs):
    model = random_model(kwargs)
    short = torch.zeros(1, model.cfg.frames_per_segment - 1, 40)
    assert model(short).shape == (1, 0, model.cfg.gate.band_groups)

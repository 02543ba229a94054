"""The CUDA path of training (bf16 autocast by default): runs only where a CUDA device is present
(`pytest -m gpu`; `make test` leaves these out).

The corpus here is not TTS (a GPU machine need not have espeak-ng): each intent is tone bursts of
their own frequency in noise, written in the real layout (WAV files and a manifest), so a cloud model
that trains at all on the GPU learns it, and one that does not fails the accuracy check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechmask.audio import write_wav
from speechmask.corpus.manifest import write_manifest

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SR = 16000
TONES = {"lights_on": 500.0, "lights_off": 1200.0, "play_music": 2500.0}


@pytest.fixture(scope="module")
def tone_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    rows = []
    for s in range(4):
        spk = f"spk{s:03d}"
        (out / spk).mkdir()
        for u in range(18):
            intent = list(TONES)[u % len(TONES)]
            dur = 1.0 + 0.5 * rng.random()
            t = np.arange(int(dur * SR)) / SR
            # bursts at 4 Hz, not a steady tone: the device's per-band normalisation removes
            # what is stationary in a band
            burst = (np.sin(2 * np.pi * 4 * t + rng.random() * 6.3) > 0).astype(float)
            wave = 0.3 * burst * np.sin(2 * np.pi * (TONES[intent] + 20 * s) * t) \
                + 0.05 * rng.standard_normal(t.size)
            path = f"{spk}/{spk}_{u:04d}.wav"
            write_wav(out / path, wave.astype(np.float32), SR)
            split = ("train", "train", "train", "dev", "test", "test")[u // 3]
            rows.append({"id": f"{spk}_{u:04d}", "path": path, "speaker": spk,
                         "gender": "mf"[s % 2], "duration_s": round(t.size / SR, 4),
                         "transcript": intent.replace("_", " "), "intent": intent, "slots": {},
                         "entities": [], "split": split,
                         "speaker_split": "train" if s < 2 else ("dev", "test")[s - 2]})
    return write_manifest(out / "manifest.jsonl", rows)


def _cfg(**kw):
    from speechmask.train.loop import TrainConfig

    base = dict(max_steps=400, batch_size=16, eval_every=100, progress=False, device="cuda")
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("amp", [True, False], ids=["bf16", "fp32"])
def test_cloud_model_learns_on_cuda_and_loads_on_cpu(tone_corpus, tmp_path, amp):
    from speechmask.train.evaluate import evaluate
    from speechmask.train.slu import train_slu

    out = tmp_path / "slu.pt"
    train_slu(tone_corpus, out, _cfg(amp=amp))
    # evaluate() loads the checkpoint on the CPU: weights trained on the GPU must load there
    acc = evaluate(tone_corpus, out)["intent_acc"]
    assert acc >= 0.9, f"cloud model trained on CUDA ({'bf16' if amp else 'fp32'}): {acc:.2f}"


@pytest.mark.parametrize("adversaries", [False, True], ids=["default", "adversaries"])
def test_mask_trains_on_cuda(tone_corpus, tmp_path, adversaries):
    from speechmask.api import load_mask
    from speechmask.models.mask import MaskConfig
    from speechmask.train.evaluate import evaluate
    from speechmask.train.mask import ObjectiveConfig, train_mask
    from speechmask.train.slu import train_slu

    slu = tmp_path / "slu.pt"
    train_slu(tone_corpus, slu, _cfg())
    mask = tmp_path / "mask.pt"
    obj = ObjectiveConfig(speaker_adversary=0.5, asr_adversary=0.5) if adversaries \
        else ObjectiveConfig()
    train_mask(tone_corpus, slu, mask, MaskConfig(), obj, _cfg(lr=0.01, max_steps=100))
    gen = load_mask(mask)  # on the CPU
    assert all(torch.isfinite(p).all() for p in gen.parameters())
    res = evaluate(tone_corpus, slu, mask)
    assert 0.0 <= res["open_fraction"] <= 1.0


def test_models_agree_between_cpu_and_cuda(tone_corpus, tmp_path):
    """The same weights give the same outputs on both devices (fp32; no autocast)."""
    from speechmask.api import load_slu
    from speechmask.train.data import load_features
    from speechmask.train.slu import train_slu

    slu_path = tmp_path / "slu.pt"
    train_slu(tone_corpus, slu_path, _cfg(max_steps=10, eval_every=10))
    model = load_slu(slu_path).eval()
    fs = load_features(tone_corpus, model.cfg.frontend, progress=False)
    x = torch.from_numpy(np.stack([f[:80] for f in fs.features[:8]]))
    lengths = torch.full((8,), 80)
    with torch.no_grad():
        cpu = model(x, lengths)
        gpu = model.to("cuda")(x.cuda(), lengths.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)

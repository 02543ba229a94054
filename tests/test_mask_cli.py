"""`speechmask mask` on files and manifests, the Python API, and the `train` CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

import speechmask
from speechmask.api import load_mask
from speechmask.cli import main
from speechmask.corpus.manifest import read_manifest, resolve_audio
from speechmask.models.config import OFF, SendConfig
from speechmask.models.gates import GateConfig
from speechmask.models.mask import MaskConfig, MaskGenerator
from speechmask.train.checkpoint import save_checkpoint


def first_wav(manifest):
    return resolve_audio(manifest, read_manifest(manifest)[0])


def plain(mask_path, tmp_path):
    """The trained mask without its send steps (the same gates): it can send masked audio."""
    from dataclasses import replace

    mask = load_mask(mask_path)
    cfg = replace(mask.cfg, send=SendConfig(**OFF))
    return save_checkpoint(tmp_path / "plain.pt", {"config": cfg.to_dict(),
                                                   "model": mask.state_dict()}, kind="mask")


def test_api_loads_models(slu_path, mask_path):
    mask, slu = speechmask.load_mask(mask_path), speechmask.load_slu(slu_path)
    assert not mask.training and not slu.training
    assert len(slu.cfg.intents) >= 2 and mask.cfg.gate.band_groups == 1


def test_mask_a_file_to_audio_features_plot_and_stats(tmp_path, tiny_corpus, mask_path, capsys):
    mask_path = plain(mask_path, tmp_path)
    wav = first_wav(tiny_corpus)
    out = {k: tmp_path / f"o.{k}" for k in ("wav", "npy", "png", "json")}
    assert main(["mask", "--model", str(mask_path), str(wav), "--out", str(out["wav"]),
                 "--features", str(out["npy"]), "--plot", str(out["png"]),
                 "--stats", str(out["json"])]) == 0
    assert "% sent" in capsys.readouterr().out
    stats = json.loads(out["json"].read_text())
    gates = np.array(stats["gates"])[:, 0]
    masked, sr = sf.read(out["wav"], dtype="int16")
    clean, _ = sf.read(wav, dtype="int16")
    assert sr == 16000 and masked.size == clean.size
    seg_frames = load_mask(mask_path).cfg.frames_per_segment
    seg = seg_frames * 160  # samples per segment at 16 kHz, 10 ms hop
    for s, g in enumerate(gates):
        chunk = masked[s * seg:(s + 1) * seg]
        assert (np.all(chunk == clean[s * seg:(s + 1) * seg]) if g else not chunk.any())
    assert not masked[len(gates) * seg:].any()  # an incomplete last segment is never sent
    assert stats["open_fraction"] == pytest.approx(gates.mean())
    feats = np.load(out["npy"])
    closed = np.repeat(gates == 0, seg_frames)
    assert feats.shape[1] == 40 and np.allclose(feats[: closed.size][closed], np.log(1e-6))
    assert out["png"].read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):  # refuses to overwrite
        main(["mask", "--model", str(mask_path), str(wav), "--out", str(out["wav"])])


def test_band_gates_refuse_audio_output(tmp_path, tiny_corpus, mask_path):
    cfg = MaskConfig(gate=GateConfig(band_groups=4), send=SendConfig(**OFF))
    path = save_checkpoint(tmp_path / "bands.pt", {"config": cfg.to_dict(),
                                                   "model": MaskGenerator(cfg).state_dict()},
                           kind="mask")
    with pytest.raises(SystemExit):
        main(["mask", "--model", str(path), str(first_wav(tiny_corpus)), "--out",
              str(tmp_path / "x.wav")])
    assert main(["mask", "--model", str(path), str(first_wav(tiny_corpus)), "--features",
                 str(tmp_path / "x.npy")]) == 0


def test_the_default_mask_sends_features_only(tmp_path, tiny_corpus, mask_path):
    """The default send steps have no audio counterpart: --out is refused in one line, the
    features are written."""
    wav = first_wav(tiny_corpus)
    with pytest.raises(SystemExit):
        main(["mask", "--model", str(mask_path), str(wav), "--out", str(tmp_path / "x.wav")])
    assert not (tmp_path / "x.wav").exists()
    assert main(["mask", "--model", str(mask_path), str(wav), "--features",
                 str(tmp_path / "x.npy")]) == 0
    with pytest.raises(SystemExit):
        main(["mask", "--model", str(mask_path), "--manifest", str(tiny_corpus), "--out-dir",
              str(tmp_path / "m")])
    assert main(["mask", "--model", str(mask_path), "--manifest", str(tiny_corpus), "--out-dir",
                 str(tmp_path / "m"), "--as-features"]) == 0


def test_mask_a_manifest(tmp_path, tiny_corpus, mask_path):
    mask_path = plain(mask_path, tmp_path)
    out_dir = tmp_path / "masked"
    assert main(["mask", "--model", str(mask_path), "--manifest", str(tiny_corpus),
                 "--out-dir", str(out_dir), "--stats", str(tmp_path / "s.json")]) == 0
    rows = read_manifest(out_dir / "manifest.jsonl")
    assert len(rows) == len(read_manifest(tiny_corpus))
    assert all(resolve_audio(out_dir / "manifest.jsonl", r).is_file() for r in rows)
    assert all(0 <= r["open_fraction"] <= 1 for r in rows)


def test_train_cli_end_to_end(tmp_path, tiny_corpus, capsys):
    common = ["--manifest", str(tiny_corpus), "--max-steps", "4", "--batch-size", "8",
              "--eval-every", "4", "--device", "cpu", "--quiet"]
    slu, mask, tuned = (str(tmp_path / n) for n in ("slu.pt", "mask.pt", "tuned.pt"))
    assert main(["train", "slu", "--out", slu, *common]) == 0
    assert main(["train", "mask", "--slu", slu, "--out", mask, "--arch", "tiny",
                 "--segment-ms", "40", "--speaker-adversary", "0.1", *common]) == 0
    assert main(["train", "finetune", "--slu", slu, "--mask", mask, "--out", tuned, *common]) == 0
    assert "dev_acc" in capsys.readouterr().out
    assert speechmask.load_mask(mask).cfg.gate.segment_ms == 40
    with pytest.raises(SystemExit):  # an existing run needs --resume or --force
        main(["train", "slu", "--out", slu, *common])
    assert main(["train", "slu", "--out", slu, "--resume", *common]) == 0

"""Training: the constrained objective goes down, resume == uninterrupted, DDP (2 processes,
gloo) == 1 process with the same global batch, checkpoints load safely or fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechmask.api import load_mask, load_slu
from speechmask.errors import SpeechmaskError
from speechmask.models.gates import GateConfig, prob_open
from speechmask.models.mask import MaskConfig
from speechmask.train.checkpoint import (CheckpointError, load_checkpoint, save_checkpoint)
from speechmask.train.data import load_features, pad_batch
from speechmask.train.loop import TrainConfig
from speechmask.train.mask import ObjectiveConfig, train_mask
from speechmask.train.slu import train_slu

QUICK = dict(batch_size=8, eval_every=4, progress=False, device="cpu")
MASK_CFG = MaskConfig(arch="small", gate=GateConfig(segment_ms=80.0))


def expected_open(mask_path, manifest) -> float:
    model = load_mask(mask_path)
    fs = load_features(manifest, model.cfg.frontend)
    x, _ = pad_batch(fs.features, -13.8)
    with torch.no_grad():
        return float(prob_open(model(x), model.cfg.gate).mean())


def test_short_training_lowers_the_constrained_objective(tiny_corpus, slu_path, tmp_path,
                                                        capsys):
    out = tmp_path / "mask.pt"
    metrics = train_mask(tiny_corpus, slu_path, out, MASK_CFG, ObjectiveConfig(gamma=0.15),
                         TrainConfig(max_steps=40, lr=0.01, **QUICK))
    assert "hides almost nothing" not in capsys.readouterr().err
    blob = load_checkpoint(out, kind="mask")
    assert blob["step"] == 40 and blob["cost"]["params"] > 0
    # gates start open (init_logit 3: P(open) ~ 0.98); the L0 term must have closed many
    assert expected_open(out, tiny_corpus) < 0.8
    assert 0.0 <= metrics["dev_open"] <= 1.0 and metrics["lambda"] >= 0.0


def test_a_tight_budget_raises_the_multiplier(tiny_corpus, slu_path, tmp_path):
    metrics = train_mask(tiny_corpus, slu_path, tmp_path / "m.pt", MASK_CFG,
                         ObjectiveConfig(gamma=0.0, lambda_lr=0.5),
                         TrainConfig(max_steps=8, lr=0.01, **QUICK))
    assert metrics["lambda"] > 0.0  # KL > gamma = 0 pushes lambda up by gradient ascent


def test_a_mask_that_sends_nearly_everything_is_reported(capsys):
    """A budget met only with (nearly) every gate open, as when the cloud model never heard the
    corpus (seen: the multiplier fell to 0 and every gate saturated): one note names the run."""
    from speechmask.train.mask import warn_if_nearly_all_open

    assert not warn_if_nearly_all_open(Path("m.pt"), {"dev_open": 0.48, "dev_acc_clean": 0.9})
    assert capsys.readouterr().err == ""
    assert warn_if_nearly_all_open(Path("runs/m.pt"), {"dev_open": 0.99, "dev_acc_clean": 0.31})
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs/m.pt" in err[0] and "99%" in err[0] and "31%" in err[0]


def states_equal(a, b) -> bool:
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kind", ["mask", "slu"])
def test_resume_equals_uninterrupted(tiny_corpus, slu_path, tmp_path, kind):
    cfg = TrainConfig(max_steps=8, lr=0.01, **QUICK)
    obj = ObjectiveConfig(speaker_adversary=0.1, asr_adversary=0.1, switch_cost=0.5)

    def go(out, **kw):
        if kind == "mask":
            return train_mask(tiny_corpus, slu_path, out, MASK_CFG, obj, cfg, **kw)
        return train_slu(tiny_corpus, out, cfg, **kw)

    go(tmp_path / "a.pt")
    with pytest.raises(KeyboardInterrupt):  # crash right after the step-4 checkpoint
        go(tmp_path / "b.pt", stop_after=4)
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 4
    go(tmp_path / "b.pt", resume=True)
    assert states_equal(tmp_path / "a.pt", tmp_path / "b.pt")
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    if kind == "mask":
        assert a["state"]["lambda"] == b["state"]["lambda"]
        for name, sa in a["state"]["adversaries"].items():
            sb = b["state"]["adversaries"][name]
            assert all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_resume_refuses_other_settings(tiny_corpus, slu_path, tmp_path):
    out = tmp_path / "m.pt"
    train_mask(tiny_corpus, slu_path, out, MASK_CFG, ObjectiveConfig(),
               TrainConfig(max_steps=4, **QUICK))
    with pytest.raises(CheckpointError, match="other settings"):
        train_mask(tiny_corpus, slu_path, out, MASK_CFG, ObjectiveConfig(),
                   TrainConfig(max_steps=4, **{**QUICK, "batch_size": 4}), resume=True)


def test_ddp_two_processes_match_one(tiny_corpus, slu_path, tmp_path):
    args = ["train", "mask", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
            "--max-steps", "4", "--batch-size", "8", "--eval-every", "4", "--device", "cpu",
            "--lr", "0.01", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "speechmask", *args, "--out",
                          str(tmp_path / "one.pt")], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29517", "-m", "speechmask", *args, "--out",
                          str(tmp_path / "two.pt")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    sa, sb = load_checkpoint(tmp_path / "one.pt")["model"], load_checkpoint(tmp_path / "two.pt")["model"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=1e-5, rtol=1e-4)
    assert not all(torch.equal(sa[k], load_checkpoint(tmp_path / "one.pt")["model"][k] * 0)
                   for k in sa)


class NotData:  # anything beyond tensors and plain containers must be refused
    pass


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such checkpoint"),
    (lambda p: p.write_bytes(b"\x00garbage" * 100), "corrupt"),
    (lambda p: torch.save({"model": {}}, p), "not a speechmask checkpoint"),
    (lambda p: torch.save({"format": "speechmask-checkpoint", "version": 99, "kind": "mask",
                           "config": {}, "model": {}}, p), "version 99"),
    (lambda p: save_checkpoint(p, {"config": {}, "model": {}}, kind="slu"), "expected 'mask'"),
    (lambda p: torch.save({"format": "speechmask-checkpoint", "obj": NotData()}, p), "refused"),
])
def test_bad_checkpoints_give_clear_errors(tmp_path, make, message):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(CheckpointError, match=message) as err:
        load_mask(path)
    assert str(path) in str(err.value)


def test_truncated_checkpoint_and_mismatched_weights(slu_path, tmp_path):
    data = slu_path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_slu(cut)
    blob = load_checkpoint(slu_path)
    blob["config"]["channels"] = 64
    save_checkpoint(tmp_path / "mismatch.pt", {k: v for k, v in blob.items()
                                              if k not in ("format", "version", "kind")}, kind="slu")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_slu(tmp_path / "mismatch.pt")


def test_cli_refuses_to_overwrite_a_run(tiny_corpus, slu_path):
    from speechmask.train.checkpoint import check_output

    with pytest.raises(SpeechmaskError, match="--resume"):
        check_output(slu_path, resume=False, force=False)


def test_feature_cache_keeps_each_utterance_with_its_own_features(tiny_corpus, tmp_path):
    """Workers finish in any order; features must still follow the manifest's rows."""
    from speechmask.corpus.manifest import read_manifest, resolve_audio
    from speechmask.train.data import _features_of

    for attempt in range(2):  # computed with 2 workers, then loaded from the cache
        fs = load_features(tiny_corpus, cache_dir=tmp_path, jobs=2, progress=False)
        for row, feats in zip(read_manifest(tiny_corpus), fs.features):
            _, direct = _features_of((str(resolve_audio(tiny_corpus, row)), fs.frontend.to_dict()))
            assert feats.shape == direct.shape and (feats == direct).all(), (attempt, row["id"])


def test_feature_cache_of_another_version_is_not_reused(tiny_corpus, tmp_path, monkeypatch):
    """A cache written under an older FEATURE_CACHE_VERSION (possibly with wrong contents) is
    ignored even when manifest and front-end are byte-identical."""
    import speechmask.train.data as data

    first = load_features(tiny_corpus, cache_dir=tmp_path, progress=False)
    old = sorted(tmp_path.glob("features-*.npz"))
    assert len(old) == 1
    # corrupt the rows' order in the old cache, as version 1 could
    with np.load(old[0]) as z:
        scrambled = np.ascontiguousarray(z["data"][::-1])
        offsets = z["offsets"]
    np.savez(old[0], data=scrambled, offsets=offsets)
    monkeypatch.setattr(data, "FEATURE_CACHE_VERSION", data.FEATURE_CACHE_VERSION + 1)
    again = load_features(tiny_corpus, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("features-*.npz"))) == 2
    assert all((a == b).all() for a, b in zip(first.features, again.features))


def test_switch_rate_counts_changes_between_valid_segments():
    from speechmask.train.mask import switch_rate

    comb = torch.tensor([[1., 0., 1., 0., 1., 0.]])[..., None]
    runs = torch.tensor([[1., 1., 1., 0., 0., 0.]])[..., None]
    valid = torch.ones(1, 6)
    assert switch_rate(comb, valid).item() == pytest.approx(1.0)
    assert switch_rate(runs, valid).item() == pytest.approx(0.2)
    assert switch_rate(torch.ones(1, 6, 1), valid).item() == 0.0
    # padding (invalid segments) is not counted; two band groups average
    assert switch_rate(comb, torch.tensor([[1., 1., 0., 0., 0., 0.]])).item() == 1.0
    two = torch.stack([comb[..., 0], torch.ones(1, 6)], -1)
    assert switch_rate(two, valid).item() == pytest.approx(0.5)
    # independent gates open with p: the expected changes; a gate is pulled towards its
    # neighbours' side of one half
    assert switch_rate(torch.full((1, 3, 1), 0.5), torch.ones(1, 3)).item() == pytest.approx(0.5)
    p = torch.tensor([[1.0, 0.4, 1.0]])[..., None].requires_grad_()
    switch_rate(p, torch.ones(1, 3)).sum().backward()
    assert p.grad[0, 1, 0] < 0 and p.grad[0, 0, 0] > 0
    q = torch.tensor([[0.2, 0.4, 0.2]])[..., None].requires_grad_()
    switch_rate(q, torch.ones(1, 3)).sum().backward()
    assert q.grad[0, 1, 0] > 0  # neighbours mostly closed: pulled down

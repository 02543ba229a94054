"""The attack suite on a small real-TTS corpus: attackers beat chance on unprotected speech, trial
lists are speaker-disjoint from attacker training, systems send what they claim, the CLI writes
the report schema, and bad data is refused with clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
from attacks.config import BaselineConfig, ContentConfig, SpeakerConfig, SuiteConfig
from attacks.data import AttackError, SuiteData
from attacks.fit import Cache
from attacks.speaker import Trials
from attacks.suite import METRICS, Suite
from attacks.systems.random_mask import random_mask
from attacks.systems.speechmask import speechmask_mask
from speechmask.api import load_mask, load_slu
from speechmask.device import mask_cost
from speechmask.cli import main
from speechmask.corpus.manifest import read_manifest, write_manifest
from speechmask.corpus.synth import SynthConfig, synthesize
from speechmask.corpus.voices import resolve_engines
from speechmask.features import FrontendConfig
from speechmask.masking import mask_batch
from speechmask.models.gates import GateConfig
from speechmask.train.data import pad_batch

QUICK = SuiteConfig(
    seed=0, slu_finetune_steps=20,
    content=ContentConfig(asr_steps=300, informed_steps=20, transfer_steps=20, inpaint_steps=20,
                          asr_lr=3e-3, asr_channels=192, asr_hidden=160),
    speaker=SpeakerConfig(steps=120, informed_steps=10, transfer_steps=10,
                          enroll_per_speaker=3),
    baselines=BaselineConfig(vae_steps=10, ppslu_steps=10))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 speakers (6 per gender) x 8 utterances: speaker_split test holds 2 per gender."""
    out = tmp_path_factory.mktemp("attack_corpus")
    synthesize(out, SynthConfig(speakers=12, utterances_per_speaker=8, seed=5,
                                engines=resolve_engines(None)), jobs=2, progress=False)
    return out / "manifest.jsonl"


@pytest.fixture(scope="module")
def data(corpus, slu_path):
    return SuiteData.load(corpus, load_slu(slu_path).cfg.frontend, progress=False)


def test_trials_are_speaker_disjoint_from_attacker_training_and_gender_balanced(data):
    trials = Trials.build(data, SpeakerConfig(enroll_per_speaker=3))
    train_speakers = {data.rows[i]["speaker"] for i in data.speaker_train}
    trial_speakers = {data.rows[i]["speaker"] for i in trials.utterances}
    assert trial_speakers and not trial_speakers & train_speakers
    assert not set(trials.enroll) & train_speakers
    enrolled = {i for v in trials.enroll.values() for i in v}
    assert not enrolled & set(trials.utterances)  # enrollment never doubles as a trial
    gender = {data.rows[i]["speaker"]: data.rows[i]["gender"] for i in range(len(data.rows))}
    assert all(gender[data.rows[i]["speaker"]] == gender[s] for i, s in trials.pairs)
    per_gender = [sum(gender[data.rows[i]["speaker"]] == g for i in trials.utterances)
                  for g in ("f", "m")]
    assert per_gender[0] == per_gender[1] > 0
    targets = sum(data.rows[i]["speaker"] == s for i, s in trials.pairs)
    assert targets == len(trials.utterances) and len(trials.pairs) > targets


def test_speaker_early_stopping_holds_out_utterances_of_the_training_speakers():
    """Full strength stops the speaker attackers on held-out utterances of their own classes:
    the split's 'dev' ones, or, where the split has none (the held-out split gives each speaker
    one part), every 8th of each training speaker's, never a whole speaker."""
    from types import SimpleNamespace

    from attacks.data import SPEAKER_DEV_EVERY

    def suite_data(splits):
        rows = [{"id": f"{s}_{k:02d}", "speaker": s, "split": part}
                for s in ("a", "b") for k, part in enumerate(splits)]
        return SuiteData(SimpleNamespace(rows=rows, manifest="m.jsonl"),
                         speaker_train=list(range(len(rows))))

    data = suite_data(["train", "dev", "train", "test"])
    assert data.speaker_dev_split() == ([0, 2, 3, 4, 6, 7], [1, 5])
    data = suite_data(["train"] * 20)
    train, dev = data.speaker_dev_split()
    assert sorted(train + dev) == list(range(40)) and not set(train) & set(dev)
    assert [data.rows[i]["id"] for i in dev] == [f"{s}_{k:02d}" for s in "ab"
                                                 for k in (7, 15)] and SPEAKER_DEV_EVERY == 8
    with pytest.raises(AttackError, match="m.jsonl: full strength needs"):
        suite_data(["train"] * 3).speaker_dev_split()


def test_speaker_attackers_and_pocketsphinx_beat_chance(data, slu_path, tmp_path):
    cfg = replace(QUICK, systems=("all_offload",), attacks=("pocketsphinx", "speaker"))
    suite = Suite(data, load_slu(slu_path), None, cfg, Cache(tmp_path / "cache"), progress=False)
    m = suite.run_system("all_offload")["metrics"]
    n_spk = len(suite.trials().speakers)
    assert m["eer_ignorant"] < 0.3  # chance is 0.5
    assert m["speaker_id_acc"] > 1.0 / n_spk + 0.2
    # gender: 3 training speakers per gender are too few to generalise to unseen voices here;
    # at full scale (bench_attack.py, 22 training speakers) it is near perfect
    assert m["gender_acc"] is not None
    assert m["wer_pocketsphinx"] < 0.97  # domain bigram of only 48 training transcripts
    assert m["open_fraction"] == 1.0 and m["wer_passive"] is None


# the clean ASR's 300 steps take about 5 minutes on 2 cores: `make test-all` runs this
@pytest.mark.slow
def test_content_attackers_beat_chance_on_unprotected_speech(data, slu_path, tmp_path):
    cfg = replace(QUICK, systems=("all_offload",), attacks=("passive", "informed", "inpainting"))
    suite = Suite(data, load_slu(slu_path), None, cfg, Cache(tmp_path / "cache"), progress=False)
    m = suite.run_system("all_offload")["metrics"]
    # chance for content: the best constant guess, the most frequent training transcript.
    # Scored in characters: 72 training utterances from 6 voices teach a CTC ASR letters long
    # before words, so its word error rate here sits near chance whatever the seed (measured,
    # seeds 0-3: WER 0.90-0.98 against chance 0.95; CER 0.62-0.63 against 0.78); an earlier
    # WER bound passed or failed with the unseeded initial weights. bench_attack.py scores
    # words at full scale (clean WER about 0.4).
    import jiwer

    from attacks import content
    from attacks.metrics import normalize_words

    def text(t):
        return " ".join(normalize_words(t))

    train = [data.rows[i]["transcript"] for i in data.content_train]
    guess = max(set(train), key=train.count)
    refs = [text(data.rows[i]["transcript"]) for i in data.content_test]
    hyps = [text(h) for h in content.transcribe(suite.passive_asr(), data.fs.features,
                                                 data.content_test, data.floor, suite.decoder())]
    assert jiwer.cer(refs, hyps) < jiwer.cer(refs, [text(guess)] * len(refs)) - 0.08
    assert m["wer_passive"] is not None and m["wer_informed"] == m["wer_passive"]
    assert m["open_fraction"] == 1.0 and m["wer_inpainting"] is None
    assert m["eer_ignorant"] is None


def test_random_mask_withholds_half_and_matches_its_audio(data):
    gate = GateConfig(segment_ms=40.0)
    sent = random_mask(data, gate, 0.5, seed=1)
    assert 0.4 < sent.open_fraction < 0.6
    i = data.content_test[0]
    withheld = sent.withheld[i]
    assert np.all(sent.features[i][withheld] == np.float32(data.floor))
    assert np.array_equal(sent.features[i][~withheld], data.fs.features[i][~withheld])
    audio = sent.audio(i)
    spf = gate.samples_per_segment(data.frontend)
    seg_frames = gate.frames_per_segment(data.frontend)
    for s in range(min(20, withheld.shape[0] // seg_frames)):
        closed = withheld[s * seg_frames, 0]
        assert np.all(audio[s * spf:(s + 1) * spf] == 0) == closed or not closed
    # seeded: the same seed gives the same gates, another seed other gates
    assert np.array_equal(random_mask(data, gate, 0.5, seed=1).withheld[i], withheld)
    assert not np.array_equal(random_mask(data, gate, 0.5, seed=2).withheld[i], withheld)


def test_speechmask_system_sends_what_the_device_sends(data, mask_path):
    mask = load_mask(mask_path)
    sent = speechmask_mask(data, mask)
    i = data.content_test[0]
    x, lengths = pad_batch([data.fs.features[i]], data.floor)
    masked, gates, _ = mask_batch(mask, x, lengths)
    assert np.allclose(sent.features[i], masked[0].numpy(), atol=1e-5)
    assert sent.withheld[i].mean() == pytest.approx(1 - float(
        (masked[0] > data.floor + 1e-4).any(-1).float().mean()), abs=0.02)


def test_cli_writes_the_report_schema_and_reuses_trained_attackers(corpus, slu_path, mask_path,
                                                                   tmp_path, capsys):
    out = tmp_path / "attack"
    args = ["attack", "--manifest", str(corpus), "--slu", str(slu_path), "--mask", str(mask_path),
            "--out", str(out), "--max-steps", "2", "--beam-width", "4", "--quiet",
            "--pocketsphinx-max", "3"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["systems"]]
    assert names == ["all_offload", "random", "mcadams", "vae", "ppslu", "speechmask",
                     "on_device"]
    # the trained ASRs' bigram and PocketSphinx's, kept beside the attackers for the next run
    assert [len(list((out / "cache").glob(f"{n}-*.arpa"))) for n in
            ("asr-bigram", "pocketsphinx-domain")] == [1, 1]
    for row in report["systems"]:
        assert set(row["metrics"]) == set(METRICS)
        assert set(row["cost"]) == {"params", "macs_per_second", "weight_bytes",
                                    "activation_bytes"}
        for v in row["metrics"].values():
            assert v is None or 0.0 <= v <= 1.5  # WER may exceed 1 (insertions)
    by = {s["name"]: s for s in report["systems"]}
    assert by["ppslu"]["metrics"]["wer_passive"] is None  # not log-mel: clean ASR cannot read it
    words = {n: (by[n]["metrics"]["entity_words_sent"], by[n]["metrics"]["carrier_words_sent"])
             for n in names}
    assert words["all_offload"] == (1.0, 1.0) and words["on_device"] == (0.0, 0.0)
    assert words["mcadams"] == (None, None)  # everything sent, transformed: does not apply
    for name in ("random", "speechmask"):  # gated systems: words sent as their segments are
        for share in words[name]:
            assert share is not None
            assert abs(share - by[name]["metrics"]["open_fraction"]) < 0.25
    device = mask_cost(load_mask(mask_path))  # the one definition the export report uses too
    assert {k: by["speechmask"]["cost"][k] for k in row["cost"]} == \
        {k: device[k] for k in row["cost"]}
    assert by["vae"]["cost"]["macs_per_second"] > 50 * by["speechmask"]["cost"]["macs_per_second"]
    assert report["versions"]["torch"] and report["config"]["max_steps"] == 2
    assert report["config"]["beam_width"] == 4
    md = (out / "report.md").read_text()
    assert all(f"| {n} |" in md for n in names)
    for png in ("det.png", "examples.png"):
        assert (out / png).stat().st_size > 10_000


def test_int8_system_attacks_the_exported_model_beside_the_float_one(corpus, data, slu_path,
                                                                      mask_path, tmp_path, capsys):
    """`--int8 mask.tflite`: the suite sends what the int8 model decides in its own closed loop
    (a row `speechmask_int8` beside `speechmask`); a file that is not this mask's model is
    refused by name."""
    pytest.importorskip("ai_edge_litert", reason="needs the [export] extra")
    from attacks.systems.speechmask import speechmask_int8
    from speechmask.device import float_calls, stamp
    from speechmask.device.int8 import stamp_tflite

    from firmware_export.keras_mask import build_keras
    from firmware_export.tflite_int8 import convert_int8

    mask = load_mask(mask_path)
    calls = [c for i in data.content_train[:10] for c in float_calls(mask, data.fs.features[i])[0]]
    unstamped = convert_int8(build_keras(mask), mask.cfg, calls)
    model = stamp_tflite(unstamped, stamp(mask))
    tflite = tmp_path / "mask.tflite"
    tflite.write_bytes(model)
    sent, ref = speechmask_int8(data, mask, model), speechmask_mask(data, mask)
    i = data.content_test[0]
    assert sent.features[i].shape == ref.features[i].shape
    assert abs(sent.open_fraction - ref.open_fraction) < 0.05
    out = tmp_path / "attack"
    args = ["attack", "--manifest", str(corpus), "--slu", str(slu_path), "--mask", str(mask_path),
            "--int8", str(tflite), "--baselines", "none", "--attacks", "passive",
            "--max-steps", "2", "--beam-width", "4", "--quiet", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in report["systems"]] == ["speechmask", "speechmask_int8"]
    assert report["int8_model"] == str(tflite)
    (tmp_path / "not.tflite").write_text("not a model")
    with pytest.raises(SystemExit):
        main(args[:8] + [str(tmp_path / "not.tflite")] + args[9:-2] + ["--out", str(tmp_path / "x")])
    assert "not.tflite" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # a model without the contract stamp, or exported from another mask, is refused by name
    (tmp_path / "old.tflite").write_bytes(unstamped)
    other = stamp_tflite(unstamped, {**stamp(mask), "export_id": "0" * 16})
    (tmp_path / "other.tflite").write_bytes(other)
    for name, why in (("old.tflite", "no device contract stamp"), ("other.tflite", "another mask")):
        with pytest.raises(SystemExit):
            main(args[:8] + [str(tmp_path / name)] + args[9:-2] + ["--out", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert name in err and why in err
    assert not (tmp_path / "x").exists()


def test_missing_split_is_refused(corpus, slu_path, tmp_path):
    rows = read_manifest(corpus)
    for r in rows:
        if r["speaker_split"] == "test":
            r["speaker_split"] = "dev"
    bad = tmp_path / "manifest.jsonl"
    for r in rows:
        r["path"] = str(corpus.parent / r["path"])
    write_manifest(bad, rows)
    with pytest.raises(AttackError, match=r"manifest.jsonl: no utterances with speaker_split == 'test'"):
        SuiteData.load(bad, load_slu(slu_path).cfg.frontend, progress=False)


def test_too_few_speakers_for_trials_is_refused(data):
    with pytest.raises(AttackError, match="too few speakers for verification trials"):
        Trials.build(data, SpeakerConfig(enroll_per_speaker=50))


def test_mismatched_sample_rate_is_refused(corpus, slu_path, mask_path, tmp_path):
    with pytest.raises(AttackError, match="8000 Hz"):
        SuiteData.load(corpus, FrontendConfig(sample_rate=8000, fmax=4000.0), progress=False)


def test_sweep_trains_a_mask_per_gamma_and_switch_cost_and_plots_the_frontier(corpus, slu_path,
                                                                               tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["attack", "sweep", "--manifest", str(corpus), "--slu", str(slu_path),
                 "--out", str(out), "--gammas", "0.15", "--switch-costs", "0", "2",
                 "--norm-frames", "0", "256", "--warps", "0.2", "--baselines", "random",
                 "--max-steps", "2", "--beam-width", "4", "--attacks", "passive", "speaker",
                 "--quiet"]) == 0
    result = json.loads((out / "sweep.json").read_text())
    points = result["points"]
    assert [(p["gamma"], p["switch_cost"], p["norm_frames"]) for p in points] == [
        (0.15, 0, 0), (0.15, 0, 256), (0.15, 2, 0), (0.15, 2, 256)]
    assert [p["default"] for p in points] == [False, True, False, False]  # 0.15, 0, 256, 0.2
    assert [p["mask_label"] for p in points] == ["γ=0.15", "γ=0.15", "γ=0.15 s2", "γ=0.15 s2"]
    assert sorted({Path(p["mask"]).name for p in points}) == ["mask_gamma0.15.pt",
                                                              "mask_gamma0.15_switch2.pt"]
    switch = load_mask(out / "mask_gamma0.15_switch2.pt")
    assert switch is not None
    from speechmask.train.checkpoint import load_checkpoint
    assert load_checkpoint(out / "mask_gamma0.15_switch2.pt")["objective"]["switch_cost"] == 2
    assert all(p["name"] == "speechmask" and p["metrics"]["wer_passive"] is not None
               and p["metrics"]["eer_semi_informed"] is not None for p in points)
    # the send settings change what is sent of the same gates, not the gates
    assert points[0]["metrics"]["open_fraction"] == points[1]["metrics"]["open_fraction"]
    assert [b["name"] for b in result["baselines"]] == ["random"]
    assert (out / "sweep.png").stat().st_size > 10_000
    # a mask left by a run with other send defaults is refused up front, by name, with what to do
    from speechmask.train.checkpoint import save_checkpoint
    blob = load_checkpoint(out / "mask_gamma0.15.pt")
    blob["config"]["send"]["warp_max"] = 0.05
    save_checkpoint(out / "mask_gamma0.15.pt", {k: v for k, v in blob.items()
                                                 if k not in ("format", "version", "kind",
                                                              "speechmask_version")}, kind="mask")
    with pytest.raises(SystemExit):
        main(["attack", "sweep", "--manifest", str(corpus), "--slu", str(slu_path), "--out",
              str(out), "--force", "--gammas", "0.15", "--max-steps", "2", "--quiet"])
    assert "mask_gamma0.15.pt: trained with other settings (the mask's send); move it away" \
        in capsys.readouterr().err


def test_warm_start_copies_matching_layers_only():
    """Attackers of another representation (PPSLU's) start from the clean attacker: every layer
    whose shape matches is copied, the input layer and its standardisation are left fresh."""
    import torch

    from attacks.fit import warm_start
    from attacks.nets import CTCASR

    clean, other = CTCASR(40, 1), CTCASR(144, 4)
    for p in clean.parameters():
        torch.nn.init.normal_(p)
    fresh = warm_start(other, clean)
    assert set(fresh) == {"norm.mean", "norm.std", "conv.0.weight"}
    assert torch.equal(other.gru.weight_hh_l1, clean.gru.weight_hh_l1)
    assert torch.equal(other.out.weight, clean.out.weight)
    assert not torch.equal(other.conv[0].bias, torch.zeros_like(other.conv[0].bias)) and \
        torch.equal(other.conv[0].bias, clean.conv[0].bias)  # same shape: copied
    assert other.strides == (1, 1) and clean.strides == (2, 2)


def test_attackers_start_from_their_seed_not_from_what_ran_before(data):
    """Initial weights come from the fit seed under a forked RNG: the same attacker trained after
    unrelated random draws is the same network (before, the clean ASR of a benchmark depended on
    what ran earlier in the process), and another seed gives another network."""
    import torch

    from attacks.content import train_inpainter

    sent = random_mask(data, GateConfig(segment_ms=40.0), 0.5, seed=1)
    nets = []
    for draws in (1, 1000):
        torch.manual_seed(123)
        torch.rand(draws)
        nets.append(train_inpainter(data, sent, steps=2, cache=Cache(None), progress=False))
    assert all(torch.equal(a, b) for a, b in zip(nets[0].state_dict().values(),
                                                   nets[1].state_dict().values()))
    other = train_inpainter(data, sent, steps=2, cache=Cache(None), seed=1, progress=False)
    assert not torch.equal(other.inp.weight, nets[0].inp.weight)


def test_seeded_build_leaves_the_callers_random_stream_alone():
    import torch

    from attacks.fit import seeded

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    a = seeded(0, lambda: torch.nn.Linear(4, 4))
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(seeded(0, lambda: torch.nn.Linear(4, 4)).weight, a.weight)


def test_full_strength_stops_on_dev_loss_and_states_the_attackers_strength(corpus, slu_path,
                                                                           tmp_path, capsys):
    """`--strength full`: the attackers train with early stopping on their dev loss (capped here
    by --max-steps), and the report states every attacker's score on unprotected speech even
    when all_offload is not among the rows. A finished run is refused without --force; forced,
    a run trains only what its cache lacks."""
    out = tmp_path / "full"
    full = ["attack", "--manifest", str(corpus), "--slu", str(slu_path), "--out", str(out),
            "--baselines", "random", "--attacks", "passive", "informed", "inpainting", "speaker",
            "--strength", "full", "--max-steps", "3", "--beam-width", "4", "--quiet"]
    assert main(full) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["strength"] == "full" and report["config"]["strength"] == "full"
    assert report["config"]["content"]["asr_channels"] == 256  # the full-strength settings
    assert [s["name"] for s in report["systems"]] == ["random"]
    unprotected = report["unprotected"]
    assert unprotected["wer_passive"] is not None and unprotected["eer_semi_informed"] is not None
    assert "*unprotected*" in (out / "report.md").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(full)
    assert exc.value.code == 1 and "already exists (use --force" in capsys.readouterr().err
    # quick and full attackers are cached apart: a quick run trains its own
    trained_full = {p.name for p in (out / "cache").iterdir()}
    assert any(n.startswith("inpainter-") for n in trained_full)
    quick = ["attack", "--manifest", str(corpus), "--slu", str(slu_path), "--out", str(out),
             "--baselines", "random", "--attacks", "passive", "inpainting", "--max-steps", "3",
             "--beam-width", "4", "--quiet", "--force"]
    assert main(quick) == 0
    cached = {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir()}
    assert set(cached) - trained_full
    assert main(quick) == 0  # everything from the cache: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir()} == cached

"""Bad input through the CLI, as a new user would give it: one line naming the file or flag and
the problem, exit code 1 (130 for an interrupt), and every file that existed before unchanged
(compared by hash). Property tests throw garbage at the manifest reader and the config checks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechmask.cli import get_parser, main
from speechmask.corpus.manifest import read_manifest, resolve_audio, write_manifest
from speechmask.errors import ConfigError, ManifestError
from speechmask.options import from_args


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file below `folders` (hidden ones included)."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(capsys, args: list[str], *needles: str, code: int = 1) -> str:
    """Run the CLI in-process; it must exit `code` with one error line holding `needles` (progress
    bars may come before it on stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == code
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and errors[0] == err[-1], err
    assert err[-1].startswith("speechmask: error: "), err
    for needle in needles:
        assert needle in err[-1], (needle, err[-1])
    return err[-1]


BAD_TRAIN_FLAGS = [
    (["--segment-ms", "7"], "--segment-ms"), (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-3"], "--batch-size"), (["--eval-every", "0"], "--eval-every"),
    (["--lr", "nan"], "--lr"), (["--lr", "abc"], "--lr"), (["--gamma", "-1"], "--gamma"),
    (["--gamma", "nan"], "--gamma"), (["--max-steps", "0"], "--max-steps"),
    (["--device", "tpu"], "--device"), (["--lambda-max", "0.5"], "--lambda-max"),
]


@pytest.mark.parametrize("extra, flag", BAD_TRAIN_FLAGS)
def test_train_force_with_a_bad_flag_keeps_the_old_model(tiny_corpus, slu_path, mask_path,
                                                         tmp_path, capsys, extra, flag):
    keep = tmp_path / "keep.pt"
    keep.write_bytes(mask_path.read_bytes())
    before = snapshot(tmp_path)
    refused(capsys, ["train", "mask", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
                     "--out", str(keep), "--max-steps", "2", "--force", *extra], flag)
    assert snapshot(tmp_path) == before


def test_cuda_on_a_machine_without_it_is_one_line(tiny_corpus, slu_path, mask_path, tmp_path,
                                                  capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    keep = tmp_path / "keep.pt"
    keep.write_bytes(mask_path.read_bytes())
    before = snapshot(tmp_path)
    refused(capsys, ["train", "mask", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
                     "--out", str(keep), "--force", "--device", "cuda"], "--device", "no CUDA")
    assert snapshot(tmp_path) == before


def test_train_checks_inputs_and_output_before_training(tiny_corpus, slu_path, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "empty.pt").write_bytes(b"")
    base = ["train", "mask", "--manifest", str(tiny_corpus), "--max-steps", "2"]
    before = snapshot(tmp_path)
    refused(capsys, [*base, "--slu", str(slu_path), "--out", str(tmp_path / "file" / "m.pt")],
            "file", "not a folder")
    refused(capsys, [*base, "--slu", str(tmp_path / "empty.pt"), "--out",
                     str(tmp_path / "m.pt")], "empty.pt", "empty")
    refused(capsys, [*base, "--slu", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m.pt")],
            "none.pt")
    refused(capsys, ["train", "mask", "--manifest", str(tmp_path / "file"), "--slu",
                     str(slu_path), "--out", str(tmp_path / "m.pt")], "file")
    assert snapshot(tmp_path) == before


def test_max_steps_is_honoured_not_ignored(tiny_corpus, slu_path, tmp_path):
    out = tmp_path / "m.pt"
    assert main(["train", "mask", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
                 "--out", str(out), "--max-steps", "1", "--eval-every", "1", "--quiet",
                 "--device", "cpu", "--batch-size", "4"]) == 0
    import torch

    assert torch.load(out, weights_only=True)["step"] == 1


def _manifest_with(tmp_path: Path, tiny_corpus: Path, **change) -> Path:
    rows = read_manifest(tiny_corpus)[:3]
    for r in rows:
        r["path"] = str(resolve_audio(tiny_corpus, r))
    rows[1].update(change)
    return write_manifest(tmp_path / "evil.jsonl", rows)


@pytest.mark.parametrize("change", [{"speaker": "../escaped"}, {"id": "/tmp/abs"},
                                    {"id": "../../x"}, {"speaker": "a/b"}])
def test_mask_manifest_paths_cannot_leave_the_output_folder(tiny_corpus, mask_path, tmp_path,
                                                            capsys, change):
    manifest = _manifest_with(tmp_path, tiny_corpus, **change)
    before = snapshot(tmp_path)
    refused(capsys, ["mask", "--model", str(mask_path), "--manifest", str(manifest),
                     "--out-dir", str(tmp_path / "out"), "--as-features"], f"{manifest}:2")
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()
    assert not (tmp_path / "escaped").exists()


def test_mask_manifest_refuses_an_earlier_output_folder_without_force(tiny_corpus, mask_path,
                                                                      tmp_path, capsys):
    manifest = _manifest_with(tmp_path, tiny_corpus)
    out = tmp_path / "out"
    assert main(["mask", "--model", str(mask_path), "--manifest", str(manifest),
                 "--out-dir", str(out), "--as-features"]) == 0
    capsys.readouterr()
    speaker = read_manifest(manifest)[0]["speaker"]
    (out / "manifest.jsonl").unlink()  # only masked features left: still the command's output
    before = snapshot(tmp_path)
    refused(capsys, ["mask", "--model", str(mask_path), "--manifest", str(manifest),
                     "--out-dir", str(out), "--as-features"], speaker, "--force")
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    refused(capsys, ["mask", "--model", str(mask_path), "--manifest", str(manifest),
                     "--out-dir", str(out), "--as-features", "--force"], "notes.txt",
            "not written by")
    assert snapshot(tmp_path) == before


def test_evaluate_json_needs_force(tiny_corpus, slu_path, tmp_path, capsys):
    target = tmp_path / "precious.pt"
    target.write_bytes(slu_path.read_bytes())
    before = snapshot(tmp_path)
    refused(capsys, ["evaluate", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
                     "--json", str(target)], "precious.pt", "--force")
    assert snapshot(tmp_path) == before


def test_evaluate_warns_of_intents_the_model_never_saw(tiny_corpus, slu_path, tmp_path, capsys):
    rows = read_manifest(tiny_corpus)
    for r in rows:
        r["path"] = str(resolve_audio(tiny_corpus, r))
        r["intent"] = "order_pizza" if r["split"] == "test" else r["intent"]
    manifest = write_manifest(tmp_path / "other.jsonl", rows)
    assert main(["evaluate", "--manifest", str(manifest), "--slu", str(slu_path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["intent_acc"] == 0.0
    assert "never saw (order_pizza)" in err and "count as errors" in err


def test_a_truncated_wav_is_masked_with_a_warning(tiny_corpus, mask_path, tmp_path, capsys):
    wav = resolve_audio(tiny_corpus, read_manifest(tiny_corpus)[0])
    data = wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + (len(data) - 44) // 2])
    assert main(["mask", "--model", str(mask_path), str(cut), "--stats",
                 str(tmp_path / "s.json")]) == 0
    assert "truncated" in capsys.readouterr().err
    assert json.loads((tmp_path / "s.json").read_text())["input"]["truncated"] is True
    stereo = tmp_path / "stereo44k.wav"
    sf.write(stereo, np.zeros((44100, 2), np.float32) + 0.01, 44100)
    assert main(["mask", "--model", str(mask_path), str(stereo), "--stats",
                 str(tmp_path / "t.json")]) == 0
    err = capsys.readouterr().err
    assert "resampled from 44100 Hz" in err and "2 channels averaged" in err
    recorded = json.loads((tmp_path / "t.json").read_text())["input"]
    assert recorded["resampled"] and recorded["downmixed"]


@pytest.fixture(scope="module")
def exported(tiny_corpus, mask_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fw") / "fw"
    assert main(["export", "--mask", str(mask_path), "--calib", str(tiny_corpus),
                 "--out", str(out), *SMALL_EXPORT]) == 0
    return out


SMALL_EXPORT = ["--calib-utterances", "3", "--test-utterances", "2"]


def test_an_interrupted_export_force_leaves_the_old_set(exported, tiny_corpus, mask_path,
                                                        monkeypatch, capsys):
    pytest.importorskip("tensorflow", reason="needs the [export] extra")
    import firmware_export.pipeline as pipeline

    before = snapshot(exported.parent)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C came while the new report was being written

    monkeypatch.setattr(pipeline, "markdown", interrupted)
    refused(capsys, ["export", "--mask", str(mask_path), "--calib", str(tiny_corpus),
                     "--out", str(exported), "--force", *SMALL_EXPORT], "interrupted", code=130)
    assert snapshot(exported.parent) == before
    assert sorted(os.listdir(exported.parent)) == ["fw"]  # no staging folder left behind


def test_export_refuses_early(exported, tiny_corpus, mask_path, tmp_path, monkeypatch, capsys):
    import speechmask.train.data as data

    def never(*args, **kwargs):
        raise AssertionError("the export started work before refusing")

    monkeypatch.setattr(data, "load_features", never)
    (tmp_path / "file").write_text("x")
    before = snapshot(exported.parent, tmp_path)
    for out, needle in ((exported, "already exists"), (tmp_path / "file" / "fw", "not a folder")):
        refused(capsys, ["export", "--mask", str(mask_path), "--calib", str(tiny_corpus),
                         "--out", str(out)], needle)
    refused(capsys, ["export", "--mask", str(mask_path), "--calib", str(tiny_corpus),
                     "--out", str(tmp_path / "fw2"), "--ram-budget", "0"], "--ram-budget")
    assert snapshot(exported.parent, tmp_path) == before


def test_sigint_exits_130_and_keeps_the_old_checkpoint(tiny_corpus, slu_path, mask_path,
                                                       tmp_path):
    keep = tmp_path / "keep.pt"
    keep.write_bytes(mask_path.read_bytes())
    before = snapshot(tmp_path)
    # SIGINT restored to its default in the child: a test run started in the background of a
    # non-interactive shell inherits SIGINT ignored, and so would the command
    proc = subprocess.Popen([sys.executable, "-m", "speechmask", "train", "mask", "--manifest",
                             str(tiny_corpus), "--slu", str(slu_path), "--out", str(keep),
                             "--force", "--device", "cpu", "--eval-every", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc.stderr.read(1)  # the progress bar's first write: the command is past its imports
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == \
        "speechmask: error: interrupted"
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ properties
_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() |
                            st.text(max_size=8), lambda inner: st.lists(inner, max_size=3) |
                            st.dictionaries(st.text(max_size=6), inner, max_size=4),
                            max_leaves=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.binary(max_size=40), _json_values.map(
    lambda v: json.dumps(v).encode())), min_size=1, max_size=4))
def test_the_manifest_reader_never_crashes_on_garbage(tmp_path, lines):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        read_manifest(path)
    except ManifestError as exc:
        text = str(exc)
        assert text.startswith(str(path)) and "\n" not in text


_TRAIN_MASK = next(a for a in get_parser()._actions if hasattr(a, "choices") and a.choices
                   and "train" in a.choices).choices["train"]
_MASK_PARSER = next(a for a in _TRAIN_MASK._actions if hasattr(a, "choices") and a.choices
                    and "mask" in a.choices).choices["mask"]
_NUMBERS = st.one_of(st.integers(-5, 400), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from(["nan", "inf", "-inf", "1e999", "0", "-0"]))


@settings(max_examples=200, deadline=None)
@given(batch=_NUMBERS, lr=_NUMBERS, gamma=_NUMBERS, segment=_NUMBERS, steps=_NUMBERS)
def test_train_arguments_build_a_config_or_name_the_flag(batch, lr, gamma, segment, steps):
    """Any value either builds every config of `train mask` or is refused naming its flag."""
    from speechmask.models.config import GateConfig, MaskConfig
    from speechmask.train.config import MaskTrainConfig, ObjectiveConfig

    argv = ["--manifest", "m", "--slu", "s", "--out", "o", "--batch-size", str(batch),
            "--lr", str(lr), "--gamma", str(gamma), "--segment-ms", str(segment),
            "--max-steps", str(steps)]
    try:
        args = _MASK_PARSER.parse_args(argv)
    except SystemExit as exc:  # argparse's own type check: one line, exit 1
        assert exc.code == 1
        return
    try:
        gate = from_args(GateConfig, args, _MASK_PARSER)
        from_args(MaskConfig, args, _MASK_PARSER, gate=gate)
        from_args(ObjectiveConfig, args, _MASK_PARSER)
        from_args(MaskTrainConfig, args, _MASK_PARSER)
    except ConfigError as exc:
        assert str(exc).startswith(("--batch-size", "--lr", "--gamma", "--segment-ms",
                                    "--max-steps")), str(exc)

"""The held-out-template split: test speakers and test sentence templates are both unseen in
training, through the `data heldout` command as through the function."""

from __future__ import annotations

import pytest

from speechmask.cli import main
from speechmask.corpus.heldout import HeldoutConfig, heldout_split, heldout_templates
from speechmask.corpus.manifest import read_manifest
from speechmask.errors import ManifestError


def _rows(n_speakers=8, intents=(("a", 3), ("b", 2), ("c", 1))):
    parts = ["train"] * 4 + ["dev"] * 2 + ["test"] * 2
    rows = []
    for s in range(n_speakers):
        for intent, n_templates in intents:
            for t in range(n_templates):
                rows.append({"id": f"s{s}_{intent}{t}", "speaker": f"s{s}", "intent": intent,
                             "template": f"{intent}/{t}", "split": "train",
                             "speaker_split": parts[s]})
    return rows


def test_test_speakers_and_templates_are_unseen_in_training():
    rows = _rows()
    held = heldout_templates(rows, HeldoutConfig())
    assert len(held) == 2 and "c/0" not in held  # one per intent that has a second template
    out = heldout_split(rows, HeldoutConfig())
    train = [r for r in out if r["split"] in ("train", "dev")]
    test = [r for r in out if r["split"] == "test"]
    assert test and {r["template"] for r in test} <= held
    assert not {r["template"] for r in train} & held
    assert not {r["speaker"] for r in train} & {r["speaker"] for r in test}
    assert all(r["split"] == r["speaker_split"] for r in out)
    assert heldout_split(rows, HeldoutConfig()) == out  # deterministic


def test_rows_without_templates_or_empty_parts_are_refused():
    rows = _rows()
    rows[3].pop("template")
    with pytest.raises(ManifestError, match="no 'template'"):
        heldout_split(rows, HeldoutConfig(), "m.jsonl")
    with pytest.raises(ManifestError, match="no 'test'"):
        heldout_split(_rows(intents=(("a", 1),)), HeldoutConfig(), "m.jsonl")


def test_the_command_writes_a_manifest_every_command_reads(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "heldout.jsonl"
    assert main(["data", "heldout", "--manifest", str(tiny_corpus), "--out", str(out)]) == 0
    assert "unseen templates" in capsys.readouterr().out
    rows = read_manifest(out)
    test = [r for r in rows if r["split"] == "test"]
    seen = {r["template"] for r in rows if r["split"] != "test"}
    assert test and not {r["template"] for r in test} & seen
    with pytest.raises(SystemExit):  # exists: --force needed
        main(["data", "heldout", "--manifest", str(tiny_corpus), "--out", str(out)])

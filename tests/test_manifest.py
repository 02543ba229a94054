"""Manifest schema: validation errors name file and line; both split schemes; atomic writes."""

from __future__ import annotations

import json

import pytest

from speechmask.corpus.manifest import (assign_splits, read_manifest, validate_row,
                                        write_manifest)
from speechmask.errors import ManifestError


def row(i: int = 0, speaker: str = "s0", gender: str | None = "m", **kw) -> dict:
    base = {"id": f"u{i}", "path": f"{speaker}/u{i}.wav", "speaker": speaker, "gender": gender,
            "duration_s": 1.5, "transcript": "call maria garcia now", "intent": "call_contact",
            "slots": {"person": "maria garcia"},
            "entities": [{"type": "person", "text": "maria garcia", "start_word": 1,
                          "end_word": 3}], "split": "train", "speaker_split": "train"}
    return {**base, **kw}


@pytest.mark.parametrize("change, message", [
    ({"speaker": ""}, "speaker"),
    ({"gender": "male"}, "gender"),
    ({"duration_s": 0}, "duration_s"),
    ({"split": "valid"}, "split"),
    ({"slots": []}, "slots"),
    ({"entities": [{"type": "person", "text": "maria", "start_word": 1, "end_word": 3}]},
     "transcript words"),
    ({"entities": [{"type": "person", "text": "x", "start_word": 3, "end_word": 9}]}, "outside"),
    ({"transcript": None}, "outside"),  # entities need a transcript
])
def test_validate_row_rejects(change, message):
    with pytest.raises(ManifestError, match=message):
        validate_row(row(**change), "m.jsonl:3")


def test_validate_row_reports_missing_fields():
    r = row()
    del r["speaker_split"], r["intent"]
    with pytest.raises(ManifestError, match="missing field.*intent.*speaker_split"):
        validate_row(r)


def test_read_manifest_errors_name_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(row(0)) + "\n{not json\n")
    with pytest.raises(ManifestError, match=rf"{path}:2: invalid JSON"):
        read_manifest(path)
    path.write_text(json.dumps(row(0)) + "\n" + json.dumps(row(0)) + "\n")
    with pytest.raises(ManifestError, match=":2: duplicate id"):
        read_manifest(path)
    path.write_text("\n")
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(path)


def test_write_manifest_refuses_overwrite_and_invalid_rows(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest(path, [row(0), row(1)])
    assert [r["id"] for r in read_manifest(path)] == ["u0", "u1"]
    with pytest.raises(ManifestError, match="already exists"):
        write_manifest(path, [row(2)])
    before = path.read_text()
    with pytest.raises(ManifestError):
        write_manifest(path, [row(3), row(4, gender="x")], force=True)
    assert path.read_text() == before  # nothing half-written
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]


def corpus(n_speakers: int, per_speaker: int) -> list[dict]:
    return [row(s * 100 + u, speaker=f"s{s}", gender="mf"[s % 2])
            for s in range(n_speakers) for u in range(per_speaker)]


def test_utterance_split_puts_every_speaker_in_each_part():
    rows = corpus(10, 20)
    assign_splits(rows, seed=0)
    for s in range(10):
        parts = [r["split"] for r in rows if r["speaker"] == f"s{s}"]
        assert {"train", "dev", "test"} == set(parts)
        assert parts.count("train") == 14 and parts.count("test") == 3


@pytest.mark.parametrize("n_speakers", [4, 8, 30])
def test_speaker_split_is_disjoint_and_gender_balanced(n_speakers):
    rows = corpus(n_speakers, 3)
    assign_splits(rows, seed=0)
    part = {r["speaker"]: r["speaker_split"] for r in rows}
    gender = {r["speaker"]: r["gender"] for r in rows}
    for name in ("train", "test"):
        assert {gender[s] for s in part if part[s] == name} == {"m", "f"}
    assert len({(r["speaker"], r["speaker_split"]) for r in rows}) == n_speakers


def test_splits_are_seeded():
    a, b, c = corpus(8, 10), corpus(8, 10), corpus(8, 10)
    assign_splits(a, 0), assign_splits(b, 0), assign_splits(c, 1)
    key = lambda rs: [(r["split"], r["speaker_split"]) for r in rs]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)

"""Real-corpus loaders: tiny trees in each corpus's own layout -> build_manifest -> checked rows."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from speechmask.corpus.loaders import LOADERS
from speechmask.corpus.loaders.common import build_manifest, normalize_transcript
from speechmask.corpus.manifest import read_manifest
from speechmask.errors import CorpusError

SR = 16000


# ----------------------------------------------------------------------------- shared helpers

def write_audio(path: Path, seconds: float = 0.5) -> Path:
    """A short sine plus noise at 16 kHz; WAV or FLAC from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    t = np.arange(int(SR * seconds)) / SR
    data = 0.3 * np.sin(2 * np.pi * rng.uniform(120, 400) * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(str(path), data.astype(np.float32), SR, subtype="PCM_16")
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_bad_files(corrupt: Path, empty: Path, short: Path) -> set[str]:
    """Garbage bytes, a zero-byte file and a 0.05 s file: each must be reported, never fatal."""
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(b"\x00\x13garbage-not-audio" * 40)
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_bytes(b"")
    write_audio(short, seconds=0.05)
    return {str(corrupt), str(empty), str(short)}


@dataclass
class Tree:
    """A built corpus tree and what the loader must make of it."""

    root: Path
    rows: dict[str, dict] = field(default_factory=dict)  # id -> expected fields
    bad: set[str] = field(default_factory=set)  # paths (or file:line) expected in `bad`
    meta: list[Path] = field(default_factory=list)  # delete these -> CorpusError naming meta[0]


def utt(speaker: str, gender: str | None, transcript: str | None, intent: str | None = None,
        official_split: str | None = None, **extra) -> dict:
    row = {"speaker": speaker, "gender": gender, "transcript": transcript, "intent": intent,
           "official_split": official_split}
    row.update(extra)
    return row


# ----------------------------------------------------------------------------- corpus trees

def build_fsc(tmp: Path) -> Tree:
    root = tmp / "fluent_speech_commands_dataset"
    tree = Tree(root)
    write_text(root / "data" / "speaker_demographics.csv",
               "speakerId,Self-reported fluency level ,First Language spoken,"
               "Current language used for work/school,gender,ageRange\n"
               "2BqVo8kVB2Skwgyb,advanced,English (United States),English (United States),"
               "male,22-40\n"
               "4aGjX3AG5xcxeL7a,native,English (Canada),English (Canada),female,41-65\n"
               "52XVOeXMXYuaElyw,native,English (United States),English,female,22-40\n")
    utts = {  # split -> [(speaker, stem, transcription, action, object, location)]
        "train": [("2BqVo8kVB2Skwgyb", "u1", "Turn on the lights in the kitchen.", "activate",
                   "lights", "kitchen"),
                  ("2BqVo8kVB2Skwgyb", "u2", "Volume up", "increase", "volume", "none"),
                  ("4aGjX3AG5xcxeL7a", "u3", "Bring me my shoes", "bring", "shoes", "none")],
        "valid": [("4aGjX3AG5xcxeL7a", "u4", "Switch the language to Chinese", "change language",
                   "Chinese", "none")],
        "test": [("52XVOeXMXYuaElyw", "u5", "Decrease the heat in the washroom", "decrease",
                  "heat", "washroom"),
                 ("nodemographics1", "u6", "Lights off", "deactivate", "lights", "none")],
    }
    lines = {split: [",path,speakerId,transcription,action,object,location"] for split in utts}
    for split, items in utts.items():
        for i, (spk, stem, text, action, obj, loc) in enumerate(items):
            rel = f"wavs/speakers/{spk}/{stem}.wav"
            write_audio(root / rel)
            lines[split].append(f"{i},{rel},{spk},{text},{action},{obj},{loc}")
            slots = {"action": action, "object": obj, "location": loc}
            gender = {"2BqVo8kVB2Skwgyb": "m", "nodemographics1": None}.get(spk, "f")
            tree.rows[f"{spk}_{stem}"] = utt(spk, gender, normalize_transcript(text),
                                             f"{action}_{obj}_{loc}", split, slots=slots,
                                             entities=[])
    spk_dir = root / "wavs" / "speakers" / "2BqVo8kVB2Skwgyb"
    tree.bad |= write_bad_files(spk_dir / "bad1.wav", spk_dir / "bad2.wav", spk_dir / "bad3.wav")
    for i, stem in enumerate(("bad1", "bad2", "bad3", "missing")):
        lines["train"].append(f"{10 + i},wavs/speakers/2BqVo8kVB2Skwgyb/{stem}.wav,"
                              "2BqVo8kVB2Skwgyb,Volume up,increase,volume,none")
    tree.bad.add(str(spk_dir / "missing.wav"))
    lines["train"].append("20,wavs/speakers/x/y.wav,,Volume up,increase,volume,none")  # no speaker
    tree.bad.add(f"{root / 'data' / 'train_data.csv'}:{len(lines['train'])}")
    for split, text in lines.items():
        write_text(root / "data" / f"{split}_data.csv", "\n".join(text) + "\n")
    tree.meta = [root / "data" / "train_data.csv"]
    return tree


def build_slurp(tmp: Path) -> Tree:
    root = tmp / "slurp"
    audio = root / "audio" / "slurp_real"
    tree = Tree(root)
    speakers: dict[str, str] = {}
    entries: dict[str, list[str]] = {"train": [], "devel": [], "test": []}

    def entry(split: str, sid: int, sentence: str, annotation: str, scenario: str, action: str,
              files: dict[str, str], intent: str | None = None) -> None:
        speakers.update(files)
        entries[split].append(json.dumps({
            "slurp_id": sid, "sentence": sentence, "sentence_annotation": annotation,
            "intent": intent or f"{scenario}_{action}", "action": action, "tokens": [],
            "scenario": scenario, "entities": [],
            "recordings": [{"file": f, "wer": 0.0, "ent_wer": 0.0, "status": "correct"}
                           for f in files]}))

    wake = dict(transcript="wake me up at eight o'clock", intent="alarm_set",
                slots={"time": "eight"},
                entities=[{"type": "time", "text": "eight", "start_word": 4, "end_word": 5}])
    entry("train", 1, "wake me up at eight o'clock", "wake me up at [time : eight] o'clock",
          "alarm", "set", {"audio-1-headset.flac": "FE-101", "audio-1.flac": "FE-101"})
    for name in ("audio-1-headset", "audio-1"):
        tree.rows[name] = utt("FE-101", "f", official_split="train", **wake)
    entry("train", 2, "put meeting with Pawel for tomorrow ten am",
          "put [event_name : meeting] with [person : Pawel] for [date : tomorrow] "
          "[time : ten am]", "calendar", "set", {"audio-2.flac": "MO-102"})
    tree.rows["audio-2"] = utt(
        "MO-102", "m", "put meeting with pawel for tomorrow ten am", "calendar_set", "train",
        slots={"event_name": "meeting", "person": "pawel", "date": "tomorrow", "time": "ten am"},
        entities=[{"type": "person", "text": "pawel", "start_word": 3, "end_word": 4},
                  {"type": "date", "text": "tomorrow", "start_word": 5, "end_word": 6},
                  {"type": "time", "text": "ten am", "start_word": 6, "end_word": 8}])
    entry("devel", 3, "what's the weather in New York, please?",
          "what's the weather in [place_name : New York], please?", "weather", "query",
          {"audio-3.flac": "UNK-103", "audio-3-headset.flac": "UNK-103"})
    tree.rows["audio-3"] = utt(
        "UNK-103", None, "what's the weather in new york please", "weather_query", "devel",
        slots={"place_name": "new york"},
        entities=[{"type": "place", "text": "new york", "start_word": 4, "end_word": 6}])
    entry("devel", 4, "remind me at ten about the ten meeting",  # 'ten' twice: use the 2nd
          "remind me at ten about the [time : ten] meeting", "calendar", "remind",
          {"audio-4.flac": "ME-104"})
    tree.rows["audio-4"] = utt(
        "ME-104", "m", "remind me at ten about the ten meeting", "calendar_remind", "devel",
        entities=[{"type": "time", "text": "ten", "start_word": 6, "end_word": 7}])
    entry("devel", 7, "wake me at 7 am", "wake me at [time : seven am]", "alarm", "set",
          {"audio-10.flac": "FE-101"})  # annotation drifted from the sentence: sentence wins
    tree.rows["audio-10"] = utt("FE-101", "f", "wake me at 7 am", "alarm_set", "devel",
                                slots={"time": "seven am"}, entities=[])
    entry("test", 5, "turn up the brightness", "turn up the [house_place : brightness]", "iot",
          "hue_lightup", {"audio-5.flac": "FO-105", "audio-6.flac": "FO-105",
                          "audio-7.flac": "FO-105", "audio-8.flac": "FO-105"},
          intent="hue_lightup")  # SLURP's own 'intent' field lacks the scenario here
    tree.rows["audio-5"] = utt("FO-105", "f", "turn up the brightness", "iot_hue_lightup",
                               "test", slots={"house_place": "brightness"}, entities=[])
    for name in tree.rows:
        write_audio(audio / f"{name}.flac")
    tree.bad |= write_bad_files(audio / "audio-3-headset.flac", audio / "audio-6.flac",
                                audio / "audio-7.flac")
    tree.bad.add(str(audio / "audio-8.flac"))  # listed, but never recorded on disk
    entry("test", 6, "hello", "hello", "general", "greet", {"audio-9.flac": "FE-101"})
    write_audio(audio / "audio-9.flac")
    del speakers["audio-9.flac"]  # on disk but without a usrid in metadata.json
    tree.bad.add(str(audio / "audio-9.flac"))
    entries["test"].append("{not json")
    tree.bad.add(f"{root / 'dataset' / 'slurp' / 'test.jsonl'}:{len(entries['test'])}")
    for split, lines in entries.items():
        write_text(root / "dataset" / "slurp" / f"{split}.jsonl", "\n".join(lines) + "\n")
    metadata = {str(i): {"recordings": {f: {"usrid": u, "status": "correct"}}}
                for i, (f, u) in enumerate(speakers.items())}
    tree.meta = [write_text(root / "dataset" / "slurp" / "metadata.json", json.dumps(metadata))]
    return tree


def build_librispeech(tmp: Path) -> Tree:
    root = tmp / "LibriSpeech"
    tree = Tree(root)
    tree.meta = [write_text(root / "SPEAKERS.TXT", (
        "; LibriSpeech speakers\n"
        ";ID  |SEX| SUBSET           |MINUTES| NAME\n"
        "103  | F | train-clean-100  | 25.19 | Karen Savage\n"
        "60   | M | train-clean-100  | 20.18 | |CBW|Simon\n"
        "2277 | F | dev-clean        |  8.00 | zinniz\n"
        "1272 | M | dev-clean        |  8.00 | John Rose\n"))]
    chapters = {("train-clean-100", "103", "1240"): ["CHAPTER ONE MISSUS RACHEL LYNDE",
                                                     "THAT HAD ITS SOURCE AWAY BACK"],
                ("train-clean-100", "60", "121082"): ["A MAN'S WORDS"],
                ("dev-clean", "2277", "149896"): ["HE WAS IN A FEVERED STATE"],
                ("dev-clean", "1272", "128104"): ["MISTER QUILTER IS THE APOSTLE"]}
    for (subset, spk, chapter), texts in chapters.items():
        folder = root / subset / spk / chapter
        lines = []
        for i, text in enumerate(texts):
            utt_id = f"{spk}-{chapter}-{i:04d}"
            write_audio(folder / f"{utt_id}.flac")
            lines.append(f"{utt_id} {text}")
            gender = "f" if spk in ("103", "2277") else "m"
            tree.rows[utt_id] = utt(spk, gender, text.lower(), None, subset, slots={},
                                    entities=[])
        if spk == "103":
            bad = [folder / f"103-1240-{i:04d}.flac" for i in (5, 6, 7)]
            tree.bad |= write_bad_files(*bad)
            lines += [f"{p.stem} SOME WORDS" for p in bad]
            lines.append("103-1240-0009 NO AUDIO FOR THIS LINE")
            tree.bad.add(str(folder / "103-1240-0009.flac"))
            lines.append("garbage")
            tree.bad.add(f"{folder / '103-1240.trans.txt'}:{len(lines)}")
        write_text(folder / f"{spk}-{chapter}.trans.txt", "\n".join(lines) + "\n")
    return tree


def build_voxceleb(tmp: Path) -> Tree:
    root = tmp / "voxceleb"
    tree = Tree(root)
    tree.meta = [
        write_text(root / "vox1_meta.csv", "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
                   "id10001\tA.J._Buckley\tm\tIreland\tdev\n"
                   "id10002\tA.R._Rahman\tm\tIndia\tdev\n"
                   "id10003\tAamir_Khan\tf\tIndia\tdev\n"
                   "id10270\tx\tm\tUSA\ttest\n"
                   "id10271\ty\tf\tUSA\ttest\n"),
        write_text(root / "vox2_meta.csv", "VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \n"
                   "id00012 ,n000012 ,m ,dev \n"
                   "id00015 ,n000015 ,f ,test \n")]
    layout = {"vox1_dev_wav/wav": {"id10001": "m", "id10003": "f"},
              "vox1_test_wav/wav": {"id10270": "m", "id10271": "f"},
              "vox2/dev/wav": {"id00012": "m"}, "vox2/test/wav": {"id00015": "f"}}
    for base, spks in layout.items():
        for spk, gender in spks.items():
            for video, n in (("1zcIwhmdeo4", 1), ("1zcIwhmdeo4", 2), ("7w0IBEWc9Qw", 1)):
                write_audio(root / base / spk / video / f"{n:05d}.wav")
                tree.rows[f"{spk}-{video}-{n:05d}"] = utt(
                    spk, gender, None, None, "test" if "test" in base else "dev",
                    slots={}, entities=[])
    bad_dir = root / "vox1_dev_wav" / "wav" / "id10001" / "badvideo00"
    tree.bad |= write_bad_files(*(bad_dir / f"0000{i}.wav" for i in (1, 2, 3)))
    return tree


def _vctk_speakers(root: Path, prefix: str) -> Path:
    return write_text(root / "speaker-info.txt", (
        "ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"
        f"{prefix}225  23  F    English    Southern  England\n"
        f"{prefix}226  22  M    English    Surrey\n"
        f"{prefix}228  22  F    English    Southern  England\n"
        f"{prefix}315  23  M    American    Alabama (text missing)\n"))


def build_vctk(tmp: Path, legacy: bool = False) -> Tree:
    root = tmp / ("VCTK-Corpus" if legacy else "VCTK-Corpus-0.92")
    tree = Tree(root, meta=[_vctk_speakers(root, "" if legacy else "p")])
    texts = {"p225_001": "Please call Stella.", "p225_002": "Ask her to bring these things.",
             "p226_001": "Please call Stella.", "p228_003": "Six spoons of fresh snow peas.",
             "p315_001": None}
    audio = root / ("wav48" if legacy else "wav48_silence_trimmed")
    name = "{}.wav" if legacy else "{}_mic1.flac"
    for utt_id, text in texts.items():
        spk = utt_id.split("_")[0]
        write_audio(audio / spk / name.format(utt_id))
        if not legacy:
            write_audio(audio / spk / f"{utt_id}_mic2.flac")  # second mic: not a second row
        if text is not None:
            write_text(root / "txt" / spk / f"{utt_id}.txt", text + "\n")
        tree.rows[utt_id] = utt(spk, {"p225": "f", "p228": "f"}.get(spk, "m"),
                                normalize_transcript(text) if text else None, None, None,
                                slots={}, entities=[])
    tree.bad |= write_bad_files(*(audio / "p226" / name.format(f"p226_00{i}") for i in (5, 6, 7)))
    return tree


def build_speechcommands(tmp: Path) -> Tree:
    root = tmp / "speech_commands_v0.02"
    tree = Tree(root)
    clips = {"yes/0a7c2a8d_nohash_0.wav": "train", "yes/0a7c2a8d_nohash_1.wav": "test",
             "no/0a7c2a8d_nohash_0.wav": "train", "no/bb05582b_nohash_0.wav": "valid",
             "marvin/c1d39ce8_nohash_2.wav": "train", "marvin/bb05582b_nohash_0.wav": "test"}
    for rel, split in clips.items():
        write_audio(root / rel)
        word, name = rel.split("/")
        tree.rows[f"{word}_{name[:-4]}"] = utt(name.split("_")[0], None, word, word, split,
                                                slots={}, entities=[])
    write_audio(root / "_background_noise_" / "white_noise.wav", seconds=1.0)
    tree.bad |= write_bad_files(root / "up" / "dead01_nohash_0.wav",
                                root / "up" / "dead02_nohash_0.wav",
                                root / "up" / "dead03_nohash_0.wav")
    write_audio(root / "up" / "README.wav")
    tree.bad |= {str(root / "up" / "README.wav"), str(root / "yes" / "gone_nohash_0.wav")}
    tree.meta = [write_text(root / "validation_list.txt", "no/bb05582b_nohash_0.wav\n"),
                 write_text(root / "testing_list.txt", "yes/0a7c2a8d_nohash_1.wav\n"
                            "marvin/bb05582b_nohash_0.wav\nyes/gone_nohash_0.wav\n")]
    return tree


#: case name -> (format, tree builder)
CASES: dict[str, tuple[str, Callable[[Path], Tree]]] = {
    "fsc": ("fsc", build_fsc),
    "slurp": ("slurp", build_slurp),
    "librispeech": ("librispeech", build_librispeech),
    "voxceleb": ("voxceleb", build_voxceleb),
    "vctk-0.92": ("vctk", build_vctk),
    "vctk-0.80": ("vctk", lambda tmp: build_vctk(tmp, legacy=True)),
    "speechcommands": ("speechcommands", build_speechcommands),
}


# ----------------------------------------------------------------------------- tests

def test_registry_has_every_corpus():
    assert set(LOADERS) == {"fsc", "slurp", "librispeech", "voxceleb", "vctk", "speechcommands"}
    assert {fmt for fmt, _ in CASES.values()} == set(LOADERS)


@pytest.mark.parametrize("case", list(CASES))
def test_manifest_rows(tmp_path, case):
    fmt, build = CASES[case]
    tree = build(tmp_path)
    out = tmp_path / "out" / "manifest.jsonl"
    rows, bad = build_manifest(fmt, tree.root, out)
    written = read_manifest(out)  # validates every row, unique ids
    assert [r["id"] for r in written] == [r["id"] for r in rows]
    by_id = {r["id"]: r for r in written}
    assert set(by_id) == set(tree.rows)
    for utt_id, expected in tree.rows.items():
        row = by_id[utt_id]
        assert Path(row["path"]).is_absolute() and Path(row["path"]).is_file()
        assert row["corpus"] == fmt
        for key, value in expected.items():
            assert row.get(key) == value, (utt_id, key)
    bad_paths = {path for path, _ in bad}
    assert tree.bad <= bad_paths, tree.bad - bad_paths
    assert not bad_paths & {r["path"] for r in written}
    assert all(reason for _, reason in bad)


@pytest.mark.parametrize("case", list(CASES))
def test_missing_metadata_names_the_path(tmp_path, case):
    fmt, build = CASES[case]
    tree = build(tmp_path)
    for path in tree.meta:
        path.unlink()
    with pytest.raises(CorpusError, match="missing") as err:
        build_manifest(fmt, tree.root, tmp_path / "m.jsonl")
    assert str(tree.meta[0]) in str(err.value)
    assert not (tmp_path / "m.jsonl").exists()


@pytest.mark.parametrize("fmt", sorted(LOADERS))
def test_missing_root_is_a_corpus_error(tmp_path, fmt):
    with pytest.raises(CorpusError, match=str(tmp_path / "nope")):
        build_manifest(fmt, tmp_path / "nope", tmp_path / "m.jsonl")


def test_refuses_existing_out_without_force(tmp_path):
    tree = build_speechcommands(tmp_path)
    out = write_text(tmp_path / "manifest.jsonl", "keep me\n")
    with pytest.raises(CorpusError, match="already exists"):
        build_manifest("speechcommands", tree.root, out)
    assert out.read_text() == "keep me\n"
    rows, _ = build_manifest("speechcommands", tree.root, out, force=True)
    assert len(read_manifest(out)) == len(rows) == len(tree.rows)


def test_speaker_split_is_gender_balanced_and_disjoint(tmp_path):
    tree = build_voxceleb(tmp_path)
    rows, _ = build_manifest("voxceleb", tree.root, tmp_path / "m.jsonl", seed=3)
    parts: dict[str, set[str]] = {}
    for row in rows:
        parts.setdefault(row["speaker"], set()).add(row["speaker_split"])
    assert all(len(p) == 1 for p in parts.values())  # a speaker never straddles parts
    test_genders = {r["gender"] for r in rows if r["speaker_split"] == "test"}
    assert test_genders == {"m", "f"}


@pytest.mark.parametrize("text, expected", [
    ("Turn on the LIGHTS, please!", "turn on the lights please"),
    ("what\u2019s  up -- o'clock", "what's up o'clock"),
    ("twenty-five ' snake_case 10:30", "twenty five snake case 10 30"),
    ("  ", ""),
])
def test_normalize_transcript(text, expected):
    assert normalize_transcript(text) == expected

"""Which words a protection sends: word roles from the manifest's annotations, PocketSphinx's
forced alignment on real TTS speech, and the per-role shares of what is sent."""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pocketsphinx", reason="pocketsphinx not installed (pip install -e .[attacks])")

from attacks.pocketsphinx_asr import align  # noqa: E402
from attacks.words import WHOLE, roles, words_sent  # noqa: E402
from speechmask.audio import SAMPLE_RATE, read_audio  # noqa: E402
from speechmask.features import FrontendConfig  # noqa: E402

ROW = {"transcript": "call me at eight one zero in the kitchen",
       "slots": {"phone": "eight one zero", "room": "kitchen"},
       "entities": [{"type": "phone_number", "text": "eight one zero", "start_word": 3,
                     "end_word": 6}]}


def test_roles_follow_entities_then_slots_then_carrier():
    assert roles(ROW) == ["carrier"] * 3 + ["entity"] * 3 + ["carrier", "carrier", "slot"]
    assert roles({"transcript": "turn it up", "slots": {"x": "not there"}}) == ["carrier"] * 3
    clipped = {"transcript": "a b", "entities": [{"start_word": 1, "end_word": 9}]}
    assert roles(clipped) == ["carrier", "entity"]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not on PATH (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("align") / "a.wav"
    subprocess.run(["espeak-ng", "-v", "en-us+f2", "-w", str(path), ROW["transcript"]],
                   check=True, capture_output=True)
    return read_audio(path)


def test_alignment_gives_ordered_word_times_that_follow_the_audio(spoken):
    spans = align(spoken, ROW["transcript"])
    assert spans is not None and len(spans) == len(ROW["transcript"].split())
    starts, ends = np.array(spans).T
    assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1] - 1e-9)
    assert ends[-1] <= len(spoken) / SAMPLE_RATE + 0.02
    # the same words one second later are aligned one second later
    shifted = align(np.concatenate([np.zeros(SAMPLE_RATE), spoken]), ROW["transcript"])
    assert np.allclose(np.array(shifted) - 1.0, spans, atol=0.06)


def test_alignment_refuses_unknown_words_and_silence(spoken):
    assert align(spoken, "call me zorblaxian") is None
    assert align(np.zeros(SAMPLE_RATE), ROW["transcript"]) is None
    assert align(spoken, "") is None
    # a transcript far longer than the audio: the search finds no path; no crash
    assert align(spoken[:SAMPLE_RATE // 5], ROW["transcript"] + " and then some more") is None


def _data(rows):
    return SimpleNamespace(rows=rows, frontend=FrontendConfig())


def test_shares_count_the_cells_of_each_word_by_role():
    # word k spans frames [10k, 10k + 10); 40 mel bands
    spans = {0: [(0.1 * k, 0.1 * k + 0.1) for k in range(9)]}
    withheld = np.zeros((100, 40), bool)
    withheld[30:60] = True  # the entity words, whole
    withheld[60:70, :10] = True  # a quarter of the first carrier word after them
    out = words_sent(_data([ROW]), [withheld], spans, [0])
    assert out["entity"] == {"words": 3, "sent": 0.0, "withheld_whole": 1.0}
    assert out["slot"] == {"words": 1, "sent": 1.0, "withheld_whole": 0.0}
    assert out["carrier"]["words"] == 5
    assert out["carrier"]["sent"] == pytest.approx((4 + 0.75) / 5)
    assert out["carrier"]["withheld_whole"] == 0.0
    assert out["aligned"] == out["utterances"] == 1


def test_a_comb_sends_half_of_every_word_and_withholds_none_whole():
    spans = {0: [(0.1 * k, 0.1 * k + 0.1) for k in range(9)]}
    withheld = np.zeros((100, 40), bool)
    for start in range(0, 100, 8):
        withheld[start:start + 4] = True  # 40 ms closed, 40 ms open
    out = words_sent(_data([ROW]), [withheld], spans, [0])
    for role in ("entity", "carrier"):
        assert out[role]["sent"] == pytest.approx(0.5, abs=0.1)
        assert out[role]["withheld_whole"] == 0.0
    assert WHOLE < 0.5


def test_unaligned_utterances_are_counted_and_left_out():
    out = words_sent(_data([ROW, ROW]), [np.ones((100, 40), bool)] * 2,
                     {1: [(0.1 * k, 0.1 * k + 0.1) for k in range(9)]}, [0, 1])
    assert out["aligned"] == 1 and out["utterances"] == 2
    assert out["entity"]["words"] == 3 and out["entity"]["sent"] == 0.0
    empty = words_sent(_data([ROW]), [np.ones((100, 40), bool)], {}, [0])
    assert empty["entity"] == {"words": 0, "sent": None, "withheld_whole": None}

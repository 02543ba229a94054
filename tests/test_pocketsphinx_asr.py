"""PocketSphinx content attacker: WER on espeak-ng commands, silence, order, sample rate, quiet."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("pocketsphinx", reason="pocketsphinx not installed (pip install -e .[attacks])")
jiwer = pytest.importorskip("jiwer", reason="jiwer not installed (pip install -e .[attacks])")

from attacks.pocketsphinx_asr import (  # noqa: E402
    _base_word, _is_word, domain_lm, transcribe, transcribe_many)
from speechmask.audio import read_audio  # noqa: E402

COMMANDS = ("turn off the kitchen lights", "set an alarm for seven thirty", "call john smith",
            "play some jazz music", "what is the weather like today",
            "turn on the hallway lights", "set a timer for ten minutes",
            "send a message to my mother", "turn up the volume", "what time is it")
# espeak-ng 1.51 with this voice gives WER 0.55 on COMMANDS (en-us+f5 0.55 too); its male
# voices get only 0.85-0.92, formant synthesis being far from what the model was trained on.
# Broken feeds measured on the same audio: bytes swapped 1.00, only the first half of each
# waveform 0.84, 22.05 kHz audio passed as 16 kHz 1.16, the constant transcript "the" 0.92.
VOICE = "en-us+f2"
MAX_CLEAN_WER = 0.75


@pytest.fixture(scope="module")
def commands(tmp_path_factory) -> list[np.ndarray]:
    """COMMANDS spoken by espeak-ng, as 16 kHz float waveforms."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not on PATH (apt-get install espeak-ng): no speech to transcribe")
    folder = tmp_path_factory.mktemp("espeak")
    waves = []
    for index, text in enumerate(COMMANDS):
        path = folder / f"{index}.wav"
        subprocess.run(["espeak-ng", "-v", VOICE, "-w", str(path), text], check=True,
                       capture_output=True)
        waves.append(read_audio(path))
    return waves


@pytest.fixture(scope="module")
def transcripts(commands) -> list[str]:
    return [transcribe(wave) for wave in commands]


def test_clean_commands_are_understood(transcripts):
    wer = jiwer.wer(list(COMMANDS), transcripts)
    assert wer < MAX_CLEAN_WER, list(zip(COMMANDS, transcripts))


def test_transcripts_are_plain_lowercase_words(transcripts):
    """No <s>, <sil>, [NOISE] or read(2) marks; single spaces, nothing at the ends."""
    assert all(transcripts)
    for transcript in transcripts:
        assert transcript == transcript.lower() == " ".join(transcript.split())
        assert not any(mark in transcript for mark in "<>[]()+")


@pytest.mark.parametrize("token, word", [("<s>", None), ("</s>", None), ("<sil>", None),
                                         ("[NOISE]", None), ("[SPEECH]", None),
                                         ("++GARBAGE++", None), ("read(2)", "read"),
                                         ("john", "john"), ("don't", "don't")])
def test_fillers_dropped_and_pronunciations_merged(token, word):
    assert _is_word(token) == (word is not None)
    if word is not None:
        assert _base_word(token) == word


@pytest.mark.parametrize("silence", [
    np.zeros(32000, dtype=np.float32),  # the decoder alone says "of" here
    np.zeros(0, dtype=np.float32),
    np.full(16000, 1e-6, dtype=np.float32),  # rounds to digital silence
    (1e-3 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32),  # -60 dBFS
], ids=["zeros", "empty", "below-one-lsb", "noise-floor"])
def test_silence_gives_empty_transcript(silence):
    assert transcribe(silence) == ""


def test_transcribe_many_keeps_order(commands, transcripts):
    silence = np.zeros(16000, dtype=np.float32)
    waves = [commands[3], silence, *commands[:3], *commands[4:]]
    expected = [transcripts[3], "", *transcripts[:3], *transcripts[4:]]
    assert len(set(expected)) == len(expected)  # a shuffled result could not pass
    assert transcribe_many(waves, jobs=2, progress=False) == expected


def test_result_does_not_depend_on_earlier_utterances(commands, transcripts):
    """The decoder is reused; what it heard before must not change the next transcript."""
    assert [transcribe(wave) for wave in reversed(commands)] == transcripts[::-1]


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100])
def test_wrong_sample_rate_is_refused(sample_rate):
    with pytest.raises(ValueError) as refusal:
        transcribe(np.zeros(sample_rate, dtype=np.float32), sample_rate)
    assert str(sample_rate) in str(refusal.value) and "16000" in str(refusal.value)


def test_decoder_logs_nothing(capfd):
    """A 20 ms click makes PocketSphinx log an ERROR at its default level; ours stays quiet."""
    click = np.tile(np.float32([0.0, 0.3, -0.3]), 107)
    assert transcribe(click) == ""
    assert capfd.readouterr().err == ""


def test_domain_language_model_helps_and_is_valid_arpa(commands, transcripts, tmp_path):
    """A bigram of the application's sentences (here COMMANDS plus sentences of the same kind)
    is what an attacker who knows the application decodes with: it must load in PocketSphinx
    and transcribe the commands better than the general model; the general model stays the
    default of `transcribe`."""
    extra = ["turn on the kitchen lights", "set an alarm for six", "call my mother",
             "play some music", "what is the time"]
    lm = domain_lm([*COMMANDS, *extra, "zzqx unknownword"], tmp_path / "domain.arpa")
    text = lm.read_text()
    assert text.startswith("\\data\\") and text.rstrip().endswith("\\end\\")
    assert "zzqx" not in text  # words the dictionary cannot say are dropped
    domain = transcribe_many(commands, jobs=2, progress=False, lm=lm)
    generic_wer = jiwer.wer(list(COMMANDS), transcripts)
    domain_wer = jiwer.wer(list(COMMANDS), domain)
    assert domain_wer < min(0.3, generic_wer - 0.1), list(zip(COMMANDS, domain))
    assert [transcribe(w) for w in commands[:2]] == transcripts[:2]  # default model restored


def test_domain_language_model_needs_known_words(tmp_path):
    with pytest.raises(ValueError, match="dictionary"):
        domain_lm(["zzqx qqzz"], tmp_path / "x.arpa")
    assert not (tmp_path / "x.arpa").exists()

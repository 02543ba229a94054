"""The attackers' domain bigram and the trained ASRs' beam-search decoder (real KenLM and
pyctcdecode on small hand-made inputs)."""

import math

import kenlm
import numpy as np
import pytest

from attacks.decoding import CTCDecoder, Lexicon, bigram_arpa
from speechmask.train.adversaries import ALPHABET

SENTENCES = ["set an alarm for six", "set the alarm for seven", "call my mother",
             "turn on the kitchen lights", "turn off the lights", "what's the time"]


@pytest.fixture()
def arpa(tmp_path):
    return bigram_arpa([*SENTENCES, None, ""], tmp_path / "domain.arpa")


def test_bigram_is_a_normalised_arpa_model_kenlm_reads(arpa):
    """Every history's next-word distribution (the vocabulary and </s>) sums to 1 in KenLM,
    seen and unseen histories alike, and seen bigrams beat unseen ones."""
    lm = kenlm.Model(str(arpa))
    vocab = sorted({w for s in SENTENCES for w in s.split()})
    assert lm.order == 2
    for history in ("<s>", "set", "the", "lights", "mother"):
        state = kenlm.State()
        if history == "<s>":
            lm.BeginSentenceWrite(state)
        else:
            lm.NullContextWrite(state)
            lm.BaseScore(state, history, after := kenlm.State())
            state = after
        total = sum(10 ** lm.BaseScore(state, w, kenlm.State()) for w in [*vocab, "</s>"])
        assert math.isclose(total, 1.0, rel_tol=1e-3), history
    assert lm.score("set the alarm", bos=True, eos=True) > lm.score("alarm the set", bos=True,
                                                                     eos=True)


def test_bigram_keeps_only_known_words(tmp_path):
    path = bigram_arpa(["set zzqx alarm"], tmp_path / "a.arpa", known={"set", "alarm"})
    assert "zzqx" not in path.read_text()
    with pytest.raises(ValueError):
        bigram_arpa(["zzqx"], tmp_path / "b.arpa", known={"set"})
    assert not (tmp_path / "b.arpa").exists()


def _log_probs(steps: list[dict[str, float]]) -> np.ndarray:
    """CTC log-probabilities: each step's characters with their probabilities, the rest of the
    mass on blank, each step followed by a blank step."""
    rows = []
    for step in steps:
        p = np.full(len(ALPHABET) + 1, 1e-6)
        for ch, q in step.items():
            p[ALPHABET.index(ch) + 1] = q
        p[0] = max(1e-6, 1 - sum(step.values()))
        blank = np.full(len(ALPHABET) + 1, 1e-6)
        blank[0] = 1.0
        rows += [p / p.sum(), blank / blank.sum()]
    return np.log(np.array(rows, dtype=np.float32))


def test_decoder_lets_the_bigram_settle_what_the_acoustics_leave_open(arpa, capfd):
    """'set the alarm': the vowel of 'set' is an even e/a split and 'the' a t/d one; best-path
    decoding could spell 'sat dhe', the bigram's beam search says what the domain says."""
    spelled = [{c: 0.98} for c in "s"] + [{"e": 0.45, "a": 0.45}] + [{"t": 0.98}, {" ": 0.98}] \
        + [{"t": 0.45, "d": 0.45}] + [{c: 0.98} for c in "he alarm"]
    decoder = CTCDecoder(ALPHABET, SENTENCES, arpa)
    assert capfd.readouterr().err == ""  # KenLM loads it without a complaint or progress bar
    assert decoder.decode(_log_probs(spelled)) == "set the alarm"
    assert decoder.decode(_log_probs([{}] * 4)) == ""  # blanks only: no words


def test_beam_width_defaults_to_pyctcdecodes_and_reaches_the_search(arpa, monkeypatch):
    """The suite's default beam is pyctcdecode's own (nothing tuned); `--beam-width` (smoke runs)
    is the width the search runs with."""
    from pyctcdecode.constants import DEFAULT_BEAM_WIDTH
    from pyctcdecode.decoder import BeamSearchDecoderCTC

    from attacks.config import SuiteConfig

    assert SuiteConfig().beam_width == DEFAULT_BEAM_WIDTH
    widths = []
    search = BeamSearchDecoderCTC.decode
    monkeypatch.setattr(BeamSearchDecoderCTC, "decode", lambda self, logits, beam_width: (
        widths.append(beam_width), search(self, logits, beam_width=beam_width))[1])
    spelled = [{c: 0.98} for c in "call my mother"]
    assert [CTCDecoder(ALPHABET, SENTENCES, arpa, beam_width=w).decode(_log_probs(spelled))
            for w in (DEFAULT_BEAM_WIDTH, 2)] == ["call my mother"] * 2
    assert widths == [DEFAULT_BEAM_WIDTH, 2]


def test_lexicon_snaps_misheard_words_only_when_close():
    lexicon = Lexicon(SENTENCES)
    assert lexicon.correct("sett the alarn") == "set the alarm"
    assert lexicon.correct("zzzzzz") == "zzzzzz"

"""How an attacker who knows the application turns speech models' output into words: a word
bigram of its training transcripts (an ARPA file, read by PocketSphinx and by KenLM), and the
trained ASRs' decoder, a CTC beam search scored with that bigram (pyctcdecode over KenLM) whose
words are then snapped to the training vocabulary.

The bigram is the knowledge the domain PocketSphinx already had; giving it to the trained ASRs
too is what makes them as strong as item 1 of the attack suite's targets asks (CHANGELOG.md
records greedy against beam search on the same network)."""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .metrics import normalize_words

ARPA_VERSION = 2  # bumped when `bigram_arpa` writes other files (2: tab-separated, <unk>)


def bigram_arpa(transcripts: Iterable[str | None], path: Path, *, known: set[str] | None = None,
                discount: float = 0.5) -> Path:
    """Write an ARPA bigram language model of `transcripts` to `path` and return it.

    Absolute discounting interpolated with an add-one unigram over the vocabulary, written in
    ARPA's backoff form with tab-separated fields (as KenLM requires). With `known`, words not in
    it are dropped (a decoder that cannot say them). Written by hand because no maintained pip
    package estimates ARPA models (KenLM's estimator `lmplz` is a separate C++ build; its Python
    package only queries); a bigram needs twenty lines. ValueError when no sentence has a word.
    """
    sentences = [["<s>"] + [w for w in normalize_words(t) if known is None or w in known]
                 + ["</s>"] for t in transcripts if t]
    if not any(len(s) > 2 for s in sentences):
        raise ValueError("no transcript has a word the decoder knows")
    uni = Counter(w for s in sentences for w in s[1:])
    vocab = sorted(uni)  # words and </s>
    total = sum(uni.values())
    p_uni = {w: (uni[w] + 1) / (total + len(vocab)) for w in vocab}
    bi = Counter((a, b) for s in sentences for a, b in zip(s, s[1:]))
    history = Counter(a for a, _ in bi.elements())
    followers: dict[str, list[str]] = {}
    for a, b in bi:
        followers.setdefault(a, []).append(b)
    p_bi, backoff = {}, {}
    for a, ws in followers.items():
        lam = discount * len(ws) / history[a]
        for b in ws:
            p_bi[a, b] = (bi[a, b] - discount) / history[a] + lam * p_uni[b]
        seen = sum(p_bi[a, b] for b in ws)
        backoff[a] = (1 - seen) / max(1e-12, 1 - sum(p_uni[b] for b in ws))
    # <unk> at KenLM's own substitute (log10 -100): it complains on stderr when it is missing
    lines = ["\\data\\", f"ngram 1={len(vocab) + 2}", f"ngram 2={len(p_bi)}", "",
             "\\1-grams:", "-100.0000\t<unk>",
             f"-99.0000\t<s>\t{math.log10(backoff['<s>']):.4f}"]
    for w in vocab:
        bo = f"\t{math.log10(backoff[w]):.4f}" if w in backoff else ""
        lines.append(f"{math.log10(p_uni[w]):.4f}\t{w}{bo}")
    lines += ["", "\\2-grams:"]
    lines += [f"{math.log10(p):.4f}\t{a} {b}" for (a, b), p in sorted(p_bi.items())]
    lines += ["", "\\end\\", ""]
    from speechmask.atomic import atomic_output

    with atomic_output(Path(path)) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")
    return Path(path)


class Lexicon:
    """The attacker's vocabulary: every word of the training transcripts. Snapping each decoded
    word to the closest vocabulary word (difflib's ratio >= `cutoff`, else kept as heard) is
    what a decoder restricted to this lexicon would do; the beam search only penalises words
    outside it. Written here because it is a few lines over the standard library."""

    def __init__(self, transcripts: Iterable[str | None], cutoff: float = 0.5):
        self.words = sorted({w for t in transcripts for w in normalize_words(t)})
        self.cutoff = cutoff
        self._memo: dict[str, str] = {}

    def correct(self, text: str) -> str:
        out = []
        for w in text.split():
            if w not in self._memo:
                match = difflib.get_close_matches(w, self.words, n=1, cutoff=self.cutoff)
                self._memo[w] = match[0] if match else w
            out.append(self._memo[w])
        return " ".join(out)


class CTCDecoder:
    """Character CTC log-probabilities `(T, 1 + len(alphabet))` (blank first) -> words: a beam
    search scored with the bigram at `arpa` (pyctcdecode's default weights and beam width:
    nothing is tuned on the suite's data), then `Lexicon.correct` for the words the beam
    search let through outside the vocabulary. `beam_width`: pyctcdecode's default unless a
    smoke run asks for less (`SuiteConfig.beam_width`)."""

    def __init__(self, alphabet: str, transcripts: Iterable[str | None], arpa: Path,
                 beam_width: int = 100):
        self.beam_width = beam_width
        import kenlm
        from pyctcdecode.alphabet import Alphabet
        from pyctcdecode.decoder import BeamSearchDecoderCTC
        from pyctcdecode.language_model import LanguageModel

        self.lexicon = Lexicon(transcripts)
        # pyctcdecode warns about a small vocabulary, which a domain's is; nothing to act on
        logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
        config = kenlm.Config()
        config.show_progress = False
        with _stderr_silenced():  # KenLM's advice to build a binary file has no switch to turn off
            lm = kenlm.Model(str(arpa), config)
        self._beam = BeamSearchDecoderCTC(Alphabet.build_alphabet(["", *alphabet]),
                                          LanguageModel(lm, self.lexicon.words))

    def decode(self, log_probs: np.ndarray) -> str:
        text = self._beam.decode(np.ascontiguousarray(log_probs, dtype=np.float32),
                                 beam_width=self.beam_width)
        return self.lexicon.correct(" ".join(text.split()))


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 points at /dev/null inside (C++ code writes there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

"""The attack suite: every protection through every attacker, one row of metrics and cost each."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from speechmask.models.gates import GateConfig
from speechmask.models.mask import MaskGenerator
from speechmask.models.slu import SLUModel
from speechmask.options import field_default
from speechmask.train.adversaries import ALPHABET, ctc_loss
from speechmask.train.config import FinetuneConfig
from speechmask.train.data import pad_batch

from . import content, speaker, systems, words
from .config import SuiteConfig
from .data import AttackError, Sent, SuiteData
from .decoding import ARPA_VERSION, CTCDecoder, bigram_arpa
from .fit import Cache, EarlyStop, FitConfig, digest_arrays, fit
from .nets import CTCASR, SpeakerEmbedder
from .systems import System

METRICS = ("intent_acc", "wer_pocketsphinx", "wer_passive", "wer_informed", "wer_inpainting",
           "entity_error_rate", "eer_ignorant", "eer_lazy_informed", "eer_semi_informed",
           "speaker_id_acc", "gender_acc", "open_fraction", "entity_words_sent",
           "carrier_words_sent")
ASR_ATTACKS = ("passive", "informed", "inpainting")  # the attacks that need the clean ASR
# relative time of training the shared attackers, on the scale of `System.build_cost`: what
# `run_suite` builds ahead, longest first
SHARED_COST = {"asr": 5.0, "xvector": 2.0}
# the suite fine-tunes the cloud model on a protection's output as `train finetune` does
FINETUNE_LR = field_default(FinetuneConfig, "lr")


class Suite:
    """Runs the configured attacks on the configured systems. `mask` and `slu` are the trained
    mask generator and clean cloud model; `slu_masked` optionally the cloud model already
    fine-tuned on the mask's output (otherwise the suite fine-tunes one)."""

    def __init__(self, data: SuiteData, slu: SLUModel, mask: MaskGenerator | None,
                 cfg: SuiteConfig, cache: Cache, *, slu_masked: SLUModel | None = None,
                 int8_model: bytes | None = None, progress: bool = True):
        self.data, self.slu, self.mask, self.cfg, self.cache = data, slu, mask, cfg, cache
        self.int8_model = int8_model  # the exported mask.tflite (system speechmask_int8)
        self.slu_masked, self.progress = slu_masked, progress
        self.inner_jobs: int | None = None  # processes of PocketSphinx and McAdams (1 in workers)
        self.gate = mask.cfg.gate if mask is not None else GateConfig()
        self.details: dict[str, dict] = {}
        self.examples: dict[str, dict] = {}
        # the registered systems' instances, made on first use (they keep what they train)
        self._systems: dict[str, System] = {}
        # what a system that others train as (`System.trains_as`) sends, built once per process
        self._sent: dict[str, Sent] = {}
        self._asr: CTCASR | None = None
        self._embedder: SpeakerEmbedder | None = None
        self._trials: speaker.Trials | None = None
        self._decoder: CTCDecoder | None = None
        self._lms: dict[str, Path] = {}  # the ARPA files, by name
        self._lm_dir: tempfile.TemporaryDirectory | None = None  # the LMs without a cache folder
        self._spans: dict[int, list[tuple[float, float]]] | None = None  # word times, test part

    # shared attackers (trained once on clean speech)
    @property
    def stop(self) -> EarlyStop | None:
        """Early stopping of every attacker at full strength (`SuiteConfig.early_stop`)."""
        every = self.cfg.early_stop
        return EarlyStop(*every) if every else None

    def passive_asr(self) -> CTCASR:
        if self._asr is None:
            c = self.cfg.content
            self._asr = content.train_asr(
                self.data, self.data.fs.features, stride=1, steps=self.cfg.steps(c.asr_steps),
                lr=c.asr_lr, cache=self.cache, name="asr-clean", seed=self.cfg.seed,
                progress=self.progress, width=(c.asr_channels, c.asr_hidden), stop=self.stop)
        return self._asr

    def clean_embedder(self) -> SpeakerEmbedder:
        if self._embedder is None:
            s = self.cfg.speaker
            self._embedder = speaker.train_embedder(
                self.data, self.data.fs.features, cfg=s, steps=self.cfg.steps(s.steps), stride=1,
                cache=self.cache, name="xvector-clean", seed=self.cfg.seed, progress=self.progress,
                stop=self.stop)
        return self._embedder

    def trials(self) -> speaker.Trials:
        if self._trials is None:
            self._trials = speaker.Trials.build(self.data, self.cfg.speaker, self.cfg.seed)
        return self._trials

    def pocketsphinx_lm(self) -> Path | None:
        """The ARPA file PocketSphinx decodes with (None: the wheel's general model)."""
        if self.cfg.pocketsphinx_lm == "generic":
            return None
        from .pocketsphinx_asr import domain_lm

        return self._arpa("pocketsphinx-domain", domain_lm)

    def decoder(self) -> CTCDecoder:
        """The trained ASRs' decoder: a beam search with the bigram of the training
        transcripts, every word of them kept (`decoding.CTCDecoder`)."""
        if self._decoder is None:
            self._decoder = CTCDecoder(ALPHABET, self._transcripts(),
                                       self._arpa("asr-bigram", bigram_arpa),
                                       beam_width=self.cfg.beam_width)
        return self._decoder

    def _transcripts(self) -> list[str | None]:
        """The content attackers' training transcripts: what their language models know."""
        return [self.data.rows[i]["transcript"] for i in self.data.content_train]

    def _arpa(self, name: str, write: Callable[[list, Path], Path]) -> Path:
        """The ARPA file `write` makes of the training transcripts: in the cache folder (keyed
        by the transcripts and the version of `bigram_arpa`), else in a temporary folder."""
        if name not in self._lms:
            texts = self._transcripts()
            cached = self.cache.path(name, Cache.key("lm", ARPA_VERSION, texts))
            if cached is None:
                if self._lm_dir is None:
                    self._lm_dir = tempfile.TemporaryDirectory(prefix="speechmask-lm-")
                path = Path(self._lm_dir.name) / f"{name}.arpa"
            else:
                path = cached.with_suffix(".arpa")
            self._lms[name] = path if path.is_file() else write(texts, path)
        return self._lms[name]

    # the systems
    def system(self, name: str) -> System:
        """The suite's instance of the registered system `name`."""
        if name not in self._systems:
            self._systems[name] = systems.get(name).create()
        return self._systems[name]

    def require(self, name: str) -> None:
        """AttackError unless the suite holds everything system `name` needs."""
        entry = systems.get(name)
        if entry.missing(k for k in systems.INPUTS if getattr(self, k) is not None):
            raise AttackError(f"the {name} system needs "
                              f"{' and '.join(systems.INPUTS[n] for n in entry.needs)}")

    def build(self, name: str) -> Sent | None:
        """What system `name` sends (None: nothing leaves the device)."""
        self.require(name)
        return self.system(name).build(self)

    def cost(self, name: str) -> dict:
        """System `name`'s on-device cost per second of audio (before or after `build`)."""
        return self.system(name).cost(self)

    def shared_tasks(self) -> list[str]:
        """What `shared` can build ahead of the systems, longest first: the shared attackers
        that the configured systems' attacks use, and the systems worth building ahead."""
        chosen = {n: self.system(n) for n in self.cfg.systems}
        used = frozenset().union(*(s.shared for s in chosen.values()))
        attacks = self.cfg.attacks
        cost = {}
        if "asr" in used and any(a in attacks for a in ASR_ATTACKS):
            cost["asr"] = SHARED_COST["asr"]
        if "xvector" in used and "speaker" in attacks:
            cost["xvector"] = SHARED_COST["xvector"]
        cost.update({n: s.build_cost for n, s in chosen.items() if s.build_cost > 0})
        return sorted(cost, key=lambda task: -cost[task])

    def shared(self, task: str) -> None:
        """Train (or load from the cache) one shared attacker, or build one system ahead."""
        if task == "asr":
            self.passive_asr()
        elif task == "xvector":
            self.clean_embedder()
        else:
            self.build(task)

    def check(self) -> None:
        """Fail early on what the suite cannot use (before any training)."""
        for name in self.cfg.systems:
            self.require(name)
        if "speaker" in self.cfg.attacks:
            self.trials()

    # one system
    def run_system(self, name: str) -> dict:
        t0 = time.perf_counter()
        sent = self.build(name)
        if sent is None:
            return self._nothing_sent(name)
        metrics = dict.fromkeys(METRICS)
        metrics["open_fraction"] = sent.open_fraction
        details: dict = {}
        if sent.withheld is not None:
            details["words"] = self.words(sent)
            metrics["entity_words_sent"] = details["words"]["entity"]["sent"]
            metrics["carrier_words_sent"] = details["words"]["carrier"]["sent"]
        elif self.system(name).sends_clean:  # every word as spoken
            metrics["entity_words_sent"] = metrics["carrier_words_sent"] = 1.0
        metrics["intent_acc"], details["utility"] = self.utility(name, sent)
        self.content_attacks(name, sent, metrics, details)
        if "speaker" in self.cfg.attacks:
            self.speaker_attacks(name, sent, metrics, details)
        details["seconds"] = round(time.perf_counter() - t0, 1)
        self.details[name] = details
        self._example(name, sent)
        return {"name": name, "metrics": metrics, "cost": self.cost(name)}

    def words(self, sent: Sent) -> dict:
        """Which words `sent` sends, by role (`attacks.words`), on the content test part."""
        if self._spans is None:
            self._spans = words.alignments(self.data, self.data.content_test)
        return words.words_sent(self.data, sent.withheld, self._spans, self.data.content_test)

    # utility
    def utility(self, name: str, sent: Sent) -> tuple[float, dict]:
        d = self.data
        idx = d.content_test
        truth = [d.rows[i]["intent"] for i in idx]
        if sent.intent is not None:
            acc = float(np.mean([p == t for p, t in zip(sent.intent(idx), truth)]))
            return acc, {"model": "own cloud head"}
        clean_acc = self._accuracy(self.slu, sent.features, idx)
        if self.system(name).sends_clean:
            return clean_acc, {"clean_model": clean_acc}
        if "mask" in systems.get(name).needs and self.slu_masked is not None:
            tuned, how = self.slu_masked, "given --slu-masked"
        else:
            train_name, train = self._training_data(name, sent)
            tuned = self._finetune_slu(train_name, train)
            how = "fine-tuned by the suite" + (
                "" if train_name == name else f" on what {train_name} sends")
        return self._accuracy(tuned, sent.features, idx), {"clean_model": clean_acc,
                                                           "fine_tuned": how}

    def _accuracy(self, model: SLUModel, feats: list[np.ndarray], idx: list[int]) -> float:
        label = {n: k for k, n in enumerate(model.cfg.intents)}
        correct = 0
        with torch.no_grad():
            for s in range(0, len(idx), 64):
                rows = idx[s:s + 64]
                x, lengths = pad_batch([feats[i] for i in rows], self.data.floor)
                pred = model.eval()(x, lengths).argmax(-1).tolist()
                correct += sum(p == label.get(self.data.rows[i]["intent"], -1)
                               for p, i in zip(pred, rows))
        return correct / len(idx)

    def _finetune_slu(self, name: str, sent: Sent) -> SLUModel:
        d = self.data
        idx = [i for i in d.content_train if d.rows[i]["intent"] in self.slu.cfg.intents]
        model = SLUModel(self.slu.cfg)
        model.load_state_dict(self.slu.state_dict())
        label = {n: k for k, n in enumerate(model.cfg.intents)}
        cfg = FitConfig(self.cfg.steps(self.cfg.slu_finetune_steps), lr=FINETUNE_LR,
                        seed=self.cfg.seed)

        def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
            rows = [idx[p] for p in batch]
            x, lengths = pad_batch([sent.features[i] for i in rows], d.floor)
            logits, lp, n = model(x, lengths, with_ctc=True)
            y = torch.tensor([label[d.rows[i]["intent"]] for i in rows])
            return (torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.05) +
                    0.5 * ctc_loss(lp, n, [d.rows[i]["transcript"] for i in rows]).mean())

        key = Cache.key("slu-finetune", name, cfg, digest_arrays(
            p.detach().numpy() for p in self.slu.parameters()),
            digest_arrays(sent.features[i] for i in idx))
        return self.cache.get_or_fit(model, f"slu-{name}", key, lambda: fit(
            model, loss, len(idx), cfg, desc=f"fine-tune cloud model on {name}",
            progress=self.progress))

    # content
    def _training_data(self, name: str, sent: Sent) -> tuple[str, Sent]:
        """What the informed attackers and the fine-tuned cloud model of system `name` train on:
        what it sends, or what the system it trains as sends (`System.trains_as`)."""
        other = self.system(name).trains_as
        if other is None:
            return name, sent
        if other not in self._sent:
            self._sent[other] = self.build(other)
        return other, self._sent[other]

    def content_attacks(self, name: str, sent: Sent, metrics: dict, details: dict) -> None:
        d, c, attacks = self.data, self.cfg.content, self.cfg.attacks
        idx = d.content_test
        pad = d.floor if sent.log_mel else 0.0
        found: dict[str, dict] = {}
        if "pocketsphinx" in attacks and sent.audio is not None:
            from .pocketsphinx_asr import transcribe_many
            pidx = idx[: self.cfg.pocketsphinx_utterances] if self.cfg.pocketsphinx_utterances \
                else idx
            hyps = transcribe_many((sent.audio(i) for i in pidx), jobs=self.inner_jobs,
                                   progress=self.progress,
                                   desc=f"pocketsphinx on {name}", lm=self.pocketsphinx_lm())
            found["pocketsphinx"] = content.scores(d, hyps, pidx)
        if "passive" in attacks and sent.log_mel:
            hyps = content.transcribe(self.passive_asr(), sent.features, idx, pad, self.decoder())
            found["passive"] = content.scores(d, hyps, idx)
        informed = None
        train_name, train = self._training_data(name, sent)
        if "informed" in attacks:
            if self.system(name).sends_clean and "passive" in found:
                found["informed"] = found["passive"]  # its training data is the clean data
            else:
                informed = content.train_asr(
                    d, train.features, stride=sent.frame_stride,
                    steps=self.cfg.steps(c.informed_steps if sent.log_mel else c.transfer_steps),
                    lr=c.finetune_lr if sent.log_mel else c.asr_lr / 2, cache=self.cache,
                    name=f"asr-informed-{train_name}", init=self.passive_asr(),
                    seed=self.cfg.seed, progress=self.progress,
                    width=(c.asr_channels, c.asr_hidden), stop=self.stop)
                found["informed"] = content.scores(
                    d, content.transcribe(informed, sent.features, idx, pad, self.decoder()), idx)
        if "inpainting" in attacks and sent.withheld is not None:
            # the inpainter completes what was withheld; the completed features are then read
            # by the informed ASR and by the clean-trained one, and the better of the two counts
            painter = content.train_inpainter(d, train, steps=self.cfg.steps(c.inpaint_steps),
                                              cache=self.cache, seed=self.cfg.seed,
                                              progress=self.progress, stop=self.stop)
            filled_rows = content.inpaint(painter, d, sent, idx)
            filled = [filled_rows.get(i, f) for i, f in enumerate(sent.features)]
            readers = {"passive": self.passive_asr()}
            if informed is not None:
                readers["informed"] = informed
            tried = {k: content.scores(d, content.transcribe(asr, filled, idx, d.floor,
                                                             self.decoder()), idx)
                     for k, asr in readers.items()}
            best = min(tried, key=lambda k: tried[k]["wer"])
            found["inpainting"] = {**tried[best], "asr": best,
                                   "per_asr": {k: v["wer"] for k, v in tried.items()}}
            self.examples.setdefault(name, {})["inpainted"] = filled[idx[0]]
        for k, v in found.items():
            metrics[f"wer_{k}"] = v["wer"]
        enter = [v["entity_error_rate"] for v in found.values()
                 if v["entity_error_rate"] is not None]
        metrics["entity_error_rate"] = min(enter) if enter else None  # the strongest attacker
        details["content"] = found

    # speaker
    def speaker_attacks(self, name: str, sent: Sent, metrics: dict, details: dict) -> None:
        d, s = self.data, self.cfg.speaker
        trials = self.trials()
        pad = d.floor if sent.log_mel else 0.0
        clean = d.fs.features
        found: dict[str, dict] = {}
        if sent.log_mel:
            emb = self.clean_embedder()
            g_clean = speaker.gender_training(d, emb, clean, d.floor)
            found["ignorant"] = speaker.verify(d, trials, emb, clean, sent.features, d.floor, pad,
                                               g_clean)
            found["lazy_informed"] = speaker.verify(
                d, trials, emb, sent.features, sent.features, pad, pad,
                speaker.gender_training(d, emb, sent.features, pad))
        if self.system(name).sends_clean and "lazy_informed" in found:
            found["semi_informed"] = found["lazy_informed"]  # retraining on clean changes nothing
        else:
            train_name, train = self._training_data(name, sent)
            emb = speaker.train_embedder(
                d, train.features, cfg=s,
                steps=self.cfg.steps(s.informed_steps if sent.log_mel else s.transfer_steps),
                stride=sent.frame_stride, cache=self.cache, name=f"xvector-{train_name}",
                init=self.clean_embedder(), seed=self.cfg.seed,
                progress=self.progress, stop=self.stop)
            found["semi_informed"] = speaker.verify(
                d, trials, emb, sent.features, sent.features, pad, pad,
                speaker.gender_training(d, emb, sent.features, pad))
        for k, v in found.items():
            metrics[f"eer_{k}"] = v["eer"]
        # headline identification and gender: the strongest attacker
        metrics["speaker_id_acc"] = max(v["speaker_id_acc"] for v in found.values())
        genders = [v["gender_acc"] for v in found.values() if v["gender_acc"] is not None]
        metrics["gender_acc"] = max(genders) if genders else None
        details["speaker"] = found

    def _nothing_sent(self, name: str) -> dict:
        """Nothing leaves the device: the cloud model runs locally on clean features. An
        attacker that receives nothing outputs an empty transcript (WER 1, EntER 1) and a
        constant score (EER 0.5), guesses a speaker (chance) and the majority gender."""
        d = self.data
        metrics = dict.fromkeys(METRICS)
        metrics["intent_acc"] = self._accuracy(self.slu, d.fs.features, d.content_test)
        metrics["open_fraction"] = 0.0
        metrics["entity_words_sent"] = metrics["carrier_words_sent"] = 0.0
        content_run = [k for k in ("pocketsphinx", "passive", "informed") if k in self.cfg.attacks]
        for k in content_run:
            metrics[f"wer_{k}"] = 1.0
        has_entities = any(d.rows[i]["entities"] for i in d.content_test)
        metrics["entity_error_rate"] = 1.0 if has_entities and content_run else None
        if "speaker" in self.cfg.attacks:
            t = self.trials()
            for k in ("eer_ignorant", "eer_lazy_informed", "eer_semi_informed"):
                metrics[k] = 0.5
            metrics["speaker_id_acc"] = 1.0 / len(t.speakers)
            genders = [d.rows[i]["gender"] for i in t.utterances]
            metrics["gender_acc"] = max(genders.count(g) for g in set(genders)) / len(genders)
        self.details[name] = {"note": "nothing is sent; attack metrics are those of an attacker "
                                      "with no input"}
        return {"name": name, "metrics": metrics, "cost": self.cost(name)}

    def _example(self, name: str, sent: Sent) -> None:
        i = self.data.content_test[0]
        ex = self.examples.setdefault(name, {})
        ex["id"] = self.data.rows[i]["id"]
        ex["clean"] = self.data.fs.features[i]
        ex["sent"] = sent.features[i]
        ex["log_mel"] = sent.log_mel


def config_dict(cfg: SuiteConfig) -> dict:
    return asdict(cfg)

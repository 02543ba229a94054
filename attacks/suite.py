"""The attack suite: every protection through every attacker, one row of metrics and cost each."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechmask.device import mask_cost
from speechmask.models.cost import count_cost
from speechmask.models.gates import GateConfig
from speechmask.models.slu import SLUModel
from speechmask.parallel import default_jobs
from speechmask.train.adversaries import ctc_loss
from speechmask.train.data import pad_batch

from . import content, speaker, systems
from .content import ContentConfig
from .speaker import SpeakerConfig
from .systems import INT8, SYSTEMS, BaselineConfig
from .data import AttackError, Sent, SuiteData
from .fit import Cache, FitConfig, digest_arrays, fit
from .mcadams import mcadams_cost

METRICS = ("intent_acc", "wer_pocketsphinx", "wer_passive", "wer_informed", "wer_inpainting",
           "entity_error_rate", "eer_ignorant", "eer_lazy_informed", "eer_semi_informed",
           "speaker_id_acc", "gender_acc", "open_fraction")
ATTACKS = ("pocketsphinx", "passive", "informed", "inpainting", "speaker")


@dataclass(frozen=True)
class SuiteConfig:
    """Everything the suite's numbers depend on (stored in report.json)."""

    systems: tuple[str, ...] = SYSTEMS
    attacks: tuple[str, ...] = ATTACKS
    seed: int = 0
    max_steps: int | None = None  # bounds every training inside the suite (quick runs)
    slu_finetune_steps: int = 200  # cloud model fine-tuned on each protection's output
    pocketsphinx_utterances: int | None = None  # decode at most this many test utterances
    # "domain": PocketSphinx decodes with a bigram of the training transcripts (an attacker who
    # knows the application); "generic": with the wheel's general en-US language model
    pocketsphinx_lm: str = "domain"
    content: ContentConfig = field(default_factory=ContentConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)

    def steps(self, n: int) -> int:
        return n if self.max_steps is None else max(1, min(n, self.max_steps))


class Suite:
    """Runs the configured attacks on the configured systems. `mask` and `slu` are the trained
    mask generator and clean cloud model; `slu_masked` optionally the cloud model already
    fine-tuned on the mask's output (otherwise the suite fine-tunes one)."""

    def __init__(self, data: SuiteData, slu: SLUModel, mask, cfg: SuiteConfig, cache: Cache,
                 *, slu_masked: SLUModel | None = None, int8_model: bytes | None = None,
                 progress: bool = True):
        self.data, self.slu, self.mask, self.cfg, self.cache = data, slu, mask, cfg, cache
        self.int8_model = int8_model  # the exported mask.tflite (system speechmask_int8)
        self.slu_masked, self.progress = slu_masked, progress
        self.inner_jobs: int | None = None  # processes of PocketSphinx and McAdams (1 in workers)
        self.gate = mask.cfg.gate if mask is not None else GateConfig()
        self._asr = self._embedder = self._trials = self._lm = self._float_sent = None
        self.details: dict[str, dict] = {}
        self.lexicon = content.Lexicon([data.rows[i]["transcript"] for i in data.content_train])
        self.examples: dict[str, dict] = {}

    # shared attackers (trained once on clean speech)
    def passive_asr(self):
        if self._asr is None:
            c = self.cfg.content
            self._asr = content.train_asr(
                self.data, self.data.fs.features, stride=1, steps=self.cfg.steps(c.asr_steps),
                lr=c.asr_lr, cache=self.cache, name="asr-clean", seed=self.cfg.seed,
                progress=self.progress, width=(c.asr_channels, c.asr_hidden))
        return self._asr

    def clean_embedder(self):
        if self._embedder is None:
            s = self.cfg.speaker
            self._embedder = speaker.train_embedder(
                self.data, self.data.fs.features, cfg=s, steps=self.cfg.steps(s.steps), stride=1,
                cache=self.cache, name="xvector-clean", seed=self.cfg.seed, progress=self.progress)
        return self._embedder

    def trials(self) -> speaker.Trials:
        if self._trials is None:
            self._trials = speaker.Trials.build(self.data, self.cfg.speaker, self.cfg.seed)
        return self._trials

    def pocketsphinx_lm(self) -> Path | None:
        """The ARPA file PocketSphinx decodes with (None: the wheel's general model)."""
        if self.cfg.pocketsphinx_lm == "generic":
            return None
        if self.cfg.pocketsphinx_lm != "domain":
            raise AttackError(f"pocketsphinx_lm must be 'domain' or 'generic', got "
                              f"{self.cfg.pocketsphinx_lm!r}")
        if self._lm is None:
            from .pocketsphinx_asr import domain_lm

            texts = [self.data.rows[i]["transcript"] for i in self.data.content_train]
            cached = self.cache.path("pocketsphinx-domain", Cache.key("lm", texts))
            if cached is None:
                import tempfile

                self._tmp = tempfile.TemporaryDirectory(prefix="speechmask-lm-")
                path = Path(self._tmp.name) / "domain.arpa"
            else:
                path = cached.with_suffix(".arpa")
            self._lm = path if path.is_file() else domain_lm(texts, path)
        return self._lm

    def shared_tasks(self) -> list[str]:
        """What `shared` can build ahead of the systems, longest first."""
        c, systems_ = self.cfg.attacks, self.cfg.systems
        log_mel = [n for n in systems_ if n not in ("on_device", "ppslu")]
        tasks = []
        if any(a in c for a in ("passive", "informed", "inpainting")) and log_mel:
            tasks.append("asr")
        tasks += [n for n in ("ppslu", "vae") if n in systems_]
        if "speaker" in c and log_mel:
            tasks.append("xvector")
        if "mcadams" in systems_:
            tasks.append("mcadams")
        return tasks

    def shared(self, task: str) -> None:
        """Train (or load from the cache) one shared network, or compute McAdams features."""
        if task == "asr":
            self.passive_asr()
        elif task == "xvector":
            self.clean_embedder()
        else:
            self.build(task)

    def check(self) -> None:
        """Fail early on data the suite cannot use (before any training)."""
        if "speaker" in self.cfg.attacks:
            self.trials()

    # one system
    def run_system(self, name: str) -> dict:
        t0 = time.perf_counter()
        if name == "on_device":
            return self._on_device()
        sent = self.build(name)
        metrics = dict.fromkeys(METRICS)
        metrics["open_fraction"] = sent.open_fraction
        details: dict = {}
        metrics["intent_acc"], details["utility"] = self.utility(name, sent)
        self.content_attacks(name, sent, metrics, details)
        if "speaker" in self.cfg.attacks:
            self.speaker_attacks(name, sent, metrics, details)
        details["seconds"] = round(time.perf_counter() - t0, 1)
        self.details[name] = details
        self._example(name, sent)
        return {"name": name, "metrics": metrics, "cost": self.cost(name)}

    def build(self, name: str) -> Sent:
        d, b, seed = self.data, self.cfg.baselines, self.cfg.seed
        if name == "all_offload":
            return systems.all_offload(d)
        if name == "random":
            return systems.random_mask(d, self.gate, b.random_open, seed)
        if name == "mcadams":
            return systems.mcadams(d, seed, self.cache, self.progress, jobs=self.inner_jobs)
        if name == "vae":
            self._vae = systems.train_vae(d, b, FitConfig(self.cfg.steps(b.vae_steps), seed=seed),
                                          self.cache, self.progress)
            return systems.vae(d, self._vae)
        if name == "ppslu":
            self._ppslu, intents = systems.train_ppslu(
                d, b, FitConfig(self.cfg.steps(b.ppslu_steps), seed=seed), self.cache,
                self.progress)
            return systems.ppslu(d, self._ppslu, intents)
        if name == "speechmask":
            if self.mask is None:
                raise AttackError("the speechmask system needs --mask")
            return systems.speechmask_mask(d, self.mask)
        if name == INT8:
            if self.mask is None or self.int8_model is None:
                raise AttackError("the speechmask_int8 system needs --mask and --int8")
            return systems.speechmask_int8(d, self.mask, self.int8_model, self.progress)
        raise AttackError(f"unknown system {name!r} (choose from {SYSTEMS + (INT8,)})")

    def cost(self, name: str) -> dict:
        fe = self.data.frontend
        example = torch.zeros(1, int(fe.frames_per_second), fe.n_mels)
        if name in ("all_offload", "random"):
            return {"params": 0, "macs_per_second": 0, "weight_bytes": 0, "activation_bytes": 0}
        if name == "mcadams":
            return mcadams_cost()
        if name == "vae":
            return count_cost(self._vae.device_part(), example, 1.0)
        if name == "ppslu":
            return count_cost(self._ppslu.device_part(), example, 1.0)
        if name in ("speechmask", INT8):
            c = mask_cost(self.mask)
            return {k: c[k] for k in ("params", "macs_per_second", "weight_bytes",
                                      "activation_bytes")}
        return count_cost(self.slu, example, 1.0)  # on_device: the whole cloud model, local

    # utility
    def utility(self, name: str, sent: Sent) -> tuple[float, dict]:
        d = self.data
        idx = d.content_test
        truth = [d.rows[i]["intent"] for i in idx]
        if sent.intent is not None:
            acc = float(np.mean([p == t for p, t in zip(sent.intent(idx), truth)]))
            return acc, {"model": "own cloud head"}
        clean_acc = self._accuracy(self.slu, sent.features, idx)
        if name == "all_offload":
            return clean_acc, {"clean_model": clean_acc}
        if name in ("speechmask", INT8) and self.slu_masked is not None:
            tuned, how = self.slu_masked, "given --slu-masked"
        elif name == INT8:  # the cloud model the float mask's output trained, as deployed
            tuned = self._finetune_slu("speechmask", self._float_mask_sent())
            how = "fine-tuned by the suite on the float mask's output"
        else:
            tuned, how = self._finetune_slu(name, sent), "fine-tuned by the suite"
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
        cfg = FitConfig(self.cfg.steps(self.cfg.slu_finetune_steps), lr=5e-4, seed=self.cfg.seed)

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
        """What the informed attackers of system `name` train on: what it sends, except for
        speechmask_int8, read by the very attackers trained on the float mask's output, so that
        its row differs from speechmask's only by what the int8 gates change (trained afresh on
        the int8 output instead, they put its entity error rate 2 of 145 entities away)."""
        if name == INT8:
            return "speechmask", self._float_mask_sent()
        return name, sent

    def _float_mask_sent(self) -> Sent:
        """What the float mask sends, built once per process (the int8 row's attackers and cloud
        model are the float mask's)."""
        if self._float_sent is None:
            self._float_sent = self.build("speechmask")
        return self._float_sent

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
            found["passive"] = content.scores(
                d, content.transcribe(self.passive_asr(), sent.features, idx, pad, self.lexicon), idx)
        informed = None
        train_name, train = self._training_data(name, sent)
        if "informed" in attacks:
            if name == "all_offload" and "passive" in found:
                found["informed"] = found["passive"]  # its training data is the clean data
            else:
                informed = content.train_asr(
                    d, train.features, stride=sent.frame_stride,
                    steps=self.cfg.steps(c.informed_steps if sent.log_mel else c.transfer_steps),
                    lr=c.finetune_lr if sent.log_mel else c.asr_lr / 2, cache=self.cache,
                    name=f"asr-informed-{train_name}", init=self.passive_asr(),
                    seed=self.cfg.seed, progress=self.progress,
                    width=(c.asr_channels, c.asr_hidden))
                found["informed"] = content.scores(
                    d, content.transcribe(informed, sent.features, idx, pad, self.lexicon), idx)
        if "inpainting" in attacks and sent.withheld is not None:
            # the inpainter completes what was withheld; the completed features are then read
            # by the informed ASR and by the clean-trained one, and the better of the two counts
            painter = content.train_inpainter(d, train, steps=self.cfg.steps(c.inpaint_steps),
                                              cache=self.cache, seed=self.cfg.seed,
                                              progress=self.progress)
            filled_rows = content.inpaint(painter, d, sent, idx)
            filled = [filled_rows.get(i, f) for i, f in enumerate(sent.features)]
            readers = {"passive": self.passive_asr()}
            if informed is not None:
                readers["informed"] = informed
            tried = {k: content.scores(d, content.transcribe(asr, filled, idx, d.floor,
                                                             self.lexicon), idx)
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
        if name == "all_offload" and "lazy_informed" in found:
            found["semi_informed"] = found["lazy_informed"]  # retraining on clean changes nothing
        else:
            train_name, train = self._training_data(name, sent)
            emb = speaker.train_embedder(
                d, train.features, cfg=s,
                steps=self.cfg.steps(s.informed_steps if sent.log_mel else s.transfer_steps),
                stride=sent.frame_stride, cache=self.cache, name=f"xvector-{train_name}",
                init=self.clean_embedder(), seed=self.cfg.seed,
                progress=self.progress)
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

    def _on_device(self) -> dict:
        """Nothing leaves the device: the cloud model runs locally on clean features. An
        attacker that receives nothing outputs an empty transcript (WER 1, EntER 1) and a
        constant score (EER 0.5), guesses a speaker (chance) and the majority gender."""
        d = self.data
        metrics = dict.fromkeys(METRICS)
        metrics["intent_acc"] = self._accuracy(self.slu, d.fs.features, d.content_test)
        metrics["open_fraction"] = 0.0
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
        self.details["on_device"] = {"note": "nothing is sent; attack metrics are those of an "
                                             "attacker with no input"}
        return {"name": "on_device", "metrics": metrics, "cost": self.cost("on_device")}

    def _example(self, name: str, sent: Sent) -> None:
        i = self.data.content_test[0]
        ex = self.examples.setdefault(name, {})
        ex["id"] = self.data.rows[i]["id"]
        ex["clean"] = self.data.fs.features[i]
        ex["sent"] = sent.features[i]
        ex["log_mel"] = sent.log_mel


def config_dict(cfg: SuiteConfig) -> dict:
    return asdict(cfg)


def run_suite(suite: Suite, jobs: int | None = None) -> list[dict]:
    """Every configured system's row, in the configured order.

    With `jobs` > 1 (default: 2 where there are 2 cores and a cache folder) the work runs in
    `jobs` processes of one torch thread each: first what several systems share or what takes
    long to build (clean ASR, clean x-vector, the VAE and PPSLU encoders, McAdams features),
    then one system per task. Workers hand their trained networks over through the cache. Small
    networks use 2 threads poorly (a 2-layer BiGRU step is 1.6x faster on 2 threads than on 1),
    so two single-threaded trainings side by side finish about 1.25x sooner."""
    suite.check()
    names = list(suite.cfg.systems)
    if jobs is None:
        jobs = min(2, default_jobs()) if suite.cache.folder is not None else 1
    remote = [n for n in names if n != "on_device"]
    if jobs <= 1 or len(remote) <= 1 or suite.cache.folder is None:
        return [suite.run_system(name) for name in names]
    import multiprocessing as mp

    from tqdm.auto import tqdm

    global _SUITE
    _SUITE = suite
    ctx = mp.get_context("fork")
    rows: dict[str, dict] = {}
    try:
        with ctx.Pool(jobs, initializer=_worker_init) as pool:
            shared = suite.shared_tasks()
            for _ in tqdm(pool.imap_unordered(_shared_task, shared), total=len(shared),
                          desc="attack suite: shared attackers and encoders",
                          disable=not suite.progress, dynamic_ncols=True):
                pass
            order = sorted(remote, key=lambda n: -_EXPECTED_COST.get(n, 1))
            for name, row, details, examples in tqdm(
                    pool.imap_unordered(_system_task, order), total=len(order),
                    desc="attack suite: systems", disable=not suite.progress, dynamic_ncols=True):
                rows[name] = row
                suite.details[name] = details
                suite.examples[name] = examples
    finally:
        _SUITE = None
    if "on_device" in names:
        rows["on_device"] = suite.run_system("on_device")
    return [rows[name] for name in names]


# relative run time of each system's attacks (1 thread), to start the longest first
_EXPECTED_COST = {"ppslu": 5, "vae": 4, "random": 4, "mcadams": 3, "speechmask": 3,
                  INT8: 3, "all_offload": 1}
_SUITE: Suite | None = None


def _worker_init() -> None:
    torch.set_num_threads(1)
    _SUITE.progress = False
    _SUITE.inner_jobs = 1  # a pool worker may not start processes of its own


def _shared_task(task: str) -> None:
    _SUITE.shared(task)


def _system_task(name: str) -> tuple[str, dict, dict, dict]:
    row = _SUITE.run_system(name)
    return name, row, _SUITE.details.get(name, {}), _SUITE.examples.get(name, {})


def default_cache(out: Path) -> Cache:
    return Cache(out / "cache")

"""`speechmask train mask`: minimise expected L0 of the gates subject to
KL(p_cloud(x) || p_cloud(x * z)) <= gamma, with a Lagrange multiplier raised by gradient ascent
(DiffMask-style), plus optional speaker and ASR adversaries through gradient reversal."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..device import mask_cost, send
from ..masking import mask_batch
from ..models.gates import expand_gates, floor_value, mask_features, prob_open
from ..models.mask import MaskConfig, MaskGenerator
from ..models.slu import SLUModel
from .adversaries import CTCAdversary, SpeakerAdversary, ctc_loss, grad_reverse
from .config import MaskTrainConfig, ObjectiveConfig, TrainConfig
from .data import (FeatureSet, batch_indices, feature_stats, load_features, pad_batch,
                   steps_per_epoch)
from .dist import DistContext, init_distributed, pick_device
from .loop import autocast, run


# the feedback weights need a larger step than the audio path to move within the trainer's
# default length (CHANGELOG.md, mask generator)
FEEDBACK_LR_SCALE = 20.0


class MaskTask:
    kind = "mask"

    def __init__(self, fs: FeatureSet, slu: SLUModel, slu_path: str, mask_cfg: MaskConfig,
                 obj: ObjectiveConfig, cfg: TrainConfig, ctx: DistContext, device: torch.device):
        self.fs, self.obj, self.cfg, self.ctx, self.device = fs, obj, cfg, ctx, device
        self.train_idx = fs.select(cfg.split_field, "train")
        # the send steps' constants come from the training features, as the gates' normaliser's
        mask_cfg = send.calibrate(mask_cfg, [fs.features[i] for i in self.train_idx])
        self.mask_cfg, self.slu_path = mask_cfg, slu_path
        self.dev_idx = fs.select(cfg.split_field, "dev")
        self.slu = slu.to(device).eval()
        for p in self.slu.parameters():
            p.requires_grad_(False)
        model = MaskGenerator(mask_cfg)
        model.norm.fit(*feature_stats(fs, self.train_idx))
        self.base = model.to(device)
        self.model = torch.nn.parallel.DistributedDataParallel(model) if ctx.enabled else model
        fb = [p for n, p in model.named_parameters() if n.startswith("feedback")]
        rest = [p for n, p in model.named_parameters() if not n.startswith("feedback")]
        params = [{"params": rest}]
        if fb:  # a handful of weights in logit units, with a weak, indirect gradient
            params.append({"params": fb, "lr": cfg.lr * FEEDBACK_LR_SCALE})
        n_mels = fs.frontend.n_mels
        self.speakers = sorted({fs.rows[i]["speaker"] for i in self.train_idx})
        self.spk_adv = SpeakerAdversary(n_mels, len(self.speakers)).to(device) \
            if obj.speaker_adversary > 0 else None
        self.asr_adv = CTCAdversary(n_mels).to(device) if obj.asr_adversary > 0 else None
        for adv in (self.spk_adv, self.asr_adv):
            if adv is not None:
                adv.norm.fit(*feature_stats(fs, self.train_idx))
                params.append({"params": adv.parameters()})
        # beta2 0.99: forget rare large KL gradients (gates near 0) within ~100 steps, else they
        # keep Adam's steps tiny long after and the L0 pull stalls
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           betas=(0.9, 0.99))
        self.lam = obj.lambda_init
        self.floor = floor_value(fs.frontend)
        self.edges = mask_cfg.gate.band_edges(n_mels)

    # ------------------------------------------------------------------ training
    def step(self, step: int) -> dict[str, float]:
        cfg, obj, gate = self.cfg, self.obj, self.mask_cfg.gate
        glob = batch_indices(len(self.train_idx), cfg.batch_size, cfg.seed, step)
        rows = [self.train_idx[p] for p in glob]
        t_max = max(self.fs.features[i].shape[0] for i in rows)
        mine = self.ctx.shard(list(range(len(glob))))  # positions in the global batch
        x, lengths = pad_batch([self.fs.features[rows[k]] for k in mine], self.floor, t_max)
        x, lengths = x.to(self.device), lengths.to(self.device)
        seg_frames = self.mask_cfg.frames_per_segment
        s_max = t_max // seg_frames
        # gate noise drawn for the whole global batch from (seed, step): identical on every rank
        # and after a resume, so DDP and resumed runs match a single uninterrupted process
        g = torch.Generator().manual_seed(cfg.seed * 104_729 + step)
        noise = torch.rand((len(glob), s_max, gate.band_groups), generator=g)[mine].to(self.device)
        with torch.no_grad():
            p_clean = torch.softmax(self.slu(x, lengths).float(), dim=-1)
        self.model.train()
        with autocast(self.device, cfg.amp):
            log_alpha, z = self.model(x, noise)  # (B, S, G) each
        log_alpha, z = log_alpha.float(), z.float()
        keep = expand_gates(z, x.shape[1], seg_frames, self.edges)
        with autocast(self.device, cfg.amp), _cudnn_off(self.device):
            logp = torch.log_softmax(self.slu(x, lengths, keep=keep).float(), dim=-1)
        kl = (p_clean * (torch.log(p_clean.clamp_min(1e-12)) - logp)).sum(-1)  # (B,)
        seg_valid = (torch.arange(s_max, device=self.device)[None]
                     < (lengths // seg_frames)[:, None]).float()
        p_open = prob_open(log_alpha, gate)
        l0 = (p_open.mean(-1) * seg_valid).sum(1) / seg_valid.sum(1).clamp_min(1)
        per_utt = l0 + self.lam * (kl - obj.gamma)
        adv_logs = {}
        if obj.switch_cost > 0:
            switches = switch_rate(p_open, seg_valid)
            per_utt = per_utt + obj.switch_cost * switches
            adv_logs["switches"] = switches
        xm = mask_features(x, keep, self.floor) if self.spk_adv or self.asr_adv else None
        if self.spk_adv is not None:
            labels = torch.tensor([self.speakers.index(self.fs.rows[rows[k]]["speaker"])
                                   for k in mine], device=self.device)
            ce = F.cross_entropy(self.spk_adv(grad_reverse(xm, obj.speaker_adversary), lengths),
                                 labels, reduction="none")
            per_utt = per_utt + ce
            adv_logs["spk_ce"] = ce
        if self.asr_adv is not None:
            lp, out_len = self.asr_adv(grad_reverse(xm, obj.asr_adversary), lengths)
            ctc = ctc_loss(lp, out_len, [self.fs.rows[rows[k]]["transcript"] for k in mine])
            per_utt = per_utt + ctc
            adv_logs["ctc"] = ctc
        loss = per_utt.sum() * self.ctx.world / len(glob)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for grp in self.optimizer.param_groups
                                        for p in grp["params"]], 5.0)
        self.optimizer.step()
        sums = self.ctx.all_sum(torch.stack([kl.detach().sum(), l0.detach().sum()]).cpu())
        kl_mean, open_mean = (float(v) / len(glob) for v in sums)
        self.lam = min(obj.lambda_max, max(0.0, self.lam + obj.lambda_lr * (kl_mean - obj.gamma)))
        logs = {"kl": kl_mean, "open": open_mean, "lambda": self.lam}
        logs.update({k: float(self.ctx.all_sum(v.detach().sum().cpu())) / len(glob)
                     for k, v in adv_logs.items()})
        return logs

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, idx: list[int] | None = None, batch: int = 64) -> dict[str, float]:
        """Deterministic binary gates on dev: KL, open fraction, cloud accuracy clean/masked."""
        idx = self.dev_idx if idx is None else idx
        self.base.eval()
        label = {n: i for i, n in enumerate(self.slu.cfg.intents)}
        kl_sum = open_sum = seg_sum = acc_clean = acc_masked = n_lab = 0.0
        for s in range(0, len(idx), batch):
            rows = idx[s:s + batch]
            x, lengths = pad_batch([self.fs.features[i] for i in rows], self.floor)
            x, lengths = x.to(self.device), lengths.to(self.device)
            xm, gates, valid = mask_batch(self.base, x, lengths)
            lc, lm = self.slu(x, lengths).float(), self.slu(xm, lengths).float()
            pc = torch.softmax(lc, -1)
            kl_sum += float((pc * (torch.log(pc.clamp_min(1e-12)) - torch.log_softmax(lm, -1))).sum())
            open_sum += float((gates.mean(-1) * valid).sum())
            seg_sum += float(valid.sum())
            y = torch.tensor([label.get(self.fs.rows[i]["intent"], -1) for i in rows],
                             device=self.device)
            acc_clean += float(((lc.argmax(-1) == y) & (y >= 0)).sum())
            acc_masked += float(((lm.argmax(-1) == y) & (y >= 0)).sum())
            n_lab += float((y >= 0).sum())
        return {"dev_kl": kl_sum / len(idx), "dev_open": open_sum / max(1.0, seg_sum),
                "dev_acc_clean": acc_clean / max(1.0, n_lab),
                "dev_acc_masked": acc_masked / max(1.0, n_lab)}

    def payload(self) -> dict:
        return {"config": self.mask_cfg.to_dict(), "objective": self.obj.to_dict(),
                "slu": self.slu_path, "manifest": str(self.fs.manifest),
                "cost": mask_cost(self.base)}

    def state(self) -> dict:
        adv = {name: m.state_dict() for name, m in (("speaker", self.spk_adv), ("asr", self.asr_adv))
               if m is not None}
        return {"lambda": self.lam, "adversaries": adv}

    def load_state(self, state: dict) -> None:
        self.lam = float(state.get("lambda", 0.0))
        for name, m in (("speaker", self.spk_adv), ("asr", self.asr_adv)):
            if m is not None and name in state.get("adversaries", {}):
                m.load_state_dict(state["adversaries"][name])


def switch_rate(p: torch.Tensor, seg_valid: torch.Tensor) -> torch.Tensor:
    """`(B,)`: the expected share of each utterance's boundaries between valid segments where
    sending changes to withholding or back, for gates open with probabilities `p` `(B, S, G)`
    (averaged over band groups): p_t (1 - p_{t-1}) + p_{t-1} (1 - p_t), which is |z_t - z_{t-1}|
    for binary gates. A 40 ms comb pays 1 at every boundary, a mask that withholds whole words
    twice per word. On probabilities rather than samples: on the samples, the few gates a
    nearly open start closes by chance drew a pull back to open that outweighed the L0 cost,
    and every gate stayed open (CHANGELOG.md); on probabilities, gates above one half pull their
    neighbours up and gates below pull them down, and the L0 cost moves the whole."""
    pair_valid = seg_valid[:, 1:] * seg_valid[:, :-1]
    a, b = p[:, 1:], p[:, :-1]
    change = (a * (1 - b) + b * (1 - a)).mean(-1)
    return (change * pair_valid).sum(1) / pair_valid.sum(1).clamp_min(1)


def _cudnn_off(device: torch.device):
    """cuDNN cannot back-propagate through an RNN in eval mode; the frozen cloud model's GRU
    must stay in eval mode (no dropout), so cuDNN is switched off for that forward."""
    import contextlib

    return torch.backends.cudnn.flags(enabled=False) if device.type == "cuda" \
        else contextlib.nullcontext()


def train_mask(manifest: Path, slu_path: Path, out: Path, mask_cfg: MaskConfig | None = None,
               obj: ObjectiveConfig | None = None, cfg: TrainConfig | None = None, *,
               resume: bool = False, stop_after: int | None = None) -> dict:
    """Train a mask generator for the cloud model `slu_path`; every config defaults to what
    `speechmask train mask` uses."""
    from ..api import load_slu

    mask_cfg = MaskConfig() if mask_cfg is None else mask_cfg
    obj = ObjectiveConfig() if obj is None else obj
    cfg = MaskTrainConfig() if cfg is None else cfg
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    ctx = init_distributed(device)
    slu = load_slu(slu_path)
    if slu.cfg.frontend != mask_cfg.frontend:
        mask_cfg = MaskConfig.from_dict({**mask_cfg.to_dict(), "frontend": slu.cfg.frontend.to_dict()})
    fs = load_features(manifest, mask_cfg.frontend, progress=cfg.progress and ctx.is_main)
    per_epoch = steps_per_epoch(len(fs.select(cfg.split_field, "train")), cfg.batch_size)
    total = cfg.total_steps(per_epoch, MaskTrainConfig)
    task = MaskTask(fs, slu, str(slu_path), mask_cfg, obj, cfg, ctx, device)
    metrics = run(task, cfg, out, total, ctx, resume=resume, stop_after=stop_after)
    if ctx.is_main:
        warn_if_nearly_all_open(out, metrics)
    return metrics


def warn_if_nearly_all_open(out: Path, metrics: dict) -> bool:
    """One note when the trained mask sends nearly every dev segment (it hides almost nothing);
    True if it did."""
    if metrics.get("dev_open", 0.0) < NEARLY_ALL_OPEN:
        return False
    from ..outputs import note

    note(f"{out}: the mask sends {metrics['dev_open']:.0%} of the dev segments, so it hides "
         "almost nothing: the cloud model's KL budget (--gamma) is met only with nearly "
         "everything sent (its clean dev accuracy here: "
         f"{metrics.get('dev_acc_clean', float('nan')):.0%}); if the cloud model never heard "
         "this corpus, fine-tune it on it first, or raise --gamma")
    return True


#: a dev open fraction from which `train_mask` warns that the mask hides almost nothing (seen
#: when the cloud model did not know the corpus: the multiplier fell to 0, every gate saturated)
NEARLY_ALL_OPEN = 0.95

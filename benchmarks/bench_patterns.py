"""Which masking patterns a cloud model tolerates: KL and intent accuracy under fixed patterns.

At a given share of segments kept: `random` (each segment kept with that probability), `energy`
(the loudest segments of each utterance), `comb` (regular: keep 1 of 2, or 2 of 3), over several
segment lengths, plus any trained masks given with --mask. This is the evidence behind the mask
generator's defaults (40 ms segments, gate feedback): if a regular pattern at half the segments
costs far less than a random one, a mask must be able to see its own past decisions.
Prints one JSON line and a table. Needs a cloud model (e.g. from bench_mask.py):
  python benchmarks/bench_patterns.py --manifest M --slu build/bench_mask/slu.pt [--mask ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from speechmask.api import load_mask, load_slu  # noqa: E402
from speechmask.masking import mask_batch  # noqa: E402
from speechmask.models.gates import expand_gates, floor_value, mask_features  # noqa: E402
from speechmask.train.data import load_features, pad_batch  # noqa: E402


def pattern_gates(kind: str, keep: float, x: torch.Tensor, lengths: torch.Tensor, seg_frames: int,
                  seed: int = 0) -> torch.Tensor:
    """`(B, S)` bool gates of a fixed pattern keeping about `keep` of the segments."""
    b, s = x.shape[0], x.shape[1] // seg_frames
    valid = torch.arange(s)[None] < (lengths // seg_frames)[:, None]
    pos = torch.arange(s)[None].expand(b, s)
    if kind == "random":
        g = torch.rand(b, s, generator=torch.Generator().manual_seed(seed)) < keep
    elif kind == "comb":  # keep 1 of n or n-1 of n, n = round(1 / (1 - keep)) or round(1 / keep)
        g = (pos % round(1 / (1 - keep)) != 0) if keep >= 0.5 else (pos % round(1 / keep) == 0)
    elif kind == "energy":
        energy = torch.logsumexp(x, -1)[:, : s * seg_frames].reshape(b, s, seg_frames).mean(-1)
        rank = energy.masked_fill(~valid, -1e9).argsort(1, descending=True).argsort(1)
        g = rank < (valid.sum(1).float() * keep).round().long()[:, None]
    else:
        raise ValueError(kind)
    return g & valid


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--slu", type=Path, required=True)
    ap.add_argument("--mask", type=Path, nargs="*", default=[])
    ap.add_argument("--part", default="dev", choices=("train", "dev", "test"))
    ap.add_argument("--split-field", default="split", choices=("split", "speaker_split"))
    ap.add_argument("--segment-ms", type=int, nargs="+", default=[20, 40, 80, 160])
    ap.add_argument("--keep", type=float, nargs="+", default=[0.5, 0.67])
    args = ap.parse_args()
    slu = load_slu(args.slu)
    fs = load_features(args.manifest, slu.cfg.frontend, progress=False)
    idx = fs.select(args.split_field, args.part)
    floor = floor_value(slu.cfg.frontend)
    label = {n: i for i, n in enumerate(slu.cfg.intents)}
    x, lengths = pad_batch([fs.features[i] for i in idx], floor)
    y = torch.tensor([label.get(fs.rows[i]["intent"], -1) for i in idx])
    p_clean = torch.softmax(slu(x, lengths), -1)

    def score(xm: torch.Tensor) -> tuple[float, float]:
        logits = slu(xm, lengths)
        kl = (p_clean * (p_clean.clamp_min(1e-12).log() - logits.log_softmax(-1))).sum(-1)
        return float(kl.mean()), float((logits.argmax(-1) == y).float().mean())

    rows, table = [], []
    kl0, acc0 = score(x)
    table.append(("clean", f"KL {kl0:.3f}  accuracy {acc0:.3f}"))
    hop_ms = slu.cfg.frontend.hop_ms
    for seg in args.segment_ms:
        seg_frames = int(round(seg / hop_ms))
        for keep in args.keep:
            for kind in ("random", "energy", "comb"):
                g = pattern_gates(kind, keep, x, lengths, seg_frames)
                xm = mask_features(x, expand_gates(g[..., None].float(), x.shape[1], seg_frames,
                                                   [(0, x.shape[2])]), floor)
                kl, acc = score(xm)
                valid = torch.arange(g.shape[1])[None] < (lengths // seg_frames)[:, None]
                open_ = float(g.sum() / valid.sum())
                rows.append({"pattern": kind, "segment_ms": seg, "keep": keep,
                             "open_fraction": round(open_, 4), "kl": round(kl, 4),
                             "intent_acc": round(acc, 4)})
                table.append((f"{seg} ms {kind} keep {keep:g}",
                              f"open {open_:.3f}  KL {kl:.3f}  accuracy {acc:.3f}"))
    for path in args.mask:
        xm, gates, valid = mask_batch(load_mask(path), x, lengths)
        kl, acc = score(xm)
        open_ = float((gates.mean(-1) * valid).sum() / valid.sum())
        rows.append({"pattern": str(path), "open_fraction": round(open_, 4), "kl": round(kl, 4),
                     "intent_acc": round(acc, 4)})
        table.append((f"mask {path.name}", f"open {open_:.3f}  KL {kl:.3f}  accuracy {acc:.3f}"))
    record = {"manifest": str(args.manifest), "slu": str(args.slu), "part": args.part,
              "utterances": len(idx), "clean_acc": round(acc0, 4), "patterns": rows}
    report("bench_patterns", record, table)


if __name__ == "__main__":
    main()

"""`speechmask train {slu,finetune,mask}`: flags map one-to-one onto TrainConfig / MaskConfig /
GateConfig / ObjectiveConfig fields. Heavy imports happen inside the handlers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _common(p: argparse.ArgumentParser, lr: float, defaults: str) -> None:
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs ({defaults})")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--batch-size", type=int, default=32, help="global batch (all processes)")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=100, help="dev evaluation + checkpoint")
    p.add_argument("--split-field", choices=("split", "speaker_split"), default="split",
                   help="train/dev parts: utterance-level (default) or speaker-disjoint")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument("--force", action="store_true", help="start over, replacing --out")


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train the cloud SLU model and the mask generator")
    tsub = train.add_subparsers(dest="train_command", metavar="SUBCOMMAND", required=True)

    p = tsub.add_parser("slu", help="train the cloud intent classifier on clean features")
    _common(p, 2e-3, "default 60")
    p.add_argument("--level-norm", choices=("mean", "max"), default="mean",
                   help="per-band reference level over the utterance's live frames")
    p.set_defaults(handler=_slu)

    p = tsub.add_parser("finetune", help="fine-tune the cloud model on masked features")
    _common(p, 5e-4, "default 15")
    p.add_argument("--slu", type=Path, required=True, help="clean cloud model to start from")
    p.add_argument("--mask", type=Path, required=True, help="trained mask generator")
    p.set_defaults(handler=_finetune)

    p = tsub.add_parser("mask", help="train the mask generator (L0 under a KL constraint)")
    _common(p, 5e-3, "default: 300 steps")
    p.add_argument("--slu", type=Path, required=True, help="the cloud model whose output is kept")
    p.add_argument("--gamma", type=float, default=0.15, help="KL budget in nats (default 0.15)")
    p.add_argument("--arch", choices=("tiny", "small"), default="small")
    p.add_argument("--segment-ms", type=float, default=None, help="gate segment (default 40 ms)")
    p.add_argument("--band-groups", type=int, default=1, help="1 = whole-segment gates")
    p.add_argument("--temperature", type=float, default=2 / 3, help="hard-concrete beta")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=3, help="small: dilated conv blocks")
    p.add_argument("--kernel", type=int, default=5, help="small: depthwise kernel")
    p.add_argument("--context-segments", type=int, default=1, help="tiny: look-back segments")
    p.add_argument("--feedback", type=int, default=None,
                   help="previous gate decisions fed back into the gate (default 2; 0 = off)")
    p.add_argument("--lambda-init", type=float, default=1.0)
    p.add_argument("--lambda-lr", type=float, default=0.05)
    p.add_argument("--lambda-max", type=float, default=50.0)
    p.add_argument("--speaker-adversary", type=float, default=0.0,
                   help="weight of a speaker classifier's reversed gradient (0 = off)")
    p.add_argument("--asr-adversary", type=float, default=0.0,
                   help="weight of a CTC ASR's reversed gradient (0 = off)")
    p.set_defaults(handler=_mask)

    p = sub.add_parser("evaluate", help="intent accuracy on clean or masked input")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--slu", type=Path, required=True, help="cloud model")
    p.add_argument("--mask", type=Path, default=None, help="mask generator (default: clean)")
    p.add_argument("--split-field", choices=("split", "speaker_split"), default="split")
    p.add_argument("--part", choices=("train", "dev", "test"), default="test")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from ..audio import atomic_write_text
    from .evaluate import evaluate

    result = evaluate(args.manifest, args.slu, args.mask, split_field=args.split_field,
                      part=args.part)
    text = json.dumps(result)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    return 0


def _train_config(args: argparse.Namespace):
    from .loop import TrainConfig

    return TrainConfig(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                       lr=args.lr, weight_decay=args.weight_decay, seed=args.seed,
                       eval_every=args.eval_every, split_field=args.split_field,
                       device=args.device, amp=args.amp, progress=args.progress)


def _prepare(args: argparse.Namespace) -> None:
    from .checkpoint import check_output

    check_output(args.out, resume=args.resume, force=args.force)
    if args.force and args.out.exists():
        args.out.unlink()


def _report(args: argparse.Namespace, metrics: dict) -> int:
    print(f"wrote {args.out}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                             for k, v in metrics.items()}))
    return 0


def _slu(args: argparse.Namespace) -> int:
    from .slu import train_slu

    _prepare(args)
    return _report(args, train_slu(args.manifest, args.out, _train_config(args),
                                   resume=args.resume, level_norm=args.level_norm))


def _finetune(args: argparse.Namespace) -> int:
    from .slu import train_slu

    _prepare(args)
    return _report(args, train_slu(args.manifest, args.out, _train_config(args),
                                   resume=args.resume, init_slu=args.slu, mask_path=args.mask))


def _mask(args: argparse.Namespace) -> int:
    from ..models.gates import GateConfig
    from ..models.mask import MaskConfig
    from .mask import ObjectiveConfig, train_mask

    _prepare(args)
    gate = GateConfig(band_groups=args.band_groups, beta=args.temperature,
                      **({"segment_ms": args.segment_ms} if args.segment_ms else {}))
    mask_cfg = MaskConfig(arch=args.arch, hidden=args.hidden, layers=args.layers,
                          kernel=args.kernel, context_segments=args.context_segments,
                          gate=gate, **({} if args.feedback is None else {"feedback": args.feedback}))
    obj = ObjectiveConfig(gamma=args.gamma, lambda_init=args.lambda_init,
                          lambda_lr=args.lambda_lr, lambda_max=args.lambda_max,
                          speaker_adversary=args.speaker_adversary,
                          asr_adversary=args.asr_adversary)
    return _report(args, train_mask(args.manifest, args.slu, args.out, mask_cfg, obj,
                                    _train_config(args), resume=args.resume))

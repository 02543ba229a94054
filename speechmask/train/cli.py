"""`speechmask train {slu,finetune,mask}` and `speechmask evaluate`: flags map one-to-one onto
the fields of `SLUTrainConfig` / `FinetuneConfig` / `MaskTrainConfig`, `MaskConfig`,
`GateConfig`, `SendConfig`, `ObjectiveConfig` and take their defaults and help from them (`options`).

Every handler validates all of its arguments, inputs and outputs before it trains or writes
anything; `--force` never deletes the old checkpoint: the first new checkpoint replaces it
atomically, so a refused or interrupted run leaves it as it was. Heavy imports happen inside the
handlers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..options import add_options, from_args

TRAIN_FIELDS = ["epochs", "max_steps", "batch_size", "lr", "weight_decay", "seed", "eval_every",
                "split_field", "device", "amp", "progress"]
MASK_FIELDS = ["arch", "hidden", "layers", "kernel", "context_segments", "feedback"]
GATE_FIELDS = ["segment_ms", "band_groups", "beta"]
SEND_FIELDS = ["norm_frames", "norm_scale", "warp_max", "level"]


def _common(p: argparse.ArgumentParser, config: type) -> None:
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    add_options(p, config, TRAIN_FIELDS)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument("--force", action="store_true",
                   help="start over, replacing --out when the first new checkpoint is written")


def register(sub: argparse._SubParsersAction) -> None:
    from ..models.config import GateConfig, MaskConfig, SendConfig, SLUConfig
    from .config import FinetuneConfig, MaskTrainConfig, ObjectiveConfig, SLUTrainConfig

    train = sub.add_parser("train", help="train the cloud SLU model and the mask generator")
    tsub = train.add_subparsers(dest="train_command", metavar="SUBCOMMAND", required=True)

    p = tsub.add_parser("slu", help="train the cloud intent classifier on clean features")
    _common(p, SLUTrainConfig)
    add_options(p, SLUConfig, ["level_norm"])
    p.set_defaults(handler=_slu, parser=p, trainer=SLUTrainConfig)

    p = tsub.add_parser("finetune", help="fine-tune the cloud model on masked features")
    _common(p, FinetuneConfig)
    p.add_argument("--slu", type=Path, required=True, help="clean cloud model to start from")
    p.add_argument("--mask", type=Path, required=True, help="trained mask generator")
    p.set_defaults(handler=_finetune, parser=p, trainer=FinetuneConfig)

    p = tsub.add_parser("mask", help="train the mask generator (L0 under a KL constraint)")
    _common(p, MaskTrainConfig)
    p.add_argument("--slu", type=Path, required=True, help="the cloud model whose output is kept")
    add_options(p, ObjectiveConfig)
    add_options(p, MaskConfig, MASK_FIELDS)
    add_options(p, GateConfig, GATE_FIELDS)
    add_options(p, SendConfig, SEND_FIELDS)
    p.set_defaults(handler=_mask, parser=p, trainer=MaskTrainConfig)

    p = sub.add_parser("evaluate", help="intent accuracy on clean or masked input")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--slu", type=Path, required=True, help="cloud model")
    p.add_argument("--mask", type=Path, default=None, help="mask generator (default: clean)")
    add_options(p, SLUTrainConfig, ["split_field"])
    p.add_argument("--part", choices=("train", "dev", "test"), default="test")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from ..audio import atomic_write_text
    from ..outputs import check_input_file, check_new_file
    from .evaluate import evaluate

    for path, what in ((args.manifest, "manifest"), (args.slu, "checkpoint"),
                       (args.mask, "checkpoint")):
        if path is not None:
            check_input_file(path, what)
    check_new_file(args.json, args.force)
    result = evaluate(args.manifest, args.slu, args.mask, split_field=args.split_field,
                      part=args.part)
    if result["unknown_intent_utterances"]:
        from ..outputs import note

        names = ", ".join(result["unknown_intents"][:5])
        more = "" if len(result["unknown_intents"]) <= 5 else ", ..."
        note(f"{args.manifest}: {result['unknown_intent_utterances']} of {result['utterances']} "
             f"{args.part} utterances have intents {args.slu} never saw ({names}{more}); they "
             "count as errors")
    text = json.dumps(result)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    return 0


def _prepare(args: argparse.Namespace, checkpoints: tuple[Path, ...] = ()):
    """Everything checked before training starts: the configs (built and validated), the
    manifest and checkpoints readable and of the right kind, --out writable and not a finished
    run unless --resume or --force. Nothing is deleted."""
    from ..outputs import check_input_file, check_writable_folder
    from .checkpoint import check_output, load_checkpoint

    cfg = from_args(args.trainer, args, args.parser)
    check_input_file(args.manifest, "manifest")
    for path, kind in checkpoints:
        load_checkpoint(path, kind=kind)  # missing, corrupt, other kind or version: one line
    check_output(args.out, resume=args.resume, force=args.force)
    if args.out.is_dir():
        from ..outputs import OutputError

        raise OutputError(f"{args.out}: is a folder, expected a checkpoint file name")
    check_writable_folder(args.out.parent)
    return cfg


def _report(args: argparse.Namespace, metrics: dict) -> int:
    print(f"wrote {args.out}: " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                             for k, v in metrics.items()}))
    return 0


def _slu(args: argparse.Namespace) -> int:
    from .slu import train_slu

    cfg = _prepare(args)
    return _report(args, train_slu(args.manifest, args.out, cfg, resume=args.resume,
                                   level_norm=args.level_norm))


def _finetune(args: argparse.Namespace) -> int:
    from .slu import train_slu

    cfg = _prepare(args, ((args.slu, "slu"), (args.mask, "mask")))
    return _report(args, train_slu(args.manifest, args.out, cfg, resume=args.resume,
                                   init_slu=args.slu, mask_path=args.mask))


def _mask(args: argparse.Namespace) -> int:
    from ..models.config import GateConfig, MaskConfig, SendConfig
    from .config import ObjectiveConfig
    from .mask import train_mask

    gate = from_args(GateConfig, args, args.parser)
    send = from_args(SendConfig, args, args.parser)
    mask_cfg = from_args(MaskConfig, args, args.parser, gate=gate, send=send)
    obj = from_args(ObjectiveConfig, args, args.parser)
    cfg = _prepare(args, ((args.slu, "slu"),))
    return _report(args, train_mask(args.manifest, args.slu, args.out, mask_cfg, obj, cfg,
                                    resume=args.resume))

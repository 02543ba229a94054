"""`speechmask attack` and `speechmask attack sweep`: registered as a plugin of the `speechmask`
command (entry point group `speechmask.commands`), so the core never imports this package."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

BASELINES = ("all_offload", "random", "mcadams", "vae", "ppslu", "on_device")
ATTACK_NAMES = ("pocketsphinx", "passive", "informed", "inpainting", "speaker")


def _common(p: argparse.ArgumentParser, required: bool = True) -> None:
    # `attack` itself checks these in its handler: argparse would otherwise demand them before
    # the `sweep` subcommand too
    p.add_argument("--manifest", type=Path, required=required, help="(required)")
    p.add_argument("--slu", type=Path, required=required, help="clean cloud model (required)")
    p.add_argument("--out", type=Path, required=required,
                   help="folder for the report and plots (required)")
    p.add_argument("--attacks", nargs="+", choices=ATTACK_NAMES, default=list(ATTACK_NAMES),
                   help="attackers to run (default: all)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="bound every training inside the suite (quick runs)")
    p.add_argument("--split-field", choices=("split", "speaker_split"), default=None,
                   help="content attackers' and utility's train/test parts (default: the one the "
                        "cloud model was trained on)")
    p.add_argument("--pocketsphinx-max", type=int, default=None,
                   help="decode at most this many test utterances with PocketSphinx")
    p.add_argument("--pocketsphinx-lm", choices=("domain", "generic"), default="domain",
                   help="PocketSphinx's language model: a bigram of the training transcripts "
                        "(default; an attacker who knows the application) or the wheel's "
                        "general en-US model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing report")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attack", help="score what leaks (content, speaker) and what works (intent)",
                       description="Run the attack suite: every system (the mask and the "
                                   "baselines) through every attacker; writes report.json, "
                                   "report.md, det.png, examples.png.")
    _common(p, required=False)
    p.add_argument("--mask", type=Path, default=None, help="trained mask generator")
    p.add_argument("--int8", type=Path, default=None, metavar="MASK_TFLITE",
                   help="also attack the int8 model `speechmask export` wrote from --mask "
                        "(system speechmask_int8: its own gates, on the TFLite runtime)")
    p.add_argument("--slu-masked", type=Path, default=None,
                   help="cloud model fine-tuned on the mask's output (default: the suite "
                        "fine-tunes one)")
    p.add_argument("--baselines", nargs="+", default=list(BASELINES),
                   choices=list(BASELINES) + ["none"], help="baseline systems (default: all)")
    p.set_defaults(handler=_attack, attack_parser=p)
    sp = p.add_subparsers(dest="attack_command", metavar="sweep")
    s = sp.add_parser("sweep", help="privacy-utility curve: train a mask per gamma, attack each")
    _common(s)
    s.add_argument("--gammas", nargs="+", type=float, required=True, help="KL budgets (nats)")
    s.add_argument("--mask-steps", type=int, default=None,
                   help="mask training steps per gamma (default: the trainer's)")
    s.set_defaults(handler=_sweep)


def _split_field(args, slu_path: Path) -> str:
    from speechmask.train.checkpoint import load_checkpoint

    if args.split_field:
        return args.split_field
    return load_checkpoint(slu_path, kind="slu").get("train_config", {}).get("split_field",
                                                                              "split")


def _int8_model(path: Path, mask) -> bytes:
    """The exported mask.tflite, checked against the mask it should come from: the device
    contract's version and the export id in its metadata, then its inputs and outputs."""
    from speechmask.device import ContractError, check_stamp, stamp
    from speechmask.errors import SpeechmaskError

    if not path.is_file():
        raise SpeechmaskError(f"{path}: no such file (write it with `speechmask export`)")
    model = path.read_bytes()
    try:
        from speechmask.device.int8 import LiteRT, read_tflite_stamp

        check_stamp(read_tflite_stamp(model), stamp(mask), str(path))
        LiteRT(model, mask.cfg)
    except ImportError as exc:
        raise SpeechmaskError(f"--int8 needs the [export] extra ({exc})") from None
    except ValueError as exc:  # the interpreter's own words on a file that is not a model
        raise SpeechmaskError(f"{path}: not a TFLite model ({exc})") from None
    except ContractError as exc:
        text = str(exc)
        raise SpeechmaskError(text if text.startswith(str(path)) else f"{path}: {text}") from None
    return model


def _suite(args, mask, systems_: tuple[str, ...], slu_masked=None, int8=None):
    from speechmask.api import load_slu
    from speechmask.errors import ConfigError

    from .data import SuiteData
    from .suite import Suite, SuiteConfig, default_cache

    slu = load_slu(args.slu)
    if mask is not None and mask.cfg.frontend != slu.cfg.frontend:
        raise ConfigError(f"{args.mask}: the mask's front-end ({mask.cfg.frontend.sample_rate} "
                          f"Hz, {mask.cfg.frontend.n_mels} mels) differs from the cloud model's "
                          f"({slu.cfg.frontend.sample_rate} Hz, {slu.cfg.frontend.n_mels} mels)")
    data = SuiteData.load(args.manifest, slu.cfg.frontend, _split_field(args, args.slu),
                          progress=args.progress)
    cfg = SuiteConfig(systems=systems_, attacks=tuple(args.attacks), seed=args.seed,
                      max_steps=args.max_steps, pocketsphinx_utterances=args.pocketsphinx_max,
                      pocketsphinx_lm=args.pocketsphinx_lm)
    return Suite(data, slu, mask, cfg, default_cache(args.out), slu_masked=slu_masked,
                 int8_model=int8, progress=args.progress), data


def _check_out(out: Path, name: str, force: bool) -> None:
    from speechmask.errors import SpeechmaskError

    if (out / name).exists() and not force:
        raise SpeechmaskError(f"{out / name}: already exists (use --force to replace it; "
                              "trained attackers in its cache/ are reused)")


def _attack(args: argparse.Namespace) -> int:
    from speechmask.api import load_mask, load_slu
    from speechmask.errors import ConfigError

    from .report import markdown, plot_det, plot_examples, versions, write_report
    from .suite import config_dict, run_suite

    missing = [f"--{k}" for k in ("manifest", "slu", "out") if getattr(args, k) is None]
    if missing:
        args.attack_parser.error(f"the following arguments are required: {', '.join(missing)}")
    _check_out(args.out, "report.json", args.force)
    baselines = [] if "none" in args.baselines else args.baselines
    systems_ = [b for b in BASELINES if b in baselines and b != "on_device"]
    if args.mask is not None:
        systems_.append("speechmask")
        if args.int8 is not None:
            systems_.append("speechmask_int8")
    elif args.slu_masked is not None or args.int8 is not None:
        raise ConfigError("--slu-masked and --int8 need --mask")
    if "on_device" in baselines:
        systems_.append("on_device")
    if not systems_:
        raise ConfigError("nothing to attack: give --mask and/or --baselines")
    mask = load_mask(args.mask) if args.mask else None
    slu_masked = load_slu(args.slu_masked) if args.slu_masked else None
    int8 = _int8_model(args.int8, mask) if args.int8 else None
    t0 = time.perf_counter()
    suite, data = _suite(args, mask, tuple(systems_), slu_masked, int8)
    rows = run_suite(suite)
    t = suite.trials() if "speaker" in args.attacks else None
    first = next((d["speaker"] for d in suite.details.values() if "speaker" in d), None)
    any_res = next(iter(first.values())) if first else {}
    report = {
        "manifest": str(args.manifest), "slu": str(args.slu), "mask": str(args.mask),
        "slu_masked": str(args.slu_masked) if args.slu_masked else None,
        "int8_model": str(args.int8) if args.int8 else None,
        "split_field": data.split_field, "content_test_utterances": len(data.content_test),
        "trials": {"speakers": len(t.speakers) if t else 0,
                   "target": any_res.get("target_trials", 0),
                   "nontarget": any_res.get("nontarget_trials", 0)},
        "systems": rows, "details": suite.details, "config": config_dict(suite.cfg),
        "mask_config": mask.cfg.to_dict() if mask is not None else None,
        "versions": versions(), "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(args.out, report)
    if t is not None:
        plot_det(suite.details, args.out / "det.png")
    plot_examples(suite.examples, data.floor, args.out / "examples.png")
    print(markdown(report))
    print(f"wrote {args.out}/report.json, report.md, det.png, examples.png "
          f"({report['seconds']:.0f} s)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from speechmask.api import load_mask
    from speechmask.audio import atomic_write_text
    from speechmask.models.mask import MaskConfig
    from speechmask.train.loop import TrainConfig
    from speechmask.train.mask import ObjectiveConfig, train_mask

    from .report import plot_sweep
    from .suite import run_suite

    _check_out(args.out, "sweep.json", args.force)
    points = []
    for gamma in args.gammas:
        path = args.out / f"mask_gamma{gamma:g}.pt"
        train_mask(args.manifest, args.slu, path, MaskConfig(), ObjectiveConfig(gamma=gamma),
                   TrainConfig(lr=5e-3, max_steps=args.mask_steps or args.max_steps,
                               split_field=_split_field(args, args.slu),
                               progress=args.progress, eval_every=10 ** 9),
                   resume=path.exists())
        args.mask = path
        suite, _ = _suite(args, load_mask(path), ("speechmask",))
        row = run_suite(suite)[0]
        points.append({"gamma": gamma, "mask": str(path), **row})
        print(f"gamma {gamma:g}: " + json.dumps({k: None if v is None else round(v, 3)
                                                 for k, v in row["metrics"].items()}))
    atomic_write_text(args.out / "sweep.json", json.dumps({"points": points}, indent=1) + "\n")
    plot_sweep(points, args.out / "sweep.png")
    print(f"wrote {args.out}/sweep.json, sweep.png")
    return 0

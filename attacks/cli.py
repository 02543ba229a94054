"""`speechmask attack` and `speechmask attack sweep`: registered as a plugin of the `speechmask`
command (entry point group `speechmask.commands`), so the core never imports this package.

Their flags take defaults and help from `SuiteConfig`'s fields, `--baselines` its choices from
the registry of protections (`attacks.systems`). Each handler checks its flags, inputs and output
folder before any work, then writes its files as one set (`speechmask.outputs.OutputFolder`): an
interrupted run leaves the old set or the new one, never a mix. Trained attackers stay in the
folder's `cache/`, and the sweep's masks beside it, for the next run to reuse."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from speechmask.options import add_options, field_default, flagged, from_args
from speechmask.train.config import SPLIT_FIELDS, ObjectiveConfig

from . import systems
from .config import SuiteConfig
from .sweep import KNOBS

if TYPE_CHECKING:
    from speechmask.models.config import MaskConfig
    from speechmask.models.mask import MaskGenerator
    from speechmask.models.slu import SLUModel
    from speechmask.outputs import OutputFolder
    from speechmask.train.config import MaskTrainConfig

    from .data import SuiteData

REPORT_FILES = ["report.json", "report.md", "det.png", "examples.png"]
SWEEP_FILES = ["sweep.json", "sweep.png"]
CACHE = "cache"  # trained attackers, reused by the next run
SWEEP_MASKS = "mask_gamma*.pt"  # the sweep's masks, resumed by the next run
NO_DEV_EVAL = 10 ** 9  # the sweep's masks are scored by the suite, not by dev evaluations


def _common(p: argparse.ArgumentParser, required: bool = True) -> None:
    # `attack` itself checks these in its handler: argparse would otherwise demand them before
    # the `sweep` subcommand too
    p.add_argument("--manifest", type=Path, required=required, help="(required)")
    p.add_argument("--slu", type=Path, required=required, help="clean cloud model (required)")
    p.add_argument("--out", type=Path, required=required,
                   help="output folder; its cache/ keeps trained attackers for the next run "
                        "(required)")
    add_options(p, SuiteConfig)  # every field declared with option()
    p.add_argument("--split-field", choices=SPLIT_FIELDS, default=None,
                   help="content attackers' and utility's train/test parts (default: the one the "
                        "cloud model was trained on)")
    p.add_argument("--force", action="store_true",
                   help="replace the folder's earlier outputs (what it keeps for reuse stays)")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    baselines = systems.baselines()
    listed = "; ".join(f"{n}: {systems.get(n).summary}" for n in baselines).replace("%", "%%")
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
    p.add_argument("--baselines", nargs="+", default=list(baselines),
                   choices=list(baselines) + ["none"],
                   help=f"baseline systems (default: all; none: only the mask): {listed}")
    p.set_defaults(handler=_attack, parser=p)
    sp = p.add_subparsers(dest="attack_command", metavar="sweep")
    s = sp.add_parser("sweep", help="privacy-utility frontier: a mask per gamma, each send "
                                    "setting of it, every baseline")
    _common(s)
    for flag, config, name, kind, text in KNOBS:
        s.add_argument(flag, nargs="+", type=kind, default=[field_default(config, name)],
                       help=text)
    s.add_argument("--baselines", nargs="+", default=list(baselines),
                   choices=list(baselines) + ["none"],
                   help="baselines drawn beside the sweep (default: all; none: no baselines)")
    s.add_argument("--mask-steps", type=int, default=None,
                   help="mask training steps per gamma (default: --max-steps, else the mask "
                        "trainer's)")
    s.set_defaults(handler=_sweep, parser=s)


def _int8_model(path: Path, mask: MaskGenerator) -> bytes:
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


def _check_inputs(args: argparse.Namespace, *, mask: Path | None = None,
                  slu_masked: Path | None = None, int8: Path | None = None
                  ) -> tuple[SLUModel, MaskGenerator | None, SLUModel | None, bytes | None, str]:
    """Every input read and checked before any work: the manifest readable, each checkpoint of
    its kind and of the cloud model's front-end, the int8 model stamped for the mask. Returns
    the models and the split field."""
    from speechmask.api import load_mask, load_slu
    from speechmask.errors import ConfigError
    from speechmask.outputs import check_input_file

    from .data import trained_split_field

    check_input_file(args.manifest, "manifest")
    slu = load_slu(args.slu)
    split_field = args.split_field or trained_split_field(args.slu)
    mask_model = load_mask(mask) if mask else None
    masked_slu = load_slu(slu_masked) if slu_masked else None
    for path, model in ((mask, mask_model), (slu_masked, masked_slu)):
        if model is not None and model.cfg.frontend != slu.cfg.frontend:
            fe, theirs = slu.cfg.frontend, model.cfg.frontend
            raise ConfigError(f"{path}: its front-end ({theirs.sample_rate} Hz, "
                              f"{theirs.n_mels} mels) differs from the cloud model's "
                              f"({fe.sample_rate} Hz, {fe.n_mels} mels)")
    int8_model = _int8_model(int8, mask_model) if int8 else None
    return slu, mask_model, masked_slu, int8_model, split_field


def _output(args: argparse.Namespace, owned: list[str], keep: list[str]) -> OutputFolder:
    from speechmask.outputs import OutputFolder

    out = OutputFolder(args.out, args.force, owned=owned, keep=keep)
    out.check()
    return out


def _load_data(args: argparse.Namespace, slu: SLUModel, split_field: str) -> SuiteData:
    from .data import SuiteData

    return SuiteData.load(args.manifest, slu.cfg.frontend, split_field, progress=args.progress)


def _attack(args: argparse.Namespace) -> int:
    from speechmask.errors import ConfigError

    from .fit import Cache
    from .report import markdown, plot_det, plot_examples, versions, write_report
    from .runner import run_suite
    from .suite import Suite, config_dict

    missing = [f"--{k}" for k in ("manifest", "slu", "out") if getattr(args, k) is None]
    if missing:
        args.parser.error(f"the following arguments are required: {', '.join(missing)}")
    if args.mask is None and (args.slu_masked is not None or args.int8 is not None):
        raise ConfigError("--slu-masked and --int8 need --mask")
    given = [k for k, flag in systems.INPUTS.items()
             if getattr(args, flag.lstrip("-").replace("-", "_")) is not None]
    names = systems.choose([] if "none" in args.baselines else args.baselines, given)
    if not names:
        raise ConfigError("nothing to attack: give --mask and/or --baselines")
    cfg = from_args(SuiteConfig, args, args.parser, systems=names)
    slu, mask, slu_masked, int8, split_field = _check_inputs(
        args, mask=args.mask, slu_masked=args.slu_masked, int8=args.int8)
    out = _output(args, REPORT_FILES, [CACHE])

    t0 = time.perf_counter()
    data = _load_data(args, slu, split_field)
    suite = Suite(data, slu, mask, cfg, Cache(args.out / CACHE), slu_masked=slu_masked,
                  int8_model=int8, progress=args.progress)
    rows = run_suite(suite)
    unprotected = unprotected_metrics(suite, rows)
    t = suite.trials() if "speaker" in cfg.attacks else None
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
        "strength": cfg.strength, "unprotected": unprotected,
        "systems": rows, "details": suite.details, "config": config_dict(suite.cfg),
        "mask_config": mask.cfg.to_dict() if mask is not None else None,
        "versions": versions(), "seed": cfg.seed,
        "seconds": round(time.perf_counter() - t0, 1)}
    with out.staged() as staging:
        write_report(staging, report)
        if t is not None:
            plot_det(suite.details, staging / "det.png")
        plot_examples(suite.examples, data.floor, staging / "examples.png")
        written = [n for n in REPORT_FILES if (staging / n).exists()]
    print(markdown(report))
    print(f"wrote {args.out}/{', '.join(written)} ({report['seconds']:.0f} s)")
    return 0


def unprotected_metrics(suite, rows: list[dict]) -> dict:
    """Every attacker's score on unprotected speech (its strength), stated beside the figures:
    the all_offload row, run on its own when the comparison left it out."""
    row = next((r for r in rows if r["name"] == "all_offload"), None)
    if row is None:
        row = suite.run_system("all_offload")
        suite.details.pop("all_offload", None)
        suite.examples.pop("all_offload", None)
    return row["metrics"]


def _sweep(args: argparse.Namespace) -> int:
    from speechmask.api import load_mask
    from speechmask.audio import atomic_write_text
    from speechmask.errors import ConfigError
    from speechmask.models.config import MaskConfig
    from speechmask.train.config import MaskTrainConfig
    from speechmask.train.mask import train_mask

    from . import sweep
    from .fit import Cache
    from .runner import run_suite
    from .suite import Suite

    cfg = from_args(SuiteConfig, args, args.parser, systems=("speechmask",))
    steps = args.mask_steps if args.mask_steps is not None else args.max_steps
    try:
        for flag, config, name, _, _ in KNOBS:
            for value in getattr(args, flag[2:].replace("-", "_")):
                config(**{name: value})
        train_cfg = MaskTrainConfig(max_steps=steps, progress=args.progress,
                                    eval_every=NO_DEV_EVAL)
    except ConfigError as exc:
        raise flagged(exc, {"max_steps": "--mask-steps"} | {
            name: flag for flag, _, name, _, _ in KNOBS}) from None
    chosen = [] if "none" in args.baselines else args.baselines
    base_cfg = replace(cfg, systems=systems.choose(chosen, [])) if chosen else None
    slu, _, _, _, split_field = _check_inputs(args)
    train_cfg = replace(train_cfg, split_field=split_field)
    out = _output(args, SWEEP_FILES, [CACHE, SWEEP_MASKS])
    masks = sweep.settings(args.gammas, args.switch_costs, [0], [0.0])  # one per trained mask
    mask_cfg = MaskConfig()  # what each mask is trained as; its send steps are set per point
    _check_resumable([args.out / m.mask_name for m in masks], train_cfg, mask_cfg)

    data = _load_data(args, slu, split_field)
    train = [data.fs.features[i] for i in data.content_train]
    cache = Cache(args.out / CACHE)
    points = []
    for m in masks:
        path = args.out / m.mask_name
        obj = ObjectiveConfig(gamma=m.gamma, switch_cost=m.switch_cost)
        train_mask(args.manifest, args.slu, path, mask_cfg, obj, train_cfg,
                   resume=path.exists())
        for setting in sweep.settings([m.gamma], [m.switch_cost], args.norm_frames, args.warps):
            mask = sweep.with_send(load_mask(path), setting, train)
            row = run_suite(Suite(data, slu, mask, cfg, cache, progress=args.progress))[0]
            points.append({"gamma": m.gamma, "switch_cost": m.switch_cost,
                           "norm_frames": setting.norm_frames, "warp_max": setting.warp_max,
                           "label": setting.label, "mask_label": setting.mask_label,
                           "default": setting.is_default(), "mask": str(path), **row})
            print(f"{setting.label}: " + json.dumps({k: None if v is None else round(v, 3)
                                                     for k, v in row["metrics"].items()}))
    baseline_rows = run_suite(Suite(data, slu, None, base_cfg, cache,
                                    progress=args.progress)) if base_cfg else []
    with out.staged() as staging:
        atomic_write_text(staging / "sweep.json", json.dumps(
            {"points": points, "baselines": baseline_rows}, indent=1) + "\n")
        sweep.plot_frontier(points, baseline_rows, staging / "sweep.png")
    print(f"wrote {args.out}/sweep.json, sweep.png")
    return 0


def _check_resumable(paths: list[Path], cfg: MaskTrainConfig, mask_cfg: MaskConfig) -> None:
    """The sweep resumes the masks an earlier run left: each must be a mask checkpoint trained
    with these settings (those `train` lets a resumed run change aside) and the model
    configuration the sweep trains (`mask_cfg`; the send steps' calibrated targets aside).
    Checked before any data is read; `--force` keeps the masks, so the message says what to do."""
    from speechmask.errors import SpeechmaskError
    from speechmask.train.checkpoint import load_checkpoint
    from speechmask.train.loop import RESUMABLE_CHANGES

    def uncalibrated(config: dict) -> dict:
        send = {k: v for k, v in config.get("send", {}).items() if not k.endswith("_target")}
        return {**config, "send": send}

    model = uncalibrated(mask_cfg.to_dict())
    for path in paths:
        if not path.exists():
            continue
        blob = load_checkpoint(path, kind="mask")
        old, new = blob.get("train_config", {}), cfg.to_dict()
        diff = sorted(k for k in set(old) | set(new)
                      if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
        saved = uncalibrated(blob.get("config", {}))
        diff += sorted(f"the mask's {k}" for k in set(saved) | set(model)
                       if saved.get(k) != model.get(k))
        if diff:
            raise SpeechmaskError(f"{path}: trained with other settings ({', '.join(diff)}); "
                                  "move it away to train this gamma afresh")

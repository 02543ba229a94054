"""`speechmask export`: registered as a plugin of the `speechmask` command (entry point group
`speechmask.commands`), so the core never imports this package."""

from __future__ import annotations

import argparse
import re
from pathlib import Path


def _bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*(KiB|KB|k|MiB|MB|B)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 128KiB)")
    unit = {"KiB": 1024, "KB": 1000, "k": 1024, "MiB": 1 << 20, "MB": 10 ** 6, "B": 1, None: 1}
    return int(m.group(1)) * unit[m.group(2)]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="int8 TFLite + ONNX + C sources of a trained mask",
                       description="Export the mask generator as the firmware calls it (one "
                                   "segment per call): mask.tflite (full int8), mask.onnx, "
                                   "mask_int8.onnx, model_data.h/.c, speechmask_frontend.h, "
                                   "speechmask_gates.h, report.json, report.md.")
    p.add_argument("--mask", type=Path, required=True, help="trained mask generator")
    p.add_argument("--calib", type=Path, required=True,
                   help="manifest: its 'train' utterances calibrate, 'test' ones check parity")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--ram-budget", type=_bytes, default=128 * 1024,
                   help="refuse an arena larger than this (default 128KiB)")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from .pipeline import export, markdown

    report = export(args.mask, args.calib, args.out, ram_budget=args.ram_budget,
                    force=args.force)
    print(markdown(report))
    print(f"wrote {args.out}/")
    return 0

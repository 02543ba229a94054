"""`speechmask export`: registered as a plugin of the `speechmask` command (entry point group
`speechmask.commands`), so the core never imports this package. Options and defaults come from
`ExportConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechmask.options import add_options, from_args

from .config import ExportConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="int8 TFLite + ONNX + C sources of a trained mask",
                       description="Export the mask generator as the firmware calls it (one "
                                   "segment per call): mask.tflite (full int8), mask.onnx, "
                                   "mask_int8.onnx, model_data.h/.c, speechmask_frontend.h, "
                                   "speechmask_gates.h, the firmware's core C that reads them "
                                   "(sm_frontend.c/.h, sm_send.c/.h), report.json, report.md, "
                                   "written into --out as one set.")
    p.add_argument("--mask", type=Path, required=True, help="trained mask generator")
    p.add_argument("--calib", type=Path, required=True,
                   help="manifest: its 'train' utterances calibrate, 'test' ones check parity")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_options(p, ExportConfig)
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    p.set_defaults(handler=_export, parser=p)


def _export(args: argparse.Namespace) -> int:
    from speechmask.corpus.manifest import read_manifest
    from speechmask.train.checkpoint import load_checkpoint

    from .pipeline import export, markdown

    settings = from_args(ExportConfig, args, args.parser)
    load_checkpoint(args.mask, kind="mask")  # one line for a missing or corrupt checkpoint
    read_manifest(args.calib)  # and for a manifest off the schema, before minutes of work
    report = export(args.mask, args.calib, args.out, settings, force=args.force)
    print(markdown(report))
    print(f"wrote {args.out}/")
    return 0

"""`speechmask export` and `speechmask firmware`: registered as a plugin of the `speechmask` command (entry point group
`speechmask.commands`), so the core never imports this package. Options and defaults come from
`ExportConfig`."""

from __future__ import annotations

import argparse
import sys
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
    register_firmware(sub)
    from .serial.cli import register as register_serial

    register_serial(sub)


def register_firmware(sub: argparse._SubParsersAction) -> None:
    from .build import BOARDS, IMAGES

    p = sub.add_parser("firmware", help="build and run the firmware of an export",
                       description="The firmware built from an export folder (`speechmask "
                                   "export`): its generated headers and test vectors with the "
                                   "C sources shipped in firmware_export/firmware/.")
    fw = p.add_subparsers(dest="firmware_command", required=True, metavar="COMMAND")
    b = fw.add_parser("build", help="build the self-test image for a board",
                      description="Build the self-test image for --board into --out and print "
                                  "its text/data/bss. It streams the export's test vectors "
                                  "through the front-end and the send steps and exits 0 only if "
                                  "every output matches the Python reference. --run runs it: "
                                  "natively for host, under QEMU for mps2-an500.")
    b.add_argument("--export", type=Path, required=True, help="export folder")
    b.add_argument("--board", choices=BOARDS, default="mps2-an500",
                   help="host (gcc), mps2-an500 (QEMU's Cortex-M7) or stm32h7 (NUCLEO-H743ZI; "
                        "built, runs on the board) (default: mps2-an500)")
    b.add_argument("--out", type=Path, required=True, help="output folder")
    b.add_argument("--image", choices=IMAGES, default="selftest",
                   help="selftest (checks itself against the export's test vectors, then exits) "
                        "or app (the device job behind the serial protocol: `speechmask board`) "
                        "(default: selftest)")
    b.add_argument("--run", action="store_true", help="run the self-test after building")
    b.add_argument("--force", action="store_true", help="replace an earlier build in --out")
    b.set_defaults(handler=_firmware_build)


def _firmware_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from speechmask.outputs import OutputFolder

    from .build import build, check_export, run
    from .csources import BuildError

    check_export(args.export)
    if args.run and args.image != "selftest":
        raise BuildError("--run runs the self-test; the app serves `speechmask board` (run it "
                         "with `speechmask board emulate --qemu`)")
    folder = OutputFolder(args.out, args.force, owned=["selftest*", "app*", "src", "Makefile"])
    folder.check()
    with folder.staged() as staging:
        image = build(args.export, args.board, staging, args.image)
    image = replace(image, elf=args.out / image.elf.name,
                    bin=args.out / image.bin.name if image.bin else None)
    print(image.describe())
    if not args.run:
        return 0
    done = run(image)
    print(done.stdout, end="")
    if done.returncode != 0:
        print(f"speechmask: error: {image.elf}: the self-test failed (exit {done.returncode})"
              + (f": {done.stderr.strip().splitlines()[-1]}" if done.stderr.strip() else ""),
              file=sys.stderr)
        return 1
    return 0


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

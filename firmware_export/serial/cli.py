"""`speechmask flash` and `speechmask board`: registered by firmware_export.cli."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from speechmask.options import add_options, from_args

from .flasher import FlashConfig, parse_address


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash", help="flash firmware through the STM32 system bootloader",
                       description="Write a firmware image (.bin, .hex, .elf) to an STM32H7 "
                                   "through its system bootloader on a serial port (ST AN3155, "
                                   "8E1). Blocks already in flash are skipped, so running it "
                                   "again after an interruption resumes; only the sectors that "
                                   "need it are erased.")
    p.add_argument("firmware", type=Path, help="FIRMWARE.bin|.hex|.elf")
    p.add_argument("--port", required=True, help="serial port (e.g. /dev/ttyACM0, or the path "
                                                 "`speechmask board emulate` prints)")
    add_options(p, FlashConfig)
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    p.set_defaults(handler=_flash, parser=p)

    b = sub.add_parser("board", help="talk to the board, or emulate one",
                       description="The board end of the serial link.")
    bs = b.add_subparsers(dest="board_command", required=True, metavar="COMMAND")
    e = bs.add_parser("emulate", help="serve an emulated STM32H7 bootloader on a pseudo-terminal",
                      description="Serve the STM32 system bootloader (AN3155) of an STM32H7 on "
                                  "a new pseudo-terminal and print its path; flash it with "
                                  "`speechmask flash`, stm32flash (-m 8n1: a pseudo-terminal "
                                  "has no parity) or stm32loader. The flash lives in "
                                  "--flash-image, so what was flashed survives a restart. Stops "
                                  "on Ctrl-C or SIGTERM.")
    e.add_argument("--flash-image", type=Path, default=Path("board_flash.bin"),
                   help="file holding the emulated flash, created erased when missing "
                        "(default: board_flash.bin)")
    e.add_argument("--chip", type=parse_address, default=0x450, metavar="ID",
                   help="product id the bootloader reports: 0x450 (H74x/75x, default), 0x480 "
                        "(H7A3/B3), 0x483 (H72x/73x)")
    e.add_argument("--quiet", action="store_true", help="print only the port's path")
    e.set_defaults(handler=_emulate)


def _open_port(name: str, baud: int, timeout_s: float):
    """The port at 8E1, as the bootloader speaks, or 8N1 on a pseudo-terminal (an emulated
    board): a pty has no parity and glibc refuses to set one there."""
    import termios

    import serial

    from .image import SerialToolError
    from .pty_link import is_pty

    parity = serial.PARITY_NONE if is_pty(name) else serial.PARITY_EVEN
    try:
        return serial.Serial(name, baudrate=baud, parity=parity, bytesize=8, stopbits=1,
                             timeout=timeout_s)
    except (serial.SerialException, OSError, ValueError, termios.error) as exc:
        raise SerialToolError(f"{name}: cannot open the serial port ({exc})") from None


def _pulse_reset(port, line: str) -> None:
    """Hold the board in reset through a modem line for 100 ms (DTR/RTS are active low, so
    asserting the line pulls reset low), then let it start."""
    if line == "none":
        return
    setter = port.setDTR if line == "dtr" else port.setRTS
    setter(True)
    time.sleep(0.1)
    setter(False)
    time.sleep(0.2)


def _flash(args: argparse.Namespace) -> int:
    import json

    from tqdm import tqdm

    from speechmask.atomic import atomic_output

    from .flasher import flash_image
    from .image import load_image

    cfg = from_args(FlashConfig, args, args.parser)
    image = load_image(args.firmware, cfg.address)
    bars: list = []

    def progress(label: str, total: int):
        if bars:
            bars[-1].close()
        bars.append(tqdm(total=total, desc=label, unit="block", file=sys.stderr, leave=False,
                         disable=None))
        return lambda: bars[-1].update(1)

    with _open_port(args.port, cfg.baud, cfg.timeout_s) as port:
        _pulse_reset(port, cfg.reset)
        try:
            report = flash_image(port, image, cfg, port_name=args.port, progress=progress)
        finally:
            for bar in bars:
                bar.close()
    print(report.describe())
    if args.json:
        with atomic_output(args.json) as tmp:
            Path(tmp).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0


def _emulate(args: argparse.Namespace) -> int:
    from .bootloader_emu import BootloaderEmulator, FlashFile, known_chip
    from .pty_link import Closed, PtyLink

    flash = FlashFile(args.flash_image, known_chip(args.chip))
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))

    def on_go(address: int) -> None:
        log(f"Go 0x{address:08X}: the application is not emulated yet; the part resets into "
            "its bootloader")

    link = PtyLink()
    signal.signal(signal.SIGTERM, lambda *_: link.stop())
    emulator = BootloaderEmulator(flash, on_go=on_go, log=log)
    print(link.path, flush=True)
    log(f"{flash.chip.describe()}; flash in {args.flash_image}")
    try:
        emulator.serve(link)
    except (Closed, KeyboardInterrupt):
        pass
    finally:
        link.close()
        flash.close()
    return 0

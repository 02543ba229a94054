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
    e.add_argument("--export", type=Path,
                   help="export folder: after Go (or at once with --boot flash) the board runs "
                        "the application protocol, answered by the export's host reference")
    e.add_argument("--qemu", action="store_true",
                   help="run the real application firmware, built from --export for QEMU's "
                        "Cortex-M7 (mps2-an500), behind the port instead of the reference")
    e.add_argument("--boot", choices=("bootloader", "flash"), default="bootloader",
                   help="start in the system bootloader (BOOT0 high; default) or in the "
                        "application (needs --export)")
    e.add_argument("--quiet", action="store_true", help="print only the port's path")
    e.set_defaults(handler=_emulate)

    for name, text in (("info", "the firmware's versions, export id, front-end and memory"),
                       ("stats", "the firmware's counters since it started")):
        c = bs.add_parser(name, help=text, description=f"Print {text}.")
        _port_options(c)
        c.set_defaults(handler=_info, board_request=name)
    u = bs.add_parser("upload-model", help="upload a model blob into the board's model region",
                      description="Upload BLOB (model.blob of the export the firmware was built "
                                  "from) into the firmware's reserved model region. The board "
                                  "checks the blob's CRC-32 and export id before it makes it "
                                  "the active model; until then, and after any failure, the "
                                  "model it had stays active.")
    u.add_argument("blob", type=Path, help="model.blob")
    _port_options(u)
    u.set_defaults(handler=_upload_model)
    s = bs.add_parser("stream", help="stream a WAV file through the board's mask",
                      description="Send IN.wav (16 kHz mono int16 PCM, as the microphone "
                                  "delivers it) to the board in chunks, collect the gates and "
                                  "features it sends, print the open fraction, the bytes sent "
                                  "and, where the firmware counts, instructions per second of "
                                  "audio. --check compares every gate and feature with the host "
                                  "reference of --export, bit for bit (exit 1 on any "
                                  "difference).")
    s.add_argument("wav", type=Path, help="IN.wav")
    _port_options(s)
    s.add_argument("--out", type=Path, help="write the sent features here (.npy, int16 "
                                            "segments x frames x mels, zero where closed) and "
                                            "the gates beside it (.gates.npy)")
    s.add_argument("--check", action="store_true", help="compare with the host reference")
    s.add_argument("--export", type=Path, help="export folder of the firmware (for --check)")
    s.add_argument("--level", type=int, default=0, help="warp level of the utterance (default 0)")
    s.add_argument("--chunk", type=int, help="samples per STREAM frame (default: one segment)")
    s.add_argument("--force", action="store_true", help="replace --out")
    s.set_defaults(handler=_stream)


def _port_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="serial port of the board (or of `speechmask "
                                                  "board emulate`)")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for each reply (default 10)")


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


def _app_port(name: str, baud: int, timeout_s: float):
    """The application's port: 8N1 (the firmware's UART), short reads."""
    import termios

    import serial

    from .image import SerialToolError

    try:
        return serial.Serial(name, baudrate=baud, timeout=0.05)
    except (serial.SerialException, OSError, ValueError, termios.error) as exc:
        raise SerialToolError(f"{name}: cannot open the serial port ({exc})") from None


def _info(args: argparse.Namespace) -> int:
    from .board_client import BoardClient

    with _app_port(args.port, args.baud, args.timeout) as port:
        client = BoardClient(port, args.port, args.timeout)
        values = client.info() if args.board_request == "info" else client.stats()
    width = max(map(len, values), default=0)
    for key, value in values.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _upload_model(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .board_client import BoardClient
    from .image import SerialToolError

    if not args.blob.is_file():
        raise SerialToolError(f"{args.blob}: no such model blob")
    blob = args.blob.read_bytes()
    if blob[:4] != b"SMMD":
        raise SerialToolError(f"{args.blob}: not a speechmask model blob (no SMMD magic)")
    with _app_port(args.port, args.baud, args.timeout) as port:
        client = BoardClient(port, args.port, args.timeout)
        with tqdm(total=len(blob), unit="B", unit_scale=True, file=sys.stderr, leave=False,
                  disable=None, desc="uploading") as bar:
            done = client.upload_model(blob, progress=bar.update)
        info = client.info()
    print(f"{args.blob}: {done.bytes} bytes in {done.frames} frames"
          + (f" (resumed at {done.resumed_at})" if done.resumed_at else "")
          + f"; the board's model is now {info.get('model')} (export {info.get('export_id')})")
    return 0


def _stream(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from speechmask.audio import read_audio, to_pcm16

    from .board_client import BoardClient
    from .image import SerialToolError

    if args.check and args.export is None:
        raise SerialToolError("--check needs --export (the folder the firmware was built from)")
    if args.out is not None and not args.force:
        for path in (args.out, _gates_path(args.out)):
            if path.exists():
                raise SerialToolError(f"{path}: exists; add --force to replace it")
    if not -128 <= args.level <= 127:
        raise SerialToolError(f"--level {args.level}: a warp level is a small signed number "
                              "(the board's INFO says its range: warp_levels)")
    pcm = to_pcm16(read_audio(args.wav))  # AudioError names the file
    reference = None
    if args.check:
        from .reference import ExportReference

        reference = ExportReference(args.export)
    with _app_port(args.port, args.baud, args.timeout) as port:
        client = BoardClient(port, args.port, args.timeout)
        info = client.info()
        if reference is not None and info.get("export_id") != reference.export_id:
            raise SerialToolError(f"{args.port}: the board runs export "
                                  f"{info.get('export_id')!r}, {args.export} is "
                                  f"{reference.export_id!r}")
        with tqdm(total=len(pcm), unit="sample", unit_scale=True, file=sys.stderr,
                  leave=False, disable=None, desc="streaming") as bar:
            got = client.stream(pcm, args.level, args.chunk, info, bar.update)
    rate = info.get("sample_rate", "16000")
    seconds = len(pcm) / (int(rate) if rate.isdigit() and int(rate) > 0 else 16000)
    segments = len(got.gates)
    print(f"{args.wav}: {seconds:.2f} s, {segments} segments, open fraction "
          f"{got.gates.mean() if segments else 0:.3f}, {got.bytes_sent} bytes sent "
          f"({got.bytes_sent / max(seconds, 1e-9):.0f} B/s), chunks of {got.chunk_samples} "
          "samples")
    if got.per_tick:
        work = sum(got.ticks) * got.per_tick
        unit = info.get("counter", "cycles")
        print(f"on the board: {work / seconds / 1e6:.2f} M {unit} per second of audio "
              f"({work / seconds / 480e6 * 100:.2f} % of a 480 MHz Cortex-M7"
              + (")" if unit == "cycles" else " at one instruction per cycle)"))
    if args.out is not None:
        from speechmask.atomic import atomic_output

        for path, array in ((args.out, got.features), (_gates_path(args.out), got.gates)):
            with atomic_output(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, array)
    if reference is None:
        return 0
    gates, feats = reference.run(pcm, args.level)
    bad = [i for i in range(max(len(gates), segments))
           if i >= len(gates) or i >= segments or not np.array_equal(gates[i], got.gates[i])
           or not np.array_equal(feats[i], got.features[i])]
    if not bad:
        print(f"check: the board's {segments} segments equal the host reference bit for bit "
              "(gates and features)")
        return 0
    print(f"check: {len(bad)} of {max(len(gates), segments)} segments differ from the host "
          f"reference (board {segments} segments, reference {len(gates)}); first: "
          f"{bad[:10]}", file=sys.stderr)
    return 1


def _gates_path(out: Path) -> Path:
    return out.with_name(out.stem + ".gates.npy")


def _pulse_reset(port, line: str) -> None:
    """Hold the board in reset through a modem line for 100 ms (DTR/RTS are active low, so
    asserting the line pulls reset low), then let it start."""
    import serial

    from .image import SerialToolError

    if line == "none":
        return
    setter = port.setDTR if line == "dtr" else port.setRTS
    try:
        setter(True)
        time.sleep(0.1)
        setter(False)
    except (OSError, serial.SerialException) as exc:
        raise SerialToolError(f"{port.port}: cannot drive {line.upper()} ({exc}); a "
                              "pseudo-terminal has no modem lines: use --reset none") from None
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
    from .bootloader_emu import FlashFile, known_chip
    from .image import SerialToolError
    from .pty_link import PtyLink

    if args.boot == "flash" and args.export is None:
        raise SerialToolError("--boot flash needs --export (the application answers with its "
                              "reference)")
    if args.qemu and args.export is None:
        raise SerialToolError("--qemu needs --export (the firmware is built from it)")
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    link = PtyLink()  # its path is the first line printed, whatever comes after
    print(link.path, flush=True)
    app, flash = None, None
    try:
        if args.qemu:
            from .qemu_app import QemuApp

            app, what = QemuApp(args.export, log=log), "the firmware under QEMU"
        elif args.export is not None:
            from .app_emu import AppEmulator
            from .reference import ExportReference

            app = AppEmulator(ExportReference(args.export), log=log)
            what = f"the reference of export {app.ref.export_id}"
        flash = FlashFile(args.flash_image, known_chip(args.chip))
        return _serve(args, link, flash, app, what if app is not None else "", log)
    finally:
        link.close()
        if flash is not None:
            flash.close()
        if hasattr(app, "close"):
            app.close()


def _serve(args, link, flash, app, what: str, log) -> int:
    from .bootloader_emu import BootloaderEmulator
    from .pty_link import Closed

    def on_go(address: int) -> None:
        if emulator._region(address, 8) != "flash":
            log(f"Go 0x{address:08X}: not in flash, so no firmware runs; back in the bootloader")
        elif flash.read(address, 8) == b"\xff" * 8:
            log(f"Go 0x{address:08X}: no firmware there (erased flash); back in the bootloader")
        elif app is None:
            log(f"Go 0x{address:08X}: no --export, so no application to run; back in the "
                "bootloader")
        else:
            log(f"Go 0x{address:08X}: the application runs ({what})")
            app.serve(link)

    signal.signal(signal.SIGTERM, lambda *_: link.stop())
    emulator = BootloaderEmulator(flash, on_go=on_go, log=log)
    log(f"{flash.chip.describe()}; flash in {args.flash_image}")
    try:
        if args.boot == "flash":
            log(f"booting the application ({what})")
            app.serve(link)
        else:
            emulator.serve(link)
    except (Closed, KeyboardInterrupt):
        pass
    return 0

"""The host side of the application protocol on an open serial port: `speechmask board info`,
`stats` and `stream`. One request in flight at a time; a reply is matched by type and sequence
number, anything else on the line is skipped (a reset board may print first)."""

from __future__ import annotations

import time
import struct
from dataclasses import dataclass

import numpy as np

from . import protocol as p
from .image import SerialToolError


@dataclass
class Streamed:
    gates: np.ndarray      # (S, G) uint8
    features: np.ndarray   # (S, frames_per_segment, n_mels) int16, zero where closed
    ticks: list[int]       # per STREAM chunk
    per_tick: int          # instructions or cycles per tick (0: not counted)
    chunk_samples: int
    bytes_sent: int        # of payload that left the board (gates + open features)


@dataclass
class Uploaded:
    bytes: int
    frames: int
    resumed_at: list[int]  # offsets the board asked to resume from


def band_edges(n_mels: int, band_groups: int) -> list[tuple[int, int]]:
    from speechmask.models.config import GateConfig

    return GateConfig(band_groups=band_groups).band_edges(n_mels)


class BoardClient:
    def __init__(self, port, name: str = "board", timeout_s: float = 5.0):
        import random

        self.port, self.name, self.timeout_s = port, name, timeout_s
        self.parser = p.Parser()
        # a reply an earlier process gave up on may still be on the line: drop what is there,
        # and start from a sequence number it is unlikely to share
        port.reset_input_buffer()
        self.seq = random.randrange(1 << 16)

    def request(self, kind: p.Type, payload: bytes = b"", *, timeout_s: float | None = None
                ) -> p.Frame:
        import serial

        try:
            try:
                return self._request(kind, payload, timeout_s)
            except NoReply:
                if kind not in (p.Type.INFO, p.Type.STATS):
                    raise
                # the board may be inside a frame that noise seemed to start: flush, retry once
                self.port.write(p.FLUSH)
                return self._request(kind, payload, timeout_s)
        except (serial.SerialException, OSError) as exc:
            raise SerialToolError(f"{self.name}: the serial link failed ({exc})") from None

    def _request(self, kind: p.Type, payload: bytes, timeout_s: float | None) -> p.Frame:
        self.seq = (self.seq + 1) & 0xFFFF
        self.port.write(p.Frame(kind, self.seq, payload).encode())
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while time.monotonic() < deadline:
            for frame in self.parser.feed(self.port.read(max(1, self.port.in_waiting))):
                if frame.type == kind | p.REPLY and frame.seq == self.seq:
                    if frame.status != p.Status.OK:
                        raise _Refused(f"{self.name}: {_type_name(kind)} refused: "
                                       f"{_status_name(frame.status)}", frame)
                    return frame
        raise NoReply(f"{self.name}: no reply to {_type_name(kind)} within "
                              f"{timeout_s or self.timeout_s:g} s (is the speechmask firmware "
                              "running on it?)")

    def info(self) -> dict:
        return p.key_values(self.request(p.Type.INFO).payload[1:])

    def stats(self) -> dict:
        return p.key_values(self.request(p.Type.STATS).payload[1:])

    def upload_model(self, blob: bytes, chunk: int = 1024, progress=None) -> Uploaded:
        """MODEL_BEGIN, MODEL_DATA in order, MODEL_COMMIT. A refused MODEL_DATA names the offset
        the board expects next; the upload resumes there (up to 3 times)."""
        import zlib

        self.request(p.Type.MODEL_BEGIN, struct.pack("<II", len(blob), zlib.crc32(blob)))
        at, frames, resumed = 0, 0, []
        while at < len(blob):
            piece = blob[at:at + chunk]
            try:
                self.request(p.Type.MODEL_DATA, struct.pack("<I", at) + piece)
            except NoReply:
                # lost on the way, or its reply was: flush, then send the same offset again (a
                # board that has it names the offset it expects, below)
                if len(resumed) >= 3:
                    raise
                self.port.write(p.FLUSH)
                resumed.append(at)
                continue
            except _Refused as exc:
                if exc.status != p.Status.BAD_ARGUMENT or len(resumed) >= 3 \
                        or len(exc.body) != 4:
                    raise
                at = struct.unpack("<I", exc.body)[0]
                resumed.append(at)
                continue
            at += len(piece)
            frames += 1
            if progress:
                progress(len(piece))
        self.request(p.Type.MODEL_COMMIT)
        return Uploaded(len(blob), frames, resumed)

    def stream(self, pcm: np.ndarray, level: int = 0, chunk: int | None = None,
               info: dict | None = None, progress=None) -> Streamed:
        info = info or self.info()
        try:
            n_mels, groups = int(info["n_mels"]), int(info["band_groups"])
            frames, max_chunk = int(info["frames_per_segment"]), int(info["max_chunk_samples"])
            hop = int(info["hop_length"])
        except (KeyError, ValueError) as exc:
            raise SerialToolError(f"{self.name}: INFO lacks {exc}") from None
        chunk = chunk or min(max_chunk, hop * frames)
        if not 1 <= chunk <= max_chunk:
            raise SerialToolError(f"--chunk {chunk}: the board takes 1..{max_chunk} samples "
                                  "per frame")
        edges = band_edges(n_mels, groups)
        open_bytes = (lambda g: 2 * frames * sum(hi - lo for (lo, hi), o in zip(edges, g) if o))
        self.request(p.Type.STREAM_BEGIN, int(level).to_bytes(1, "little", signed=True))
        gates, feats, ticks, per_tick, sent = [], [], [], 0, 0
        pcm = np.ascontiguousarray(pcm, "<i2")
        for at in range(0, len(pcm), chunk):
            body = self.request(p.Type.STREAM, pcm[at:at + chunk].tobytes()).payload[1:]
            try:
                seg = p.Segments.decode(body, groups, open_bytes)
            except (ValueError, IndexError, struct.error) as exc:
                raise SerialToolError(f"{self.name}: a malformed STREAM reply ({exc})") from None
            ticks.append(seg.ticks)
            per_tick = seg.per_tick
            for g, f in zip(seg.gates, seg.features):
                out = np.zeros((frames, n_mels), np.int16)
                values = np.frombuffer(f, "<i2").reshape(frames, -1) if f else None
                col = 0
                for (lo, hi), o in zip(edges, g):
                    if o:
                        out[:, lo:hi] = values[:, col:col + hi - lo]
                        col += hi - lo
                gates.append(np.frombuffer(g, np.uint8))
                feats.append(out)
                sent += len(g) + len(f)
            if progress:
                progress(min(chunk, len(pcm) - at))
        return Streamed(np.array(gates, np.uint8).reshape(-1, groups),
                        np.array(feats, np.int16).reshape(-1, frames, n_mels), ticks, per_tick,
                        chunk, sent)


class NoReply(SerialToolError):
    """No reply in time."""


class _Refused(SerialToolError):
    """The board answered with a status other than OK (`status`, and the reply's `body`)."""

    def __init__(self, message: str, frame: p.Frame):
        super().__init__(message)
        self.status, self.body = frame.status, frame.payload[1:]


def _type_name(kind: int) -> str:
    try:
        return p.Type(kind).name
    except ValueError:
        return f"type 0x{kind:02X}"


_MEANING = {p.Status.BAD_CRC: "the data does not match its CRC-32",
            p.Status.WRONG_EXPORT: "made for another export than the firmware's",
            p.Status.BAD_STATE: "not expected now",
            p.Status.TOO_LARGE: "too large for the board"}


def _status_name(status: int) -> str:
    try:
        name = p.Status(status)
    except ValueError:
        return f"status {status}"
    return f"{name.name} ({_MEANING[name]})" if name in _MEANING else name.name

"""The application protocol between the host and the speechmask firmware, one frame format both
ways (firmware_export/firmware/core/sm_proto.c is its C side; `protocol_vectors.txt` holds frames
both test suites decode, so the two stay byte-compatible).

Frame, little-endian, modelled on encodec's binary header (magic, version, then lengths):

    magic "SM" | version u8 | type u8 | seq u16 | length u16 | payload | crc32 u32

The CRC-32 (IEEE, zlib's) covers everything before it, magic included. A reply has the request's
type with bit 7 set and its sequence number, and its payload starts with a status byte.
`Parser` takes bytes as they come: it skips noise up to the next magic, refuses unknown versions,
oversized lengths and bad CRCs, and never raises on garbage."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"SM"
VERSION = 1
HEADER = struct.Struct("<2sBBHH")  # magic, version, type, seq, length
MAX_PAYLOAD = 2048
REPLY = 0x80
#: zeros enough to complete any frame a receiver thinks has begun (its CRC then fails), so that
#: the next frame is read from its magic: what a client sends before it retries
FLUSH = bytes(HEADER.size + MAX_PAYLOAD + 4)


class Type(IntEnum):
    INFO = 0x01          # -> text key=value lines: versions, export id, front-end, memory
    STATS = 0x02         # -> text key=value lines: counts and timing since the last reset
    STREAM_BEGIN = 0x10  # i8 warp level: a new utterance
    STREAM = 0x11        # int16 PCM -> the segments it completes (see `Segments`)
    MODEL_BEGIN = 0x20   # u32 size, u32 crc32 of a model blob about to be uploaded
    MODEL_DATA = 0x21    # u32 offset, bytes
    MODEL_COMMIT = 0x22  # the blob is checked and, if whole, made the active model


class Status(IntEnum):
    OK = 0
    UNKNOWN_TYPE = 1
    BAD_ARGUMENT = 2
    BAD_STATE = 3    # e.g. STREAM before STREAM_BEGIN
    BAD_CRC = 4      # a model blob whose CRC does not match
    WRONG_EXPORT = 5  # a model blob for another export
    TOO_LARGE = 6
    INTERNAL_ERROR = 7  # the emulator's reference failed (a bug: it logs it)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""

    @property
    def is_reply(self) -> bool:
        return bool(self.type & REPLY)

    @property
    def status(self) -> int:
        return self.payload[0] if self.payload else -1

    def encode(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes, at most {MAX_PAYLOAD}")
        head = HEADER.pack(MAGIC, VERSION, self.type, self.seq & 0xFFFF, len(self.payload))
        body = head + self.payload
        return body + struct.pack("<I", zlib.crc32(body))


def reply(request: Frame, status: Status, body: bytes = b"") -> Frame:
    return Frame(request.type | REPLY, request.seq, bytes([status]) + body)


class Parser:
    """Bytes in, frames out. `errors` counts what was dropped (noise bytes are not errors, frames
    with a bad version, length or CRC are)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.errors = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while True:
            start = self._buf.find(MAGIC)
            if start < 0:  # keep a trailing 'S' that may start a magic
                del self._buf[:max(0, len(self._buf) - 1)]
                return frames
            del self._buf[:start]
            if len(self._buf) < HEADER.size:
                return frames
            _, version, kind, seq, length = HEADER.unpack_from(self._buf)
            if version != VERSION or length > MAX_PAYLOAD:
                self.errors += 1
                del self._buf[:1]  # not a frame: look for the next magic
                continue
            end = HEADER.size + length + 4
            if len(self._buf) < end:
                return frames
            body = bytes(self._buf[:end - 4])
            (crc,) = struct.unpack_from("<I", self._buf, end - 4)
            if zlib.crc32(body) != crc:
                self.errors += 1
                del self._buf[:1]
                continue
            frames.append(Frame(kind, seq, body[HEADER.size:]))
            del self._buf[:end]


def key_values(text: bytes) -> dict[str, str]:
    """INFO and STATS payloads (after the status byte): `key=value` lines."""
    out = {}
    for line in text.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def encode_key_values(values: dict) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in values.items()).encode()


@dataclass(frozen=True)
class Segments:
    """A STREAM reply's body: u32 ticks the firmware spent on the chunk, u32 instructions (or
    cycles) per tick (0 where not counted), u16 segments, then per segment its gates (one byte
    per band group) and the int16 features of its open band groups only, frame by frame: the
    bytes that leave the device are exactly what is sent."""

    ticks: int
    per_tick: int
    gates: list[bytes]
    features: list[bytes]  # per segment: the open groups' int16 features, little-endian

    HEAD = struct.Struct("<IIH")

    def encode(self) -> bytes:
        out = [self.HEAD.pack(self.ticks, self.per_tick, len(self.gates))]
        for g, f in zip(self.gates, self.features):
            out += [g, f]
        return b"".join(out)

    @classmethod
    def decode(cls, body: bytes, band_groups: int, open_bytes) -> "Segments":
        """`open_bytes(gates)`: the feature bytes a segment with these gates carries."""
        ticks, per_tick, n = cls.HEAD.unpack_from(body)
        pos, gates, features = cls.HEAD.size, [], []
        for _ in range(n):
            g = body[pos:pos + band_groups]
            pos += band_groups
            k = open_bytes(g)
            features.append(body[pos:pos + k])
            pos += k
            gates.append(g)
        if pos != len(body):
            raise ValueError(f"STREAM reply of {len(body)} bytes, expected {pos}")
        return cls(ticks, per_tick, gates, features)

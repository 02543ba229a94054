"""The speechmask firmware's application protocol, answered by the host reference (the plain
board emulator): what the firmware on a board answers, computed by `ExportReference` instead of
the C. INFO reports the emulator as the firmware; STREAM's tick counts are 0 (nothing counts)."""

from __future__ import annotations

import numpy as np

from . import protocol as p
from .reference import ExportReference

FIRMWARE = "speechmask-reference-emulator"
STREAM_HEAD = 1 + p.Segments.HEAD.size


def max_chunk(ref: ExportReference) -> int:
    """Samples per STREAM frame whose reply always fits a frame, as the firmware computes it
    (app.c): n new samples complete at most (n // hop + frames_per_segment) //
    frames_per_segment segments."""
    cfg = ref.cfg
    fps, hop = cfg.frames_per_segment, cfg.frontend.hop_length
    segment = cfg.gate.band_groups + 2 * fps * cfg.frontend.n_mels
    n = p.MAX_PAYLOAD // 2
    while n > 0 and STREAM_HEAD + (n // hop + fps) // fps * segment > p.MAX_PAYLOAD:
        n -= 1
    return n


class AppEmulator:
    def __init__(self, reference: ExportReference, log=lambda line: None):
        self.ref, self.log = reference, log
        self.pcm: list[np.ndarray] | None = None
        self.level = 0
        self.segments_sent = 0
        self.parser = p.Parser()
        self.region: bytearray | None = None
        self.upload: tuple[int, int] | None = None  # size, crc32
        self.model = "built-in"
        self.stats = {"frames": 0, "bad_frames": 0, "utterances": 0, "samples": 0,
                      "segments": 0, "segments_open": 0}

    def info(self) -> dict:
        cfg, fe = self.ref.cfg, self.ref.cfg.frontend
        return {"firmware": FIRMWARE, "protocol": p.VERSION,
                "contract_version": self.ref.stamp.get("contract_version", ""),
                "export_id": self.ref.export_id, "sample_rate": fe.sample_rate,
                "win_length": fe.win_length, "hop_length": fe.hop_length, "n_mels": fe.n_mels,
                "frames_per_segment": cfg.frames_per_segment,
                "band_groups": cfg.gate.band_groups, "max_chunk_samples": max_chunk(self.ref),
                "warp_levels": cfg.send.warp_levels if cfg.send.warp else 0,
                "counter": "none", "model": self.model,
                "model_blob_bytes": len(self.ref.blob)}

    def handle(self, frame: p.Frame) -> p.Frame:
        self.stats["frames"] += 1
        kind, body = frame.type, frame.payload
        if kind == p.Type.INFO:
            return p.reply(frame, p.Status.OK, p.encode_key_values(self.info()))
        if kind == p.Type.STATS:
            self.stats["bad_frames"] = self.parser.errors
            return p.reply(frame, p.Status.OK, p.encode_key_values(self.stats))
        if kind == p.Type.STREAM_BEGIN:
            levels = self.info()["warp_levels"]
            if len(body) != 1 or abs(int.from_bytes(body, "little", signed=True)) > levels:
                return p.reply(frame, p.Status.BAD_ARGUMENT)
            self.level = int.from_bytes(body, "little", signed=True)
            self.pcm, self.segments_sent = [], 0
            self.stats["utterances"] += 1
            return p.reply(frame, p.Status.OK)
        if kind == p.Type.STREAM:
            if self.pcm is None:
                return p.reply(frame, p.Status.BAD_STATE)
            if len(body) % 2 or len(body) // 2 > max_chunk(self.ref):
                return p.reply(frame, p.Status.BAD_ARGUMENT)
            self.pcm.append(np.frombuffer(body, "<i2"))
            self.stats["samples"] += len(body) // 2
            gates, feats = self.ref.run(np.concatenate(self.pcm), self.level)
            new = range(self.segments_sent, len(gates))
            self.segments_sent = len(gates)
            self.stats["segments"] += len(new)
            self.stats["segments_open"] += int(sum(gates[i].any() for i in new))
            seg = p.Segments(0, 0, [gates[i].tobytes() for i in new],
                             [self.ref.pack(gates[i], feats[i]) for i in new]).encode()
            if 1 + len(seg) > p.MAX_PAYLOAD:  # cannot happen: max_chunk leaves room
                return p.reply(frame, p.Status.TOO_LARGE)
            return p.reply(frame, p.Status.OK, seg)
        if kind in (p.Type.MODEL_BEGIN, p.Type.MODEL_DATA, p.Type.MODEL_COMMIT):
            return self._model(frame)
        return p.reply(frame, p.Status.UNKNOWN_TYPE)

    def _model(self, frame: p.Frame) -> p.Frame:
        """The firmware's upload (app.c): in order into the region, checked at commit; the
        blob must be this export's, so the built-in copy is active meanwhile."""
        import struct
        import zlib

        from ..codegen import BLOB_HEADER

        kind, body = frame.type, frame.payload
        if kind == p.Type.MODEL_BEGIN:
            if len(body) != 8:
                return p.reply(frame, p.Status.BAD_ARGUMENT)
            size, crc = struct.unpack("<II", body)
            if size != len(self.ref.blob):
                return p.reply(frame, p.Status.TOO_LARGE if size > len(self.ref.blob)
                               else p.Status.WRONG_EXPORT)
            self.region, self.upload, self.model = bytearray(), (size, crc), "built-in"
            return p.reply(frame, p.Status.OK)
        if kind == p.Type.MODEL_DATA:
            have = 0 if self.region is None else len(self.region)
            if self.upload is None or len(body) < 4 or struct.unpack_from("<I", body)[0] != have \
                    or have + len(body) - 4 > self.upload[0]:
                status = p.Status.BAD_ARGUMENT if self.upload else p.Status.BAD_STATE
                return p.reply(frame, status, struct.pack("<I", have))
            self.region += body[4:]
            return p.reply(frame, p.Status.OK)
        if self.upload is None or len(self.region) != self.upload[0]:
            return p.reply(frame, p.Status.BAD_STATE)
        blob, (_, crc), self.upload = bytes(self.region), self.upload, None
        if zlib.crc32(blob) != crc:
            return p.reply(frame, p.Status.BAD_CRC)
        _, fmt, export_id, contract, n, inner, _ = BLOB_HEADER.unpack_from(blob)
        want = BLOB_HEADER.unpack_from(self.ref.blob)
        if blob[:4] != b"SMMD" or fmt != want[1]:
            return p.reply(frame, p.Status.BAD_ARGUMENT)
        if (export_id, contract, n) != (want[2], want[3], want[4]):
            return p.reply(frame, p.Status.WRONG_EXPORT)
        if inner != want[5] or zlib.crc32(blob[BLOB_HEADER.size:]) != want[5]:
            return p.reply(frame, p.Status.BAD_CRC)
        self.model = "uploaded"
        return p.reply(frame, p.Status.OK)

    def _answer(self, frame: p.Frame) -> p.Frame:
        try:
            return self.handle(frame)
        except Exception as exc:  # a fault of ours: report it, keep serving
            self.log(f"internal error on {frame.type:#04x}: {type(exc).__name__}: {exc}")
            return p.reply(frame, p.Status.INTERNAL_ERROR)

    def serve(self, link) -> None:
        """Answer frames on `link` until it closes."""
        while True:
            for frame in self.parser.feed(link.read_some()):
                if not frame.is_reply:
                    link.write(self._answer(frame).encode())

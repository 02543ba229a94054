"""The application protocol: frames against the shared vectors, a parser that survives garbage,
and the board emulator's application answering `speechmask board` through a real pty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_export.serial import protocol as p

VECTORS = Path(p.__file__).with_name("protocol_vectors.txt")
SPEECHMASK = [sys.executable, "-m", "speechmask"]


def vectors():
    for line in VECTORS.read_text().splitlines():
        if line and not line.startswith("#"):
            kind, seq, payload, frame, _ = line.split(" ", 4)
            yield (int(kind, 16), int(seq, 16), b"" if payload == "-" else bytes.fromhex(payload),
                   bytes.fromhex(frame))


@pytest.mark.parametrize("kind,seq,payload,frame", list(vectors()))
def test_frames_match_the_shared_vectors(kind, seq, payload, frame):
    assert p.Frame(kind, seq, payload).encode() == frame
    assert p.Parser().feed(frame) == [p.Frame(kind, seq, payload)]


def test_stream_reply_body_decodes():
    kind, seq, payload, frame = [v for v in vectors() if v[0] == 0x91][0]
    seg = p.Segments.decode(payload[1:], 1, lambda g: 8 * g[0])
    assert (seg.ticks, seg.per_tick, seg.gates) == (120, 40, [b"\x00", b"\x01"])
    assert np.frombuffer(seg.features[1], "<i2").tolist() == [1, 2, 3, 4]


@settings(max_examples=300, deadline=None)
@given(noise=st.lists(st.binary(max_size=40), min_size=1, max_size=6),
       payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=5),
       cut=st.integers(1, 17))
def test_parser_finds_frames_in_noise_and_never_raises(noise, payloads, cut):
    frames = [p.Frame(p.Type.STREAM, i, pl) for i, pl in enumerate(payloads)]
    stream = b"".join(n + f.encode() for n, f in zip(noise * len(frames), frames))
    parser, got = p.Parser(), []
    for at in range(0, len(stream), cut):  # bytes as they trickle in
        got += parser.feed(stream[at:at + cut])
    # noise may by chance hold a valid frame; ours all come through, in order
    ours = [f for f in got if f in frames]
    assert ours == frames


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=300))
def test_parser_survives_garbage(garbage):
    """Whatever came before, a frame after FLUSH (what a client sends before it retries) is
    found; without it, a header in the garbage may hold the frame as its payload."""
    parser = p.Parser()
    parser.feed(garbage)
    frame = p.Frame(p.Type.INFO, 7)
    assert frame in parser.feed(p.FLUSH + frame.encode())


def test_a_header_in_noise_swallows_the_next_frames_until_flushed():
    parser = p.Parser()
    stuck = p.HEADER.pack(p.MAGIC, p.VERSION, 0, 0, 2047)
    assert parser.feed(stuck + p.Frame(p.Type.INFO, 7).encode()) == []
    # the flush completes the false frame, its CRC fails, and the search resumes inside it:
    # the swallowed frame comes out too
    assert parser.feed(p.FLUSH + p.Frame(p.Type.INFO, 8).encode()) == [
        p.Frame(p.Type.INFO, 7), p.Frame(p.Type.INFO, 8)]


def test_corrupt_frames_are_dropped_and_counted():
    good = p.Frame(p.Type.INFO, 1).encode()
    bad = bytearray(good)
    bad[-1] ^= 1
    parser = p.Parser()
    assert parser.feed(bytes(bad) + good) == [p.Frame(p.Type.INFO, 1)]
    assert parser.errors == 1
    too_long = p.HEADER.pack(p.MAGIC, p.VERSION, 1, 1, p.MAX_PAYLOAD + 1)
    assert parser.feed(too_long + good) == [p.Frame(p.Type.INFO, 1)] and parser.errors == 2
    with pytest.raises(ValueError):
        p.Frame(p.Type.STREAM, 1, bytes(p.MAX_PAYLOAD + 1)).encode()


# -- the emulated board's application, through the command line ----------------------------

@pytest.fixture(params=["reference", "c-firmware"])
def app_board(request, export_dir, tmp_path):
    """The application on a pty: the plain emulator (the reference answers) or the C firmware
    built for the host, its stdin and stdout on the pty's other end. Both must behave alike."""
    if request.param == "reference":
        proc = subprocess.Popen(SPEECHMASK + ["board", "emulate", "--boot", "flash", "--export",
                                              str(export_dir), "--flash-image",
                                              str(tmp_path / "flash.bin")],
                                stdout=subprocess.PIPE, text=True)
        path = proc.stdout.readline().strip()
        yield path
        from test_serial_flash import _stop

        _stop(proc)
        return
    import tty

    from firmware_export.build import build

    image = build(export_dir, "host", tmp_path / "app", "app")
    master, slave = os.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([str(image.elf)], stdin=master, stdout=master)
    yield os.ttyname(slave)
    proc.kill()
    proc.wait()
    os.close(master)
    os.close(slave)


@pytest.fixture(scope="module")
def utterance(tiny_corpus, tmp_path_factory) -> Path:
    import json

    row = json.loads(tiny_corpus.read_text().splitlines()[0])
    return tiny_corpus.parent / row["path"]


def test_board_stream_check_against_the_emulator(app_board, export_dir, utterance, tmp_path):
    import json

    info = subprocess.run(SPEECHMASK + ["board", "info", "--port", app_board],
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    export_id = json.loads((export_dir / "report.json").read_text())["export_id"]
    assert export_id in info.stdout
    out = tmp_path / "sent.npy"
    done = subprocess.run(SPEECHMASK + ["board", "stream", str(utterance), "--port", app_board,
                                        "--check", "--export", str(export_dir), "--level", "1",
                                        "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "equal the host reference bit for bit" in done.stdout
    gates = np.load(tmp_path / "sent.gates.npy")
    feats = np.load(out)
    assert len(gates) == len(feats) > 0 and feats.dtype == np.int16
    assert (feats[gates[:, 0] == 0] == 0).all()
    again = subprocess.run(SPEECHMASK + ["board", "stream", str(utterance), "--port", app_board,
                                         "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 1 and "exists; add --force" in again.stderr


def test_app_refusals(app_board):
    import serial

    from firmware_export.serial.board_client import BoardClient
    from firmware_export.serial.image import SerialToolError

    with serial.Serial(app_board, 115200, timeout=0.05) as port:
        client = BoardClient(port, app_board, timeout_s=30)
        port.write(os.urandom(200))  # noise on the line first
        assert client.info()["protocol"] == "1"
        with pytest.raises(SerialToolError, match="STREAM refused: BAD_STATE"):
            client.request(p.Type.STREAM, b"\0\0")
        with pytest.raises(SerialToolError, match="STREAM_BEGIN refused: BAD_ARGUMENT"):
            client.request(p.Type.STREAM_BEGIN, (100).to_bytes(1, "little", signed=True))
        with pytest.raises(SerialToolError, match="refused: UNKNOWN_TYPE"):
            client.request(0x7E)
        client.request(p.Type.STREAM_BEGIN, b"\0")
        with pytest.raises(SerialToolError, match="STREAM refused: BAD_ARGUMENT"):
            client.request(p.Type.STREAM, b"\0\0\0")  # half a sample
        bad = bytearray(p.Frame(p.Type.INFO, 99).encode())
        bad[-1] ^= 1
        before = int(client.stats()["bad_frames"])
        port.write(bytes(bad))
        assert int(client.stats()["bad_frames"]) == before + 1


def test_model_upload(app_board, export_dir, utterance, tmp_path):
    """The export's blob becomes the active model; a corrupt blob or one of another export is
    refused at commit and the model in use stays, still bit-exact with the reference."""
    blob = (export_dir / "model.blob").read_bytes()
    corrupt, other = bytearray(blob), bytearray(blob)
    corrupt[200] ^= 1
    other[8] ^= 1  # the header's export id
    for name, data in (("corrupt", corrupt), ("other", other)):
        (tmp_path / f"{name}.blob").write_bytes(bytes(data))

    def upload(path):
        return subprocess.run(SPEECHMASK + ["board", "upload-model", str(path), "--port",
                                            app_board], capture_output=True, text=True,
                              timeout=120)

    done = upload(export_dir / "model.blob")
    assert done.returncode == 0, done.stderr
    assert "the board's model is now uploaded" in done.stdout
    done = upload(tmp_path / "corrupt.blob")
    assert done.returncode == 1 and "MODEL_COMMIT refused: BAD_CRC" in done.stderr
    done = upload(tmp_path / "other.blob")
    assert done.returncode == 1 and "refused: WRONG_EXPORT (made for another export" in done.stderr
    (tmp_path / "short.blob").write_bytes(blob[:-4])
    done = upload(tmp_path / "short.blob")
    assert done.returncode == 1 and "MODEL_BEGIN refused: WRONG_EXPORT" in done.stderr
    stream = subprocess.run(SPEECHMASK + ["board", "stream", str(utterance), "--port", app_board,
                                          "--check", "--export", str(export_dir)],
                            capture_output=True, text=True, timeout=300)
    assert stream.returncode == 0, stream.stderr


def test_model_upload_resumes_from_the_offset_the_board_names(app_board, export_dir):
    import struct
    import zlib

    import serial

    from firmware_export.serial.board_client import BoardClient
    from firmware_export.serial.image import SerialToolError

    blob = (export_dir / "model.blob").read_bytes()
    with serial.Serial(app_board, 115200, timeout=0.05) as port:
        client = BoardClient(port, app_board, timeout_s=30)
        with pytest.raises(SerialToolError, match="MODEL_DATA refused: BAD_STATE"):
            client.request(p.Type.MODEL_DATA, struct.pack("<I", 0) + blob[:16])
        client.request(p.Type.MODEL_BEGIN, struct.pack("<II", len(blob), zlib.crc32(blob)))
        client.request(p.Type.MODEL_DATA, struct.pack("<I", 0) + blob[:1000])
        # a host that lost track sends offset 0 again: refused, naming the offset expected
        with pytest.raises(SerialToolError, match="MODEL_DATA refused: BAD_ARGUMENT") as refused:
            client.request(p.Type.MODEL_DATA, struct.pack("<I", 0) + blob[:10])
        assert refused.value.body == struct.pack("<I", 1000)
        with pytest.raises(SerialToolError, match="MODEL_COMMIT refused: BAD_STATE"):
            client.request(p.Type.MODEL_COMMIT)
        for at in range(1000, len(blob), 1024):  # resumed there, the upload completes
            client.request(p.Type.MODEL_DATA, struct.pack("<I", at) + blob[at:at + 1024])
        client.request(p.Type.MODEL_COMMIT)
        assert client.info()["model"] == "uploaded"
        assert client.upload_model(blob).bytes == len(blob)


def test_board_commands_bad_input(tmp_path, export_dir):
    done = subprocess.run(SPEECHMASK + ["board", "info", "--port", "/nonexistent/tty"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "cannot open the serial port" in done.stderr
    (tmp_path / "x.wav").write_bytes(b"RIFFjunk")
    done = subprocess.run(SPEECHMASK + ["board", "stream", str(tmp_path / "x.wav"), "--port",
                                        "/dev/null", "--check"], capture_output=True, text=True)
    assert done.returncode == 1 and "--check needs --export" in done.stderr
    (tmp_path / "ok.wav").write_bytes(b"")
    done = subprocess.run(SPEECHMASK + ["board", "stream", str(tmp_path / "ok.wav"), "--port",
                                        "/dev/null", "--level", "200"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "--level 200" in done.stderr
    done = subprocess.run(SPEECHMASK + ["board", "emulate", "--boot", "flash"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "--boot flash needs --export" in done.stderr

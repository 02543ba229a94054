"""The firmware's core C (`firmware_export/firmware/core/`), built for the host with gcc from the
headers `speechmask export` generates, against the Python references bit for bit: the front-end
(`speechmask.features_int`) on real TTS utterances and on signals at the edges of its range, in
any chunking, and the send steps (`speechmask.device.send.StreamingSend`) at every warp level."""

from __future__ import annotations

import ctypes
import shutil

import numpy as np
import pytest

from speechmask.api import load_mask
from speechmask.audio import read_adc, to_pcm16
from speechmask.corpus.manifest import read_manifest, resolve_audio
from speechmask.device import send
from speechmask.features_int import StreamingLogMelInt, log_mel_int

from firmware_export.csources import CORE_FILES, BuildError, build_host_library, core_sources
from firmware_export.headers import frontend_header, gates_header

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")

STAMP = {"contract_version": 1, "export_id": "00000000000000aa"}
I16 = ctypes.POINTER(ctypes.c_int16)


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(I16)


@pytest.fixture(scope="module")
def core(mask_path, tmp_path_factory):
    """(library, mask config): the core sources and generated headers built with -Werror."""
    cfg = load_mask(mask_path).cfg
    return _build_core(cfg, tmp_path_factory.mktemp("core")), cfg


def _build_core(cfg, src):
    """The core sources and the headers generated for `cfg`, built with -Werror."""
    from types import SimpleNamespace

    from speechmask.device import input_names, output_names

    for name, data in core_sources().items():
        (src / name).write_bytes(data)
    (src / "speechmask_frontend.h").write_text(frontend_header(cfg.frontend, STAMP))
    n_in, n_out = len(input_names(cfg)), len(output_names(cfg))
    quant = SimpleNamespace(quant_in=[(0.1, 0)] * n_in, quant_out=[(1 / 128, 0)] * n_out,
                            in_pos=list(range(n_in)), out_pos=list(range(n_out)))
    (src / "speechmask_gates.h").write_text(gates_header(cfg, quant, STAMP))
    lib = ctypes.CDLL(str(build_host_library(src, src / "libcore.so")))
    lib.sm_frontend_push.restype = ctypes.c_int32
    lib.sm_frontend_push.argtypes = [ctypes.c_void_p, I16, ctypes.c_int32, I16]
    lib.sm_send_reset.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.sm_send_frame.argtypes = [ctypes.c_void_p, I16, I16]
    return lib


def c_frontend(lib, cfg, pcm: np.ndarray, chunks: list[int]) -> np.ndarray:
    state = ctypes.create_string_buffer(4 * cfg.frontend.win_length + 64)
    lib.sm_frontend_reset(state)
    out, at = [], 0
    for n in chunks:
        piece = np.ascontiguousarray(pcm[at:at + n])
        at += n
        buf = np.zeros((n // cfg.frontend.hop_length + 1, cfg.frontend.n_mels), np.int16)
        k = lib.sm_frontend_push(state, _ptr(piece), n, _ptr(buf))
        out.append(buf[:k])
    return np.concatenate(out) if out else np.zeros((0, cfg.frontend.n_mels), np.int16)


def _chunks(n: int, rng) -> list[int]:
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.choice([1, 7, 160, 399, 400, 641, 3000])))
    sizes[-1] -= sum(sizes) - n
    return sizes


def _test_utterances(manifest, k: int = 4) -> list[np.ndarray]:
    rows = [r for r in read_manifest(manifest) if r["split"] == "test"][:k]
    return [to_pcm16(read_adc(resolve_audio(manifest, r))) for r in rows]


def test_frontend_is_bit_exact_on_tts_speech_in_any_chunking(core, tiny_corpus):
    lib, cfg = core
    rng = np.random.default_rng(0)
    for pcm in _test_utterances(tiny_corpus):
        ref = log_mel_int(pcm, cfg.frontend)
        assert ref.shape[0] > 50
        np.testing.assert_array_equal(c_frontend(lib, cfg, pcm, [pcm.size]), ref)
        np.testing.assert_array_equal(c_frontend(lib, cfg, pcm, _chunks(pcm.size, rng)), ref)


@pytest.mark.parametrize("signal", ["silence", "full_scale_square", "min_dc", "noise", "impulses",
                                    "too_short"])
def test_frontend_is_bit_exact_at_the_edges_of_its_range(core, signal):
    lib, cfg = core
    rng = np.random.default_rng(1)
    n = 16000
    pcm = {"silence": np.zeros(n),
           "full_scale_square": np.where(np.arange(n) // 20 % 2, 32767, -32768),
           "min_dc": np.full(n, -32768),
           "noise": rng.integers(-32768, 32768, n),
           "impulses": np.where(np.arange(n) % 397 == 0, 32767, 0),
           "too_short": rng.integers(-1000, 1000, cfg.frontend.win_length - 1)}[signal]
    pcm = np.asarray(pcm, dtype=np.int16)
    ref = StreamingLogMelInt(cfg.frontend).push(pcm)
    np.testing.assert_array_equal(c_frontend(lib, cfg, pcm, _chunks(pcm.size, rng)), ref)


@pytest.mark.parametrize("layout", [dict(n_fft=1024), dict(n_fft=256, win_ms=15.0),
                                    dict(win_ms=25.0625), dict(hop_ms=10.0625),
                                    dict(window_shift=5, power_shift=9)])
def test_frontend_is_bit_exact_in_other_layouts(tmp_path, layout):
    """Odd log2(n_fft / 2) (one single FFT stage before the fused pairs), an odd window, an odd
    hop (the ring's start odd in an even window), other shifts: the C built from each layout's
    generated header equals the reference."""
    from types import SimpleNamespace

    from speechmask.features import FrontendConfig

    fe = FrontendConfig(**layout)
    for name, data in core_sources().items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "speechmask_frontend.h").write_text(frontend_header(fe, STAMP))
    lib = ctypes.CDLL(str(build_host_library(tmp_path, tmp_path / "libfe.so", ("sm_frontend.c",))))
    lib.sm_frontend_push.restype = ctypes.c_int32
    lib.sm_frontend_push.argtypes = [ctypes.c_void_p, I16, ctypes.c_int32, I16]
    rng = np.random.default_rng(3)
    t = np.arange(8000)
    pcm = (np.sin(t * 0.03 + 0.001 * t ** 1.5) * 9000 + rng.normal(0, 300, t.size)).astype(np.int16)
    ref = log_mel_int(pcm, fe)
    cfg = SimpleNamespace(frontend=fe)
    # whole, and in chunks that leave the ring's start anywhere (odd with an odd window)
    np.testing.assert_array_equal(c_frontend(lib, cfg, pcm, [pcm.size]), ref)
    np.testing.assert_array_equal(c_frontend(lib, cfg, pcm, _chunks(pcm.size, rng)), ref)


def test_send_steps_are_bit_exact_at_every_warp_level(core, tiny_corpus):
    lib, cfg = core
    assert cfg.send.norm and cfg.send.warp, "the default send steps are on"
    _check_send(lib, cfg, log_mel_int(_test_utterances(tiny_corpus, 1)[0], cfg.frontend))


def test_send_with_the_normalisation_s_scale_is_bit_exact(core, tiny_corpus, tmp_path):
    """The scale mode (`SendConfig.norm_scale`), built from its own header, on real and on
    full-range features (the divisor at its floor, saturation)."""
    from dataclasses import replace

    _, cfg = core
    pcms = _test_utterances(tiny_corpus, 3)
    feats = [log_mel_int(p, cfg.frontend) for p in pcms]
    scaled = replace(cfg, send=replace(cfg.send, norm_scale=True, norm_scale_target=()))
    scaled = send.calibrate(scaled, [f.astype(np.float64) / (1 << cfg.frontend.log_frac_bits)
                                     for f in feats[1:]])
    assert scaled.send.norm_scale_target
    lib = _build_core(scaled, tmp_path)
    _check_send(lib, scaled, feats[0])
    noise = np.random.default_rng(0).integers(-32768, 32768, (300, cfg.frontend.n_mels))
    _check_send(lib, scaled, noise.astype(np.int16), levels=(0, cfg.send.warp_levels))


def test_send_with_level_removal_is_bit_exact(core, tiny_corpus, tmp_path):
    """The level step (`SendConfig.level`), built from its own header, after the default steps
    and alone, on real and on full-range features (the sum at its extremes, saturation)."""
    from dataclasses import replace

    _, cfg = core
    pcms = _test_utterances(tiny_corpus, 3)
    feats = [log_mel_int(p, cfg.frontend) for p in pcms]
    scale = 1 << cfg.frontend.log_frac_bits
    leveled = send.calibrate(replace(cfg, send=replace(cfg.send, level=True)),
                             [f.astype(np.float64) / scale for f in feats[1:]])
    assert leveled.send.level_target is not None
    noise = np.random.default_rng(0).integers(-32768, 32768, (300, cfg.frontend.n_mels))
    extremes = np.stack([np.full(cfg.frontend.n_mels, v) for v in (-32768, 32767, -32767)] * 3)
    for i, variant in enumerate((leveled, replace(leveled, send=replace(
            leveled.send, norm_frames=0, warp_max=0.0, level_target=-32768)))):
        (tmp_path / str(i)).mkdir()
        lib = _build_core(variant, tmp_path / str(i))
        levels = None if variant.send.warp else (0,)  # None: every warp level
        _check_send(lib, variant, feats[0], levels=levels)
        _check_send(lib, variant, noise.astype(np.int16), levels=levels)
        _check_send(lib, variant, extremes.astype(np.int16), levels=(0,))


def _check_send(lib, cfg, feats, levels=None):
    state = ctypes.create_string_buffer(8 * cfg.frontend.n_mels + 64)
    for level in levels or range(-cfg.send.warp_levels, cfg.send.warp_levels + 1):
        ref = send.StreamingSend(cfg, level).push(feats)
        assert lib.sm_send_reset(state, level) == 0
        out = np.zeros_like(feats)
        for t in range(len(feats)):
            row, dst = np.ascontiguousarray(feats[t]), out[t]
            lib.sm_send_frame(state, _ptr(row), dst.ctypes.data_as(I16))
        np.testing.assert_array_equal(out, ref, err_msg=f"warp level {level}")


def test_send_reset_refuses_a_level_outside_the_range(core):
    lib, cfg = core
    state = ctypes.create_string_buffer(4 * cfg.frontend.n_mels + 64)
    assert lib.sm_send_reset(state, cfg.send.warp_levels + 1) == -1
    assert lib.sm_send_reset(state, -cfg.send.warp_levels - 1) == -1


def test_a_compile_error_is_one_line_naming_the_compiler(tmp_path):
    for name in CORE_FILES:
        (tmp_path / name).write_text("#error broken\n" if name.endswith(".c") else "")
    with pytest.raises(BuildError, match=r"^gcc .*error"):
        build_host_library(tmp_path, tmp_path / "x.so")

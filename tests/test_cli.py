"""The `speechmask` command: fast help, one-line errors, and the data subcommands end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from speechmask.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechmask", *args], capture_output=True,
                          text=True, timeout=120)


def test_help_imports_nothing_heavy():
    code = ("import sys; from speechmask.cli import get_parser; get_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'librosa', 'matplotlib', 'soundfile') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert run("--help").returncode == 0 and "data" in run("--help").stdout


@pytest.mark.parametrize("args, needle", [
    (["data", "stats", "--manifest", "/nonexistent/m.jsonl"], "/nonexistent/m.jsonl"),
    (["data", "manifest", "--format", "vctk", "--root", "/nonexistent", "--out", "x.jsonl"],
     "/nonexistent"),
    (["data", "plot", "--audio", "/nonexistent.wav", "--out", "OUT"], "/nonexistent.wav"),
])
def test_errors_are_one_line_naming_the_file(tmp_path, args, needle):
    args = [str(tmp_path / "p.png") if a == "OUT" else a for a in args]
    proc = run(*args)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speechmask: error:") and needle in lines[0]


def test_stats_and_plot(tmp_path, tiny_corpus, capsys):
    stats_json = tmp_path / "stats.json"
    assert main(["data", "stats", "--manifest", str(tiny_corpus), "--frontend", "2",
                 "--json", str(stats_json)]) == 0
    stats = json.loads(stats_json.read_text())
    assert stats["utterances"] == 24 and stats["speakers"] == 6
    assert stats["frontend"]["snr_db_min"] >= 30
    assert "front-end parity" in capsys.readouterr().out
    png = tmp_path / "speakers.png"
    for extra in ([], ["--integer", "--force"]):
        assert main(["data", "plot", "--manifest", str(tiny_corpus), "--out", str(png), *extra]) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):  # refuses to overwrite without --force
        main(["data", "plot", "--manifest", str(tiny_corpus), "--out", str(png)])
    with pytest.raises(SystemExit):
        main(["data", "plot", "--manifest", str(tiny_corpus), "--id", "nope", "--out",
              str(tmp_path / "x.png")])


def test_synth_from_the_cli(tmp_path, capsys):
    out = tmp_path / "c"
    args = ["data", "synth", "--out", str(out), "--speakers", "2", "--utterances-per-speaker",
            "2", "--engines", "espeak-ng", "--jobs", "1"]
    assert main(args) == 0
    assert "4 utterances" in capsys.readouterr().out
    assert main(args) == 0  # resumes: nothing to render
    assert "0 rendered, 4 already there" in capsys.readouterr().out


def test_the_distribution_installs_all_three_packages():
    code = ("import importlib.metadata as m, attacks, firmware_export, speechmask; "
            "print(m.version('speechmask'), attacks.__doc__ is not None, "
            "firmware_export.__doc__ is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [speechmask_version(), "True", "True"]


def speechmask_version() -> str:
    import speechmask

    return speechmask.__version__

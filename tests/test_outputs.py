"""Output checks and output sets: data-derived paths stay inside their folder, a folder is
replaced whole or not at all, and an interrupted replacement is finished or undone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speechmask.outputs import (OutputError, OutputFolder, check_new_file, check_writable_folder,
                                confined)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=3))
def test_confined_paths_never_leave_their_folder(tmp_path_factory, parts):
    root = tmp_path_factory.getbasetemp() / "root"
    try:
        path = confined(root, parts, "m.jsonl:3")
    except OutputError as exc:
        assert str(exc).startswith("m.jsonl:3: ")
        return
    resolved = Path(os.path.abspath(path))
    assert resolved.is_relative_to(Path(os.path.abspath(root)))
    assert len(resolved.relative_to(os.path.abspath(root)).parts) == len(parts)


@pytest.mark.parametrize("part", ["..", "../x", "/etc/passwd", "a/b", "a\\b", ".", "", "~root",
                                  "x\ny", "\x00"])
def test_confined_refuses_what_is_not_one_plain_name(tmp_path, part):
    with pytest.raises(OutputError, match="m.jsonl:7"):
        confined(tmp_path, ["spk", part], "m.jsonl:7")


def test_new_files_and_folders_are_checked_before_any_work(tmp_path):
    (tmp_path / "old.pt").write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists"):
        check_new_file(tmp_path / "old.pt", force=False)
    check_new_file(tmp_path / "old.pt", force=True)
    check_new_file(tmp_path / "new" / "deeper" / "x.pt", force=False)  # creatable
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        check_writable_folder(tmp_path / "file" / "sub")
    with pytest.raises(OutputError, match="is a folder"):
        check_new_file(tmp_path, force=True)
    assert (tmp_path / "old.pt").read_bytes() == b"keep" and not (tmp_path / "new").exists()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_set(folder: Path, force: bool, text: str, fail: bool = False) -> None:
    out = OutputFolder(folder, force, owned=["report.json", "a.txt"], keep=["cache"])
    out.check()
    with out.staged() as staging:
        (staging / "report.json").write_text(text)
        if fail:
            raise KeyboardInterrupt
        (staging / "a.txt").write_text(text)


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "out"
    _write_set(out, False, "one")
    (out / "cache").mkdir()
    (out / "cache" / "net.pt").write_bytes(b"trained")
    before = _files(out)
    with pytest.raises(OutputError, match="already exists"):
        _write_set(out, False, "two")
    with pytest.raises(KeyboardInterrupt):  # interrupted while writing the new set
        _write_set(out, True, "two", fail=True)
    assert _files(out) == before and sorted(os.listdir(tmp_path)) == ["out"]
    _write_set(out, True, "two")  # the new set, the cache carried over
    assert _files(out) == {"a.txt": b"two", "cache/net.pt": b"trained", "report.json": b"two"}
    assert sorted(os.listdir(tmp_path)) == ["out"]
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(OutputError, match="thesis.txt: not written by this command"):
        _write_set(out, True, "three")
    assert (out / "thesis.txt").read_text() == "precious"


def test_an_interrupted_replacement_is_undone_or_finished(tmp_path, capsys):
    out = tmp_path / "out"
    _write_set(out, False, "one")
    (out / "cache").mkdir()
    (out / "cache" / "net.pt").write_bytes(b"trained")
    # killed between setting the old folder aside and renaming the new one in
    os.rename(out, tmp_path / ".out.old-abc")
    (tmp_path / ".out.staging-999999999-x").mkdir()
    OutputFolder(out, False, owned=["report.json", "a.txt"], keep=["cache"]).recover()
    assert _files(out) == {"a.txt": b"one", "cache/net.pt": b"trained", "report.json": b"one"}
    assert "restored" in capsys.readouterr().err and sorted(os.listdir(tmp_path)) == ["out"]
    # killed after the new folder was renamed in, before the cache was carried over
    os.rename(out, tmp_path / ".out.old-def")
    out.mkdir()
    (out / "report.json").write_text("two")
    (out / "a.txt").write_text("two")
    OutputFolder(out, True, owned=["report.json", "a.txt"], keep=["cache"]).recover()
    assert _files(out) == {"a.txt": b"two", "cache/net.pt": b"trained", "report.json": b"two"}
    assert "finished replacing" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_folder_another_process_is_writing_is_refused(tmp_path):
    (tmp_path / f".out.staging-{os.getppid()}-x").mkdir()  # a live process: our parent
    with pytest.raises(OutputError, match="another speechmask process"):
        OutputFolder(tmp_path / "out", False, owned=["a"]).check()

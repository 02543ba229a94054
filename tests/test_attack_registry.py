"""The attack suite's registry of protections and its command line: every system registered and
costed before it is built, a system added from outside runs without touching the suite, CLI
defaults and choices read from the configs and the registry, bad flags and inputs refused in one
line before anything is written, and report sets replaced whole or not at all."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import shutil
from pathlib import Path

import numpy as np
import pytest

import attacks.systems as registry
from attacks.config import BaselineConfig, ContentConfig, SpeakerConfig, SuiteConfig
from attacks.data import Sent, SuiteData
from attacks.fit import Cache
from attacks.suite import Suite
from attacks.systems import COST_KEYS, Registration, System
from speechmask.api import load_mask, load_slu
from speechmask.cli import get_parser, main
from speechmask.device import mask_cost
from speechmask.errors import ConfigError
from speechmask.options import field_default, options_of

BUILT_IN = ("all_offload", "random", "mcadams", "vae", "ppslu", "speechmask", "speechmask_int8",
            "on_device")


class Louder(System):
    """A test-only protection: every log-mel value raised by 1, nothing computed on the device."""

    expected_cost = 1.0

    def build(self, suite: Suite) -> Sent:
        return Sent([f + np.float32(1) for f in suite.data.fs.features], open_fraction=1.0)

    def cost(self, suite: Suite) -> dict[str, int]:
        return dict.fromkeys(COST_KEYS, 0)


@pytest.fixture
def louder():
    registry.register(Registration("louder", Louder, "test only: every value raised by 1"))
    yield "louder"
    registry.unregister("louder")


@pytest.fixture(scope="module")
def data(tiny_corpus, slu_path):
    return SuiteData.load(tiny_corpus, load_slu(slu_path).cfg.frontend, progress=False)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder` and beside it (staging or set-aside siblings) with its bytes."""
    found: dict[str, bytes | None] = {}
    for path in sorted(folder.parent.rglob("*")):
        if path == folder or folder in path.parents or path.name.startswith(f".{folder.name}."):
            found[str(path.relative_to(folder.parent))] = path.read_bytes() if path.is_file() \
                else None
    return found


def attack_args(corpus: Path, slu: Path, out: Path, *extra: str) -> list[str]:
    return ["attack", "--manifest", str(corpus), "--slu", str(slu), "--out", str(out),
            "--max-steps", "1", "--beam-width", "4", "--quiet", *extra]


# the registry
def test_the_registry_lists_every_system_in_report_order():
    assert registry.names() == BUILT_IN
    assert registry.baselines() == ("all_offload", "random", "mcadams", "vae", "ppslu",
                                    "on_device")
    assert registry.default_systems() == tuple(n for n in BUILT_IN if n != "speechmask_int8")
    assert SuiteConfig().systems == registry.default_systems()
    # every System class in the package's modules is registered
    classes = {registry.get(n).create().__class__ for n in registry.names()}
    for info in pkgutil.iter_modules(registry.__path__):
        module = importlib.import_module(f"attacks.systems.{info.name}")
        defined = {v for v in vars(module).values() if isinstance(v, type)
                   and System in v.__mro__[1:] and v.__module__ == module.__name__}
        assert defined <= classes, f"{info.name} defines an unregistered system"


def test_systems_are_chosen_by_baselines_and_by_what_is_given():
    assert registry.choose(["on_device", "random"], []) == ("random", "on_device")
    assert registry.choose([], ["mask"]) == ("speechmask",)
    assert registry.choose([], ["int8_model"]) == ()
    assert registry.choose(["all_offload"], ["mask", "int8_model"]) == (
        "all_offload", "speechmask", "speechmask_int8")


@pytest.mark.parametrize("entry, needle", [
    (Registration("vae", Louder, "taken"), "already registered"),
    (Registration("none", Louder, "the CLI's word for no baseline"), "identifier other than"),
    (Registration("asr", Louder, "a shared attacker's name"), "identifier other than"),
    (Registration("two words", Louder, "not a name"), "identifier other than"),
    (Registration("x", Louder, "unknown need", needs=("gpu",)), "needs 'gpu'"),
])
def test_registering_a_bad_system_is_refused(entry, needle):
    with pytest.raises(ConfigError, match=needle):
        registry.register(entry)
    assert registry.names() == BUILT_IN


def test_cost_works_before_build_for_every_system(data, slu_path, mask_path):
    mask = load_mask(mask_path)
    suite = Suite(data, load_slu(slu_path), mask, SuiteConfig(systems=registry.names()),
                  Cache(None), progress=False)
    for name in registry.names():
        cost = suite.cost(name)
        assert set(cost) == set(COST_KEYS) and all(isinstance(v, int) for v in cost.values())
    assert suite.system("vae").model is None and suite.system("ppslu").trained is None
    device = mask_cost(mask)
    assert suite.cost("speechmask") == suite.cost("speechmask_int8") == {
        k: device[k] for k in COST_KEYS}
    assert all(suite.cost(n)["params"] > 0 for n in ("vae", "ppslu", "on_device"))


def test_a_system_registered_outside_the_suite_runs_through_it(louder, tiny_corpus, slu_path,
                                                               tmp_path, capsys):
    out = tmp_path / "attack"
    assert main(attack_args(tiny_corpus, slu_path, out, "--baselines", louder,
                            "--attacks", "passive")) == 0
    report = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in report["systems"]] == [louder]
    row = report["systems"][0]
    assert row["cost"] == dict.fromkeys(COST_KEYS, 0) and row["metrics"]["open_fraction"] == 1.0
    assert row["metrics"]["wer_passive"] is not None and row["metrics"]["intent_acc"] is not None
    assert "| louder |" in (out / "report.md").read_text()


# the command line
def attack_parsers() -> list[argparse.ArgumentParser]:
    """`attack` and `attack sweep`, as `speechmask` builds them."""
    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return action.choices[name]

    attack = sub(get_parser(), "attack")
    return [attack, sub(attack, "sweep")]


def test_baselines_choices_and_defaults_are_the_registry(louder):
    action = next(a for a in attack_parsers()[0]._actions if a.dest == "baselines")
    assert action.choices == list(registry.baselines()) + ["none"]
    assert action.default == list(registry.baselines()) and louder in action.default


def test_cli_defaults_equal_the_config_defaults():
    for parser in attack_parsers():
        tables = options_of(parser)
        assert set(tables[SuiteConfig]) == {"attacks", "seed", "max_steps", "beam_width",
                                            "pocketsphinx_utterances", "pocketsphinx_lm",
                                            "strength"}
        by_dest = {a.dest: a for a in parser._actions}
        for cls, table in tables.items():
            for name, flag in table.items():
                action = by_dest[name]
                assert flag in action.option_strings
                default = tuple(action.default) if isinstance(action.default, list) \
                    else action.default
                assert default == field_default(cls, name), (parser.prog, flag)
                choices = cls.__dataclass_fields__[name].metadata.get("choices")
                assert action.choices == choices


@pytest.mark.parametrize("extra, flag", [
    (["--max-steps", "0"], "--max-steps"),
    (["--seed", "-1"], "--seed"),
    (["--pocketsphinx-max", "0"], "--pocketsphinx-max"),
])
@pytest.mark.parametrize("command", ["attack", "sweep"])
def test_bad_values_are_one_line_and_leave_the_folder_as_it_was(command, extra, flag, tiny_corpus,
                                                                slu_path, tmp_path, capsys):
    out = tmp_path / "attack"
    (out / "cache").mkdir(parents=True)
    (out / "report.json").write_text("{}\n")
    (out / "cache" / "asr-clean-0.pt").write_bytes(b"weights")
    before = snapshot(out)
    args = attack_args(tiny_corpus, slu_path, out, *extra)
    if command == "sweep":
        args = ["attack", "sweep", *args[1:], "--gammas", "0.1"]
        (out / "report.json").unlink()
        before = snapshot(out)
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speechmask: error: " + flag)
    assert snapshot(out) == before


@pytest.mark.parametrize("extra, flag", [(["--mask-steps", "0"], "--mask-steps"),
                                         (["--gammas", "-1"], "--gammas"),
                                         (["--switch-costs", "-1"], "--switch-costs")])
def test_bad_sweep_values_name_their_flag(extra, flag, tiny_corpus, slu_path, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["attack", "sweep", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
            "--out", str(out), "--quiet", "--gammas", "0.1", *extra]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    assert capsys.readouterr().err.startswith("speechmask: error: " + flag)
    assert not out.exists()


@pytest.mark.parametrize("swap, needle", [
    ("slu", "is a 'mask' checkpoint, expected 'slu'"),
    ("mask", "is a 'slu' checkpoint, expected 'mask'"),
    ("slu_masked", "is a 'mask' checkpoint, expected 'slu'"),
    ("manifest", "no such manifest"),
    ("foreign", "not written by this command"),
    ("earlier", "already exists (use --force"),
])
def test_inputs_and_output_are_checked_before_any_work(swap, needle, tiny_corpus, slu_path,
                                                       mask_path, tmp_path, capsys):
    out = tmp_path / "attack"
    paths = {"manifest": tiny_corpus, "slu": slu_path, "mask": mask_path,
             "slu_masked": slu_path}
    if swap in ("slu", "slu_masked", "mask"):
        paths[swap] = mask_path if swap != "mask" else slu_path
    elif swap == "manifest":
        paths["manifest"] = tmp_path / "missing.jsonl"
    out.mkdir()
    if swap in ("foreign", "earlier"):
        (out / ("notes.txt" if swap == "foreign" else "report.md")).write_text("mine\n")
    before = snapshot(out)
    with pytest.raises(SystemExit) as exc:
        main(["attack", "--manifest", str(paths["manifest"]), "--slu", str(paths["slu"]),
              "--mask", str(paths["mask"]), "--slu-masked", str(paths["slu_masked"]),
              "--out", str(out), "--quiet"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert snapshot(out) == before


def test_sweep_refuses_a_left_over_mask_it_cannot_resume(tiny_corpus, slu_path, tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    shutil.copy(slu_path, out / "mask_gamma0.1.pt")
    before = snapshot(out)
    with pytest.raises(SystemExit):
        main(["attack", "sweep", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
              "--out", str(out), "--gammas", "0.1", "--quiet"])
    assert "mask_gamma0.1.pt: is a 'slu' checkpoint" in capsys.readouterr().err
    assert snapshot(out) == before


def test_an_interrupted_report_write_leaves_the_previous_report_set(tiny_corpus, slu_path,
                                                                    tmp_path, monkeypatch):
    out = tmp_path / "attack"
    args = attack_args(tiny_corpus, slu_path, out, "--baselines", "all_offload",
                       "--attacks", "passive")
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "examples.png",
                                               "cache"}
    before = snapshot(out)

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted while plotting")

    monkeypatch.setattr("attacks.report.plot_examples", broken)
    with pytest.raises(RuntimeError, match="interrupted while plotting"):
        main(args + ["--force", "--seed", "1"])  # new attackers: the cache grows
    after = snapshot(out)
    cache = str(Path(out.name) / "cache")
    assert {k: v for k, v in after.items() if not k.startswith(cache)} == \
        {k: v for k, v in before.items() if not k.startswith(cache)}
    assert before.items() <= after.items() and len(after) > len(before)


@pytest.mark.parametrize("make, field", [
    (lambda: SuiteConfig(seed=-1), "seed"),
    (lambda: SuiteConfig(max_steps=0), "max_steps"),
    (lambda: SuiteConfig(pocketsphinx_utterances=0), "pocketsphinx_utterances"),
    (lambda: SuiteConfig(pocketsphinx_lm="trigram"), "pocketsphinx_lm"),
    (lambda: SuiteConfig(attacks=("passive", "lip_reading")), "attacks"),
    (lambda: SuiteConfig(systems=("all_offload", "nope")), "systems"),
    (lambda: SuiteConfig(slu_finetune_steps=0), "slu_finetune_steps"),
    (lambda: BaselineConfig(random_open=1.5), "random_open"),
    (lambda: BaselineConfig(ppslu_steps=0), "ppslu_steps"),
    (lambda: BaselineConfig(ppslu_warmup=-0.1), "ppslu_warmup"),
    (lambda: ContentConfig(asr_lr=0.0), "asr_lr"),
    (lambda: SpeakerConfig(enroll_per_speaker=0), "enroll_per_speaker"),
])
def test_configs_refuse_bad_values_naming_the_field(make, field):
    with pytest.raises(ConfigError) as exc:
        make()
    assert exc.value.field == field and str(exc.value).startswith(field)

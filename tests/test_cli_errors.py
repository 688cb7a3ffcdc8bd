"""Every user error of the ``netprism`` command is one line on stderr and exit status 2, names
the offending value and what was expected, and writes or loses nothing; only a bug prints a
traceback.  One test per probe of issue 20 (items 5 and 6)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import netprism.cli as cli
from netprism.cli import main
from netprism.experiments.base import Result
from netprism.io import LOCK_NAME
from netprism.lm import ByteLM, LMConfig, save_lm
from netprism.lm.lora import HEADER_KEY

DEEP = 5000  # Python's JSON parser recursed once per level: RecursionError


def _listing(folder):
    return sorted(
        (str(p.relative_to(folder)), p.read_bytes() if p.is_file() else b"")
        for p in folder.rglob("*")
    )


def _status(argv):
    """``main(argv)``'s exit status, whether returned or raised by argparse."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def refused(argv, capsys, *named, folder=None):
    """``main(argv)`` exits 2 with one line on stderr naming each of ``named``, no traceback,
    and ``folder`` (when given) unchanged; returns the line."""
    before = _listing(folder) if folder is not None else None
    capsys.readouterr()
    code = _status(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "error:" in err, err
    for word in named:
        assert word in err, err
    if folder is not None:
        assert _listing(folder) == before
    return err.strip()


@pytest.fixture
def fake_execute(monkeypatch):
    """``execute`` that only writes ``result.json`` (what is tested is the CLI around it)."""
    calls = []

    def execute(name, *, scale, out_dir, **overrides):
        calls.append((name, out_dir))
        result = Result(name=name, config=dict(overrides), metrics={"x": 1.0})
        result.save(out_dir)
        return result

    monkeypatch.setattr(cli, "execute", execute)
    return calls


# --- --out ----------------------------------------------------------------------------------


def test_out_an_existing_file_is_refused_and_not_clobbered(tmp_path, capsys, fake_execute):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    refused(["run", "train", "--out", str(target)], capsys, "notes.txt", "a file", folder=tmp_path)
    assert not fake_execute


def test_out_under_a_file_is_refused(tmp_path, capsys, fake_execute):
    (tmp_path / "f").write_text("keep me")
    sub = str(tmp_path / "f" / "sub")
    refused(["run", "train", "--out", sub], capsys, sub, "is a file", folder=tmp_path)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_out_an_unwritable_system_path_is_refused(capsys, fake_execute):
    refused(["run", "train", "--out", "/proc/self/netprism-out"], capsys, "/proc/self/netprism-out")
    assert not fake_execute


def test_out_empty_is_refused(tmp_path, capsys, monkeypatch, fake_execute):
    monkeypatch.chdir(tmp_path)
    refused(["run", "train", "--out", ""], capsys, "--out", "expected a path", folder=tmp_path)
    refused(["reproduce", "train", "--out", " "], capsys, "--out", folder=tmp_path)
    refused(["lm", "train", "--out", ""], capsys, "--out", folder=tmp_path)


def test_out_holding_something_else_is_refused_unless_overwrite(tmp_path, capsys, fake_execute):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"\xff\xd8")
    refused(
        ["run", "train", "--out", str(out)],
        capsys,
        "photos",
        "not empty",
        "--overwrite",
        folder=tmp_path,
    )
    assert main(["run", "train", "--out", str(out), "--overwrite"]) == 0
    assert (out / "cat.jpg").read_bytes() == b"\xff\xd8" and (out / "result.json").is_file()
    assert not (out / LOCK_NAME).exists()


def test_out_of_another_experiment_is_refused_and_kept(tmp_path, capsys, fake_execute):
    out = tmp_path / "run"
    assert main(["run", "train", "--out", str(out)]) == 0
    refused(["run", "gpm", "--out", str(out)], capsys, "a run of 'gpm'", folder=tmp_path)
    assert json.loads((out / "result.json").read_text())["name"] == "train"


def test_out_of_the_same_experiment_is_run_again(tmp_path, capsys, fake_execute):
    out = tmp_path / "run"
    assert main(["run", "train", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", "train", "--out", str(out), "--epochs", "2"]) == 0
    assert "writing over the previous run of 'train'" in capsys.readouterr().err
    assert json.loads((out / "result.json").read_text())["config"]["epochs"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]  # lock removed


def test_a_run_refused_after_the_checks_leaves_no_folder(tmp_path, capsys, monkeypatch):
    def refuse(name, *, scale, out_dir, **overrides):
        raise ValueError("unknown model 'nope'")

    monkeypatch.setattr(cli, "execute", refuse)
    out = tmp_path / "a" / "b"
    refused(["run", "train", "--out", str(out), "--model", "nope"], capsys, "'nope'")
    assert not (tmp_path / "a").exists()


# --- item 6: two runs into one folder ---------------------------------------------------------


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path, capsys, fake_execute):
    out = tmp_path / "run"
    assert main(["run", "train", "--out", str(out)]) == 0
    (out / LOCK_NAME).write_text(f"{os.getpid()}\ntrain\n")  # a live run writing it
    line = refused(
        ["run", "train", "--out", str(out)], capsys, str(out), f"pid {os.getpid()}", folder=tmp_path
    )
    assert "in use by another netprism run" in line
    assert len(fake_execute) == 1


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, capsys, fake_execute):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(f"{dead.pid}\ntrain\n")  # a run of train killed early
    capsys.readouterr()
    assert main(["run", "train", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "stale lock" in err and str(dead.pid) in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]


def test_reproduce_into_a_locked_folder_is_refused(tmp_path, capsys, fake_execute):
    out = tmp_path / "rep"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{os.getpid()}\nreproduce\n")
    refused(["reproduce", "train", "--out", str(out)], capsys, str(out), folder=tmp_path)


# --- numeric options of `netprism run NAME` ---------------------------------------------------


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--lr", "inf", "finite number > 0 and <= 100"),
        ("--lr", "1e30", "finite number > 0 and <= 100"),
        ("--lr", "nan", "finite number > 0 and <= 100"),
        ("--lr", "0", "finite number > 0 and <= 100"),
        ("--lr", "-0.1", "finite number > 0 and <= 100"),
        ("--seed", "99999999999999999999999", "int >= 0 and <= 4294967295"),
        ("--seed", "-1", "int >= 0 and <= 4294967295"),
        ("--epochs", "-3", "int >= 0"),
        ("--epochs", "1e3", "int"),
        ("--batch-size", "0", "int >= 1"),
        ("--target-accuracy", "nan", "finite number"),
    ],
)
def test_run_numeric_option_out_of_range(tmp_path, capsys, flag, value, expected, fake_execute):
    argv = ["run", "train", "--out", str(tmp_path / "o"), flag, value]
    refused(argv, capsys, flag, repr(value), expected, folder=tmp_path)
    assert not fake_execute


@pytest.mark.parametrize(
    "argv, named",
    [
        (["run", "hierarchy", "--threads", "-1"], ["--threads", "'-1'", "0: torch's default"]),
        (["run", "hierarchy", "--threads", "100000"], ["--threads", "<= 1024"]),
        (["run", "afm", "--seeds", "0,1,99999999999"], ["--seeds", "'0,1,99999999999'"]),
        (["run", "memorization", "--lrs", "0.1,inf"], ["--lrs", "'0.1,inf'"]),
        (["run", "snn_pruning", "--retrain-rules", "membrane"], ["--retrain-rules", "str:float"]),
    ],
)
def test_other_experiments_numeric_options(tmp_path, capsys, argv, named, fake_execute):
    refused([*argv, "--out", str(tmp_path / "o")], capsys, *named, folder=tmp_path)


def test_threads_zero_means_torch_default_and_is_documented(capsys):
    assert main(["run", "hierarchy", "--help"]) == 0
    assert "0: torch's default" in capsys.readouterr().out


def test_tuple_of_pairs_parses(tmp_path, fake_execute):
    out = tmp_path / "o"
    assert main(["run", "snn_pruning", "--out", str(out), "--retrain-rules", "membrane:0.9"]) == 0
    assert fake_execute[0][0] == "snn_pruning"


# --- netprism lm ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--top-k", "0", "int >= 1 and <= 256"),
        ("--top-k", "257", "int >= 1 and <= 256"),
        ("--temperature", "nan", "finite number >= 0"),
        ("--temperature", "-1", "finite number >= 0"),
        ("--temperature", "inf", "finite number >= 0"),
        ("--max-bytes", "0", "int >= 1"),
        ("--max-bytes", "-5", "int >= 1"),
        ("--seed", "99999999999999999999999", "int >= 0 and <= 4294967295"),
    ],
)
def test_lm_generate_numeric_options(tmp_path, capsys, flag, value, expected):
    argv = ["lm", "generate", "--model", str(tmp_path), flag, value]
    refused(argv, capsys, flag, repr(value), expected, folder=tmp_path)


@pytest.mark.parametrize(
    "flag, value",
    [("--lr", "inf"), ("--lr", "1e30"), ("--steps", "0"), ("--kv-share", "2"), ("--seed", "-1")],
)
def test_lm_train_numeric_options(tmp_path, capsys, flag, value):
    argv = ["lm", "train", "--out", str(tmp_path / "m"), flag, value]
    refused(argv, capsys, flag, repr(value), folder=tmp_path)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    config = LMConfig(context=16, n_layers=1, d_model=16, n_heads=2, n_kv_heads=1)
    torch.manual_seed(0)
    save_lm(ByteLM(config), config, folder)
    return folder


def _deep(levels=DEEP):
    return "[" * levels + "]" * levels


def test_lm_deep_config_json(tmp_path, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(_deep())
    refused(
        ["lm", "generate", "--model", str(model)],
        capsys,
        "config.json",
        "nested deeper than 64",
        folder=tmp_path,
    )


def test_lm_deep_lora_header(tiny_model, tmp_path, capsys):
    adapter = tmp_path / "a.safetensors"
    save_file({"x": torch.zeros(1)}, str(adapter), metadata={HEADER_KEY: _deep()})
    argv = ["lm", "generate", "--model", str(tiny_model), "--adapter", str(adapter)]
    refused(argv, capsys, "a.safetensors", "nested deeper than 64", folder=tmp_path)


def test_lm_deep_schema(tiny_model, tmp_path, capsys):
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object", "properties": {"a": ' * DEEP + "{}" + "}}" * DEEP)
    argv = ["lm", "generate", "--model", str(tiny_model), "--schema", str(schema)]
    refused(argv, capsys, "s.json", "nested deeper than 64", folder=tmp_path)


def test_lm_schema_not_an_object(tiny_model, tmp_path, capsys):
    schema = tmp_path / "s.json"
    schema.write_text("[1, 2]")
    argv = ["lm", "generate", "--model", str(tiny_model), "--schema", str(schema)]
    refused(argv, capsys, "s.json", "expected an object", folder=tmp_path)


def test_lm_train_into_a_previous_model_or_a_foreign_folder(tmp_path, capsys, monkeypatch):
    import netprism.cli.lm as lm_cli

    def fake_train(args):
        (args.out / "config.json").write_text("{}")
        return 0

    monkeypatch.setattr(lm_cli, "_train_into", fake_train)
    model = tmp_path / "m"
    assert main(["lm", "train", "--out", str(model)]) == 0
    assert main(["lm", "train", "--out", str(model)]) == 0  # a model again: fine
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("keep me")
    refused(["lm", "train", "--out", str(other)], capsys, "other", "not empty", folder=tmp_path)


def test_json_depth_limit_skips_strings():
    from netprism.io import JSONTooDeepError, load_json

    assert load_json('{"a": "[[[[[[[["}', max_depth=1) == {"a": "[[[[[[[["}
    with pytest.raises(JSONTooDeepError, match="x.json is nested deeper than 2"):
        load_json("[[[1]]]", max_depth=2, name="x.json")


def test_lm_train_out_a_file(tmp_path, capsys):
    target = tmp_path / "weights"
    target.write_text("keep me")
    refused(["lm", "train", "--out", str(target)], capsys, "weights", "a file", folder=tmp_path)


def test_lm_adapt_out_a_folder_or_a_foreign_file(tiny_model, tmp_path, capsys):
    refused(
        ["lm", "adapt", "--model", str(tiny_model), "--out", str(tmp_path)], capsys, "is a folder"
    )
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    argv = ["lm", "adapt", "--model", str(tiny_model), "--out", str(other)]
    refused(argv, capsys, "notes.txt", "--overwrite", folder=tmp_path)


# --- netprism report ------------------------------------------------------------------------


def test_report_a_file_says_it_expects_a_folder(tmp_path, capsys):
    result = tmp_path / "result.json"
    result.write_text("{}")
    refused(["report", str(result)], capsys, "expects a run folder", "result.json", folder=tmp_path)
    refused(["report", str(tmp_path / "missing")], capsys, "does not exist")


def test_report_a_deep_result_json(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "result.json").write_text(_deep())
    refused(["report", str(tmp_path)], capsys, "result.json", folder=tmp_path)


# --- internal errors ------------------------------------------------------------------------


def test_a_bug_prints_a_hint_then_the_traceback(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "execute", broken)
    assert main(["run", "train", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("netprism: internal error") and "Traceback" in err
    assert not (tmp_path / "o").exists()


def test_one_line_messages_through_the_real_entry_point(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "netprism",
            "lm",
            "generate",
            "--model",
            str(tmp_path),
            "--top-k",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--top-k" in proc.stderr

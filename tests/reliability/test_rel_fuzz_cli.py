"""Hypothesis fuzzing of the ``netprism`` command line: random argument vectors (known options
with garbage, extreme, empty or unicode values, unknown flags, stray words) must end with status
0 or 2, never a traceback or another status, and a status 2 is one line on stderr.

No experiment, training or generation runs: ``execute`` and ``lm train``'s work are replaced by
stubs, and ``--model`` only ever names something that is not a model, so each vector costs only
its parsing, validation and output-folder checks.  Everything relative lands in ``tmp_path``
(the working folder of the test), and path values never start with ``/`` or climb with ``..``.
"""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netprism.cli as cli
import netprism.cli.lm as lm_cli
from netprism.cli import config_parser, main
from netprism.experiments import EXPERIMENTS, Result, load_experiments

FUZZ = settings(
    max_examples=150,
    database=None,  # no .hypothesis folder in the work tree; seeds vary per run (not in CI)
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FAST_S = 5.0  # one vector: parsing and checks only

load_experiments()
NAMES = EXPERIMENTS.names()
RUN_FLAGS = {
    name: sorted(
        {
            s
            for a in config_parser(name, EXPERIMENTS.get(name).config_cls)._actions
            for s in a.option_strings
        }
    )
    for name in NAMES
}
LM_FLAGS = {
    action: sorted({s for a in parser._actions for s in a.option_strings})
    for action, parser in lm_cli._parser()._subparsers._group_actions[0].choices.items()
}

NUMBERS = st.sampled_from(
    [
        "0",
        "1",
        "-1",
        "2",
        "0.5",
        "-0.0",
        "1e30",
        "-1e30",
        "1e308",
        "1e400",
        "-1e400",
        "inf",
        "-inf",
        "nan",
        "NaN",
        "99999999999999999999999",
        "-99999999999999999999999",
        "2147483648",
        "4294967296",
        "1" * 400,
        "1" * 5000,
        "-" + "9" * 400,
        "1e3",
        "0x10",
        "1_000",
        " 7 ",
        "٣",
        "3.",
        ".5",
        "1,2,3",
        "0,inf",
        "a:0.5",
        "none",
        "None",
        "true",
    ]
)
GARBAGE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
PATHS = st.sampled_from(["", " ", "out", "afile", "afile/sub", "full", "new/deep/er", "ü", "."]) | (
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/\\."),
        min_size=1,
        max_size=8,
    )
)
UNKNOWN = st.sampled_from(["--nope", "--epoch", "-x", "--", "---", "--lr=", "-", "--out="])


def _options(flags):
    """Pairs of (flag, value) and lone words, flattened into argv words."""
    value = NUMBERS | GARBAGE
    pair = st.tuples(st.sampled_from(flags), value).map(list)
    path_pair = st.tuples(
        st.sampled_from(["--out", "--model", "--schema", "--adapter"]), PATHS
    ).map(list)
    lone = st.one_of(st.sampled_from(flags), UNKNOWN, GARBAGE).map(lambda w: [w])
    return st.lists(st.one_of(pair, pair, path_pair, lone), max_size=5).map(
        lambda groups: [w for g in groups for w in g]
    )


def _run_argv():
    names = st.sampled_from(NAMES)
    return names.flatmap(
        lambda n: _options(RUN_FLAGS[n]).map(lambda rest: ["run", n, *rest])
    ) | st.tuples(st.sampled_from(["trian", "", "ü", "-h"]), GARBAGE).map(lambda t: ["run", *t])


REQUIRED = {"train": ["--out"], "generate": ["--model"], "adapt": ["--model", "--out"]}


def _lm_argv():
    """Mostly with the action's required options (paths that are no model), then the rest."""

    def for_action(action):
        required = st.tuples(*(PATHS.map(lambda p, f=f: [f, p]) for f in REQUIRED[action]))
        given = required.map(lambda groups: [w for g in groups for w in g])
        prefix = st.one_of(given, given, given, st.just([]))
        return st.tuples(prefix, _options(LM_FLAGS[action])).map(
            lambda parts: ["lm", action, *parts[0], *parts[1]]
        )

    return st.sampled_from(sorted(LM_FLAGS)).flatmap(for_action)


def _other_argv():
    return st.one_of(
        st.tuples(st.just("report"), PATHS).map(list),
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=2).flatmap(
            lambda names: _options(["--out", "--scale", "--overwrite", "--demo"]).map(
                lambda rest: ["reproduce", *names, *rest]
            )
        ),
        st.lists(GARBAGE | UNKNOWN, max_size=3),
        st.just(["list"]),
    )


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Work in ``tmp_path`` with the expensive parts stubbed; a file and a non-empty folder
    to trip over."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")

    def execute(name, *, scale, out_dir, **overrides):
        return Result(name=name, config={}, metrics={})

    def in_processes(names, scale, out, jobs, on_done):  # `reproduce --jobs N` without work
        for name in names:
            on_done(execute(name, scale=scale, out_dir=out / name))
        return 0

    monkeypatch.setattr(cli, "execute", execute)
    monkeypatch.setattr(cli, "run_in_processes", in_processes)
    monkeypatch.setattr(lm_cli, "_train_into", lambda args: 0)
    return tmp_path


def _check(argv, capsys):
    capsys.readouterr()
    start = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert time.perf_counter() - start < FAST_S, argv
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2 and err.strip():
        assert len(err.strip().splitlines()) == 1, (argv, err)


@FUZZ
@given(argv=_run_argv())
def test_run_arguments(sandbox, capsys, argv):
    _check(argv, capsys)


@FUZZ
@given(argv=_lm_argv())
def test_lm_arguments(sandbox, capsys, argv):
    _check(argv, capsys)


@settings(FUZZ, max_examples=60)
@given(argv=_other_argv())
def test_other_commands(sandbox, capsys, argv):
    _check(argv, capsys)


def test_the_files_it_tripped_over_are_intact(sandbox, capsys):
    for argv in (["run", "train", "--out", "afile"], ["run", "gpm", "--out", "full"]):
        _check(argv, capsys)
    assert (sandbox / "afile").read_text() == "keep me"
    assert sorted(p.name for p in (sandbox / "full").iterdir()) == ["x.txt"]

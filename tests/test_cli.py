import json
import subprocess
import sys

import pytest

from netprism.cli import main


def test_list_shows_train(capsys):
    assert main(["list"]) == 0
    assert "train" in capsys.readouterr().out


def test_run_writes_result_json(tmp_path, capsys):
    out = tmp_path / "t"
    code = main(
        [
            "run",
            "train",
            "--scale",
            "tiny",
            "--out",
            str(out),
            "--epochs",
            "2",
            "--model",
            "mlp",
            "--data-dir",
            "none",
        ]
    )
    assert code == 0
    saved = json.loads((out / "result.json").read_text())
    assert saved["config"]["epochs"] == 2 and saved["config"]["data_dir"] is None
    assert "test_accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "train", "--epoch", "3"], "did you mean: --epoch -> --epochs"),
        (["run", "train", "--epochs", "three"], "--epochs expects int, got 'three'"),
        (["run", "train", "--scale", "huge"], "invalid choice: 'huge'"),
    ],
)
def test_run_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err
    assert err.count("\n") == 1 and "usage:" not in err  # one line, no usage block


def test_unknown_experiment_and_model_are_clear_errors(tmp_path, capsys):
    assert main(["run", "trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err
    assert (
        main(["run", "train", "--scale", "tiny", "--model", "resnet50", "--out", str(tmp_path)])
        == 2
    )
    assert "unknown model 'resnet50'" in capsys.readouterr().err


def test_reproduce_then_report(tmp_path):
    out = tmp_path / "run"
    assert main(["reproduce", "train", "--scale", "tiny", "--out", str(out)]) == 0
    report = out / "report.html"
    html = report.read_text()
    assert "train" in html and "test_accuracy" in html
    report.unlink()
    assert main(["report", str(out)]) == 0 and report.exists()
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_python_dash_m_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "netprism", "list"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "train" in proc.stdout

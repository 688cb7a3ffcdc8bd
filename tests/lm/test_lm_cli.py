import json

import pytest

from netprism.cli.lm import main
from netprism.lm import load_lm
from netprism.lm.lora import read_lora_header

TINY = [
    "--steps", "3", "--batch-size", "2", "--context", "32", "--d-model", "16",
    "--n-layers", "8", "--n-heads", "2", "--n-kv-heads", "1", "--kv-share", "0.375",
    "--corpus-bytes", "20000", "--log-every", "3",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm_cli") / "model"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


def test_train_saves_a_loadable_model_with_its_metadata(trained, capsys):
    model, config = load_lm(trained)
    assert config.kv_share == 0.375 and config.n_kv_layers == 5
    meta = json.loads((trained / "train.json").read_text())
    assert meta["heldout_package"] == "email" and len(meta["corpus_sha256"]) == 64
    assert 0 < meta["val_bpb"] < 9


def test_generate_streams_bytes_and_is_seeded(trained, capsys):
    args = ["generate", "--model", str(trained), "--prompt", "def ", "--max-bytes", "20"]
    assert main([*args, "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert main([*args, "--seed", "3"]) == 0
    assert capsys.readouterr().out == first and len(first) >= 2


def test_generate_refuses_a_prompt_longer_than_the_context(trained):
    with pytest.raises(ValueError, match="longer than the model's context of 32"):
        main(["generate", "--model", str(trained), "--prompt", "x" * 30, "--max-bytes", "10"])


def test_adapt_writes_a_small_adapter_file(trained, tmp_path, capsys):
    path = tmp_path / "email.lora.safetensors"
    args = ["adapt", "--model", str(trained), "--out", str(path), "--steps", "2"]
    assert main([*args, "--batch-size", "2", "--rank", "2", "--alpha", "4"]) == 0
    header = read_lora_header(path)
    assert header["rank"] == 2 and header["alpha"] == 4.0
    assert path.stat().st_size < (trained / "model.safetensors").stat().st_size
    assert "email:" in capsys.readouterr().out


def test_no_action_prints_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_generate_with_a_schema_prints_valid_json(trained, tmp_path, capsys):
    schema = {
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}},
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema))
    assert (
        main(["generate", "--model", str(trained), "--schema", str(path), "--max-bytes", "12"]) == 0
    )
    assert 0 <= json.loads(capsys.readouterr().out)["n"] <= 9


def test_adapt_refuses_a_package_the_model_trained_on(trained, tmp_path):
    with pytest.raises(ValueError, match="was in the model's training data"):
        main(["adapt", "--model", str(trained), "--out", str(tmp_path / "a"), "--package", "json"])

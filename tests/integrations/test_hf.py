"""MemorizationTrainerCallback on a real Hugging Face Trainer (the `[hf]` extra).

The models are built from configs (no downloads): a small MLP ``PreTrainedModel`` for the
digits acceptance run, and a one-layer BERT for the keyword-input path.
"""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import (  # noqa: E402
    PretrainedConfig,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
)
from transformers.modeling_outputs import SequenceClassifierOutput  # noqa: E402

from netprism.core.metrics import auroc  # noqa: E402
from netprism.data import load_dataset, with_label_noise  # noqa: E402
from netprism.integrations.transformers import MemorizationTrainerCallback  # noqa: E402
from netprism.memorization import DEFAULT_LABEL_ISSUE_METHOD, find_label_issues  # noqa: E402


class TinyMLPConfig(PretrainedConfig):
    model_type = "netprism-tiny-mlp"

    def __init__(self, in_features=64, hidden=256, num_labels=10, **kwargs):
        super().__init__(num_labels=num_labels, **kwargs)
        self.in_features, self.hidden = in_features, hidden


class TinyMLPForImageClassification(PreTrainedModel):
    config_class = TinyMLPConfig
    base_model_prefix = "mlp"

    def __init__(self, config):
        super().__init__(config)
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(config.in_features, config.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(config.hidden, config.num_labels),
        )
        self.post_init()

    def _init_weights(self, module):
        pass  # keep torch's default initialisation

    def forward(self, pixel_values=None, labels=None, **kwargs):
        logits = self.net(pixel_values)
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class Rows(torch.utils.data.Dataset):
    """The user's dataset: dict rows carrying their index through the default collator."""

    def __init__(self, x, y, input_name="pixel_values"):
        self.x, self.y, self.input_name = x, y, input_name

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {self.input_name: self.x[i], "labels": self.y[i], "index": i}


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _args(tmp_path, epochs, **kw):
    base = dict(
        output_dir=str(tmp_path), num_train_epochs=epochs, per_device_train_batch_size=64,
        learning_rate=3e-3, weight_decay=0.0, lr_scheduler_type="cosine", warmup_steps=0,
        use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no",
        eval_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0,
        remove_unused_columns=False,
    )  # fmt: skip
    return TrainingArguments(**{**base, **kw})


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    transformers.set_seed(0)
    noisy, flipped = with_label_noise(load_dataset("digits"), 0.1, seed=0)
    callback = MemorizationTrainerCallback(
        noisy, methods=("loss", "aum", "curvature"), every=5, n_probes=3
    )
    model = TinyMLPForImageClassification(TinyMLPConfig())
    trainer = Trainer(
        model=model, args=_args(tmp_path_factory.mktemp("hf"), 30),
        train_dataset=Rows(noisy.x, noisy.y), callbacks=[callback],
    )  # fmt: skip
    trainer.train()
    return noisy, flipped, callback, model


def test_trainer_run_finds_planted_label_noise(digits_run):
    noisy, flipped, callback, _ = digits_run
    scores = callback.scores()
    assert len(scores[DEFAULT_LABEL_ISSUE_METHOD]) == len(noisy)
    assert auroc(flipped, scores[DEFAULT_LABEL_ISSUE_METHOD]) >= 0.95  # the issue's bar
    top = find_label_issues(scores, fraction=0.1)
    assert flipped[top].float().mean() > 0.7
    # The row index went through the collator, out of forward's inputs, into observe.
    assert bool(torch.isfinite(scores["train_loss"]).all())
    assert auroc(flipped, scores["train_loss"]) > 0.9
    assert [int(m["epoch"]) for m in callback.history_] == list(range(30))
    assert scores.per_epoch["curvature"].shape == (6, len(noisy))


def test_index_never_reaches_forward_and_evaluate_still_works(digits_run, tmp_path):
    noisy, _, callback, model = digits_run
    seen = []
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(sorted(kw)), with_kwargs=True)
    trainer = Trainer(model=model, args=_args(tmp_path, 1), eval_dataset=Rows(noisy.x, noisy.y))
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] > 0
    assert seen and all("index" not in keys for keys in seen)  # our pre-hook ran first
    callback.detach()
    assert len(model._forward_pre_hooks) == 1  # only the test's own hook is left


def test_keyword_input_model_from_config(tmp_path):
    """A real architecture (one-layer BERT from a config) scored by ``input_name``."""
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=3,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    x, y = torch.randint(1, 50, (24, 8)), torch.randint(0, 3, (24,))
    # A plain Dataset, not tensors: netprism's tensor path casts inputs to float (token ids
    # must stay integers), its Dataset path collates items as they are.
    score_data = Pairs(x, y)
    callback = MemorizationTrainerCallback(
        score_data, input_name="input_ids", methods=("loss", "entropy")
    )
    args = _args(tmp_path, 2, per_device_train_batch_size=8)
    Trainer(
        model=model, args=args, train_dataset=Rows(x, y, "input_ids"), callbacks=[callback]
    ).train()
    s = callback.scores()
    assert sorted(s.names) == ["csl", "entropy", "loss", "train_loss"] and s["loss"].shape == (24,)
    assert bool(torch.isfinite(s["train_loss"]).all())


def test_dropped_index_warns_and_epoch_scores_still_come(tmp_path):
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    callback = MemorizationTrainerCallback((x, y), methods=("loss",))
    model = TinyMLPForImageClassification(TinyMLPConfig())
    args = _args(tmp_path, 1, per_device_train_batch_size=8, remove_unused_columns=True)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(x, y), callbacks=[callback])
    with pytest.warns(UserWarning, match="remove_unused_columns"):
        trainer.train()
    assert callback.scores().names == ["loss"]


def test_monitor_or_score_data_but_not_both():
    with pytest.raises(ValueError, match="score_data"):
        MemorizationTrainerCallback()


def test_resumed_trainer_run_gives_the_uninterrupted_scores(tmp_path):
    ds = load_dataset("digits").subset(range(256))
    noisy, _ = with_label_noise(ds, 0.1, seed=1)
    rows = Rows(noisy.x, noisy.y)

    def run(out, resume=None):
        transformers.set_seed(0)
        callback = MemorizationTrainerCallback(noisy, methods=("loss", "curvature"), n_probes=2)
        model = TinyMLPForImageClassification(TinyMLPConfig(hidden=32))
        args = _args(out, 4, save_strategy="epoch", per_device_train_batch_size=32)
        Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback]).train(
            resume_from_checkpoint=resume
        )
        return callback

    whole = run(tmp_path / "whole")
    checkpoints = sorted((tmp_path / "whole").glob("checkpoint-*"), key=lambda p: int(p.name[11:]))
    assert all((c / "netprism_memorization.safetensors").is_file() for c in checkpoints)
    # "interrupted" after epoch 2: only the first two checkpoints survive
    import shutil

    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    for late in checkpoints[2:]:
        shutil.rmtree(tmp_path / "cut" / late.name)
    resumed = run(tmp_path / "cut", resume=True)
    assert [m["epoch"] for m in resumed.history_] == [0, 1, 2, 3]
    a, b = whole.scores(), resumed.scores()
    for name in ("loss", "curvature", "train_loss"):
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)


_TORCHRUN_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    import transformers
    from transformers import Trainer, TrainingArguments
    sys.path.insert(0, {test_dir!r})
    from test_hf import Rows, TinyMLPConfig, TinyMLPForImageClassification
    from netprism.core import auroc
    from netprism.data import load_dataset, with_label_noise
    from netprism.integrations.transformers import MemorizationTrainerCallback
    from netprism.memorization import DEFAULT_LABEL_ISSUE_METHOD

    torch.set_num_threads(1)
    transformers.set_seed(0)
    noisy, flipped = with_label_noise(load_dataset("digits"), 0.1, seed=0)
    methods = ("loss", "aum", "curvature")
    cb = MemorizationTrainerCallback(noisy, methods=methods, every=5, n_probes=2)
    args = TrainingArguments(
        "out", num_train_epochs=20, per_device_train_batch_size=32, learning_rate=3e-3,
        use_cpu=True, ddp_backend="gloo", report_to=[], save_strategy="no",
        logging_strategy="no", disable_tqdm=True, seed=0, remove_unused_columns=False,
    )
    model = TinyMLPForImageClassification(TinyMLPConfig())
    Trainer(model=model, args=args, train_dataset=Rows(noisy.x, noisy.y), callbacks=[cb]).train()
    s = cb.scores()
    default = s[DEFAULT_LABEL_ISSUE_METHOD]
    fields = (os.environ["RANK"], len(default), round(auroc(flipped, default), 6),
              int(torch.isfinite(s["train_loss"]).sum()), s.per_epoch["curvature"].shape[0],
              round(float(s["curvature"].sum()), 6))
    with open(f"result_{{os.environ['RANK']}}.txt", "w") as fh:  # one file per rank
        fh.write(" ".join(map(str, fields)))
    """
)


def test_torchrun_two_cpu_processes(tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo): the Trainer splits every batch over the ranks,
    each rank scores its shard, and both end with all N scores in index order, equal."""
    script = tmp_path / "hf_ddp_run.py"
    script.write_text(_TORCHRUN_SCRIPT.format(test_dir=str(Path(__file__).parent)))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*torchrun, "--master_port", str(_free_port()), str(script)], cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    files = sorted(tmp_path.glob("result_*.txt"))
    results = [f.read_text().split() for f in files]
    assert [r[0] for r in results] == ["0", "1"], proc.stdout[-3000:]
    assert results[0][1:] == results[1][1:]  # both ranks hold the same gathered scores
    n, score, observed, curvature_epochs, _ = results[0][1:]
    assert int(n) == int(observed) == len(load_dataset("digits"))  # both shards merged
    assert int(curvature_epochs) == 4  # every=5 over 20 epochs
    assert float(score) >= 0.95


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""BenchmarkCallback: schedule, logging under bench/<name>/<metric>, CSV/markdown output."""

import csv
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger

from maestro_lit.evals.callback import BenchmarkCallback
from maestro_lit.evals.suite.alpaca_eval import AlpacaEval
from maestro_lit.evals.suite.eq_bench import EQBench
from maestro_lit.evals.suite.ifeval import IFEval


def fake_generate(conversations, max_new_tokens):
    return [
        "Proud: 8\nAnnoyed: 3\nEmbarrassed: 1\nSad: 0" if "Mia" in c[0]["content"] else "all lowercase words here"
        for c in conversations
    ]


class FakeLogger:
    def __init__(self):
        self.calls = []

    def log_metrics(self, metrics, step):
        self.calls.append((dict(metrics), step))


class FakeModule:
    def __init__(self):
        self.training, self.device, self.logged, self.batches = True, torch.device("cpu"), [], []

    def eval(self):
        self.training = False

    def train(self):
        self.training = True

    def generate_chat(self, conversations, max_new_tokens):
        assert not self.training  # benchmarks generate in eval mode
        self.batches.append(max_new_tokens)
        return fake_generate(conversations, max_new_tokens)

    def log_dict(self, metrics, **kwargs):
        self.logged.append(dict(metrics))


def fake_trainer(tmp_path, fn="fit", step=0):
    return SimpleNamespace(
        global_step=step,
        loggers=[FakeLogger()],
        log_dir=str(tmp_path),
        default_root_dir=str(tmp_path),
        is_global_zero=True,
        world_size=1,
        state=SimpleNamespace(fn=fn),
        sanity_checking=False,
    )


def make_callback(**kwargs):
    benchmarks = [IFEval(limit=3), EQBench(limit=2), AlpacaEval(enabled=False)]
    return BenchmarkCallback(benchmarks, max_new_tokens=11, progress_bar=False, **kwargs)


def test_every_n_steps_and_fit_end_log_to_logger(tmp_path):
    cb, module = make_callback(every_n_train_steps=2), FakeModule()
    trainer = fake_trainer(tmp_path, step=7)
    for i in range(4):
        cb.on_train_batch_end(trainer, module, None, None, i)
    cb.on_train_end(trainer, module)  # batch 4 just ran: no duplicate at fit end
    calls = trainer.loggers[0].calls
    assert len(calls) == 2 and all(step == 7 for _, step in calls)
    metrics = calls[0][0]
    assert metrics["bench/ifeval/prompt_strict"] == pytest.approx(1 / 3)
    assert metrics["bench/eq_bench/score"] == pytest.approx(100.0)
    assert "bench/eq_bench/failed" in metrics and "bench/ifeval/seconds" in metrics
    assert not any(k.startswith("bench/alpaca_eval") for k in metrics)  # disabled
    assert module.training and module.batches == [11, 11, 11, 11]
    cb.on_train_batch_end(trainer, module, None, None, 4)
    cb.on_train_end(trainer, module)  # batch 5 did not run: fit end does
    assert len(calls) == 3


def test_csv_and_markdown_written(tmp_path):
    cb, module = make_callback(output_dir=str(tmp_path / "out")), FakeModule()
    cb.run(fake_trainer(tmp_path, step=3), module, "fit_end")
    rows = list(csv.DictReader(open(tmp_path / "out" / "benchmarks.csv")))
    assert {r["benchmark"] for r in rows} == {"ifeval", "eq_bench"}
    row = next(r for r in rows if r["metric"] == "prompt_strict")
    assert row["step"] == "3" and row["trigger"] == "fit_end" and float(row["value"]) == pytest.approx(1 / 3)
    md = (tmp_path / "out" / "benchmarks.md").read_text()
    assert "| ifeval | 3 | fit_end | prompt_strict | 0.3333 |" in md
    assert "| eq_bench | 3 | fit_end | score | 100 |" in md
    assert (tmp_path / "out" / "benchmarks" / "ifeval_step3.jsonl").read_text().count("\n") == 3


def test_markdown_keeps_every_benchmark_at_its_latest_evaluation(tmp_path):
    """Several callbacks (one per paper task) write into one run folder: the table keeps each benchmark's latest
    evaluation, not only the last callback's."""
    from maestro_lit.evals.base import BenchmarkResult
    from maestro_lit.evals.report import write_all

    def result(name, value):
        return BenchmarkResult(name=name, metrics={"preference": value}, failed=0, n_items=1, seconds=1.0)

    write_all(tmp_path, [result("ss_gen", 10.0)], step=2, trigger="validation")
    write_all(tmp_path, [result("ss_gen", 20.0)], step=5, trigger="fit_end")
    write_all(tmp_path, [result("tombench", 30.0)], step=5, trigger="fit_end")
    md = (tmp_path / "benchmarks.md").read_text()
    assert "| ss_gen | 5 | fit_end | preference | 20 |" in md and "| tombench | 5 | fit_end | preference | 30 |" in md
    assert "| 10 |" not in md  # ss_gen's earlier evaluation is history (the CSV), not the table


def test_validate_runs_once_with_log_dict(tmp_path):
    cb, module = make_callback(), FakeModule()
    trainer = fake_trainer(tmp_path, fn="validate")
    cb.on_validation_start(trainer, module)
    cb.on_validation_epoch_end(trainer, module)
    cb.on_validation_end(trainer, module)
    assert len(module.logged) == 1 and trainer.loggers[0].calls == []
    assert "bench/ifeval/inst_loose" in module.logged[0]
    fit_trainer = fake_trainer(tmp_path, fn="fit")  # fit's own validation does not run benchmarks
    cb.on_validation_start(fit_trainer, module)
    cb.on_validation_epoch_end(fit_trainer, module)
    cb.on_validation_end(fit_trainer, module)
    assert len(module.logged) == 1


def test_bad_file_fails_at_setup(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    cb = BenchmarkCallback([IFEval(path=str(bad))])
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        cb.setup(None, None, "fit")


class TinyModule(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.layer(batch).pow(2).mean())

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=2)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(2, 2), batch_size=2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def generate_chat(self, conversations, max_new_tokens):
        return fake_generate(conversations, max_new_tokens)


def test_real_trainer_fit_and_validate(tmp_path):
    cb = BenchmarkCallback([IFEval(limit=2), EQBench(limit=1)], every_n_train_steps=2, progress_bar=True)
    trainer = Trainer(
        max_steps=3,
        logger=CSVLogger(tmp_path),
        callbacks=[cb],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        val_check_interval=2,
        num_sanity_val_steps=1,
        accelerator="cpu",
    )
    module = TinyModule()
    trainer.fit(module)
    results = trainer.validate(module, verbose=False)
    assert results[0]["bench/eq_bench/score"] == pytest.approx(100.0)
    rows = list(csv.DictReader(open(tmp_path / "lightning_logs" / "version_0" / "benchmarks.csv")))
    assert [t for t in dict.fromkeys((r["step"], r["trigger"]) for r in rows)] == [
        ("2", "train_step"),
        ("3", "fit_end"),
        ("3", "validate"),
    ]
    logged = open(tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read()
    assert "bench/ifeval/prompt_strict" in logged

"""The seven tasks' judge where the user meets it (``PaperTaskEvaluation``): position balance, the negative
control, redirects, setup checks and the overall deadline, against fake judges on 127.0.0.1."""

import logging
import math
import re
import socket
import time
from types import SimpleNamespace

import pytest
import torch
from fake_openai import FakeOpenAIServer
from lightning.pytorch import LightningModule, Trainer

from maestro_lit.data.prepared import read_prepared
from maestro_lit.data.task_specs import TASKS
from maestro_lit.evals.judges.votes import HttpVoteJudge, LocalVoteJudge
from maestro_lit.evals.paper.evaluation import PaperTaskEvaluation

MODEL = "MODEL ANSWER"


def references(task):
    return [row["reference"] for _, row in read_prepared(str(TASKS[task].sample), "test", task)]


class FakeModule:
    """``generate_chat`` answers every prompt with ``answer(prompt)`` in NOVER's format."""

    def __init__(self, task, correct=True):
        rows = {row["prompt"]: row["reference"] for _, row in read_prepared(str(TASKS[task].sample), "test", task)}
        self.answer = (lambda prompt: rows[prompt]) if correct else (lambda prompt: MODEL)
        self.training, self.device = False, torch.device("cpu")

    def eval(self):
        pass

    def train(self):
        pass

    def generate_chat(self, conversations, max_new_tokens):
        return [f"<think>t</think><answer>{self.answer(c[0]['content'])}</answer>" for c in conversations]


def fake_trainer(tmp_path):
    return SimpleNamespace(global_step=0, loggers=[], log_dir=str(tmp_path), is_global_zero=True, world_size=1)


def evaluate(tmp_path, task, judge, module=None, **kwargs):
    """Setup then one fit-end evaluation through the callback; its ``bench/<task>/…`` metrics."""
    callback = PaperTaskEvaluation(task, judge=judge, progress_bar=False, output_dir=str(tmp_path), **kwargs)
    callback.setup(None, None, "fit")
    [result] = callback.run(fake_trainer(tmp_path), module or FakeModule(task, correct=False), "fit_end")
    return {f"bench/{task}/{k}": v for k, v in result.metrics.items()}


@pytest.fixture
def serve():
    servers = []

    def start(reply):
        servers.append(FakeOpenAIServer(reply))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def section(text, label):
    found = re.search(rf"\[{label}\]\n(.*?)\n\n(?:\[|Give |End with )", text, re.DOTALL)
    return found.group(1).strip() if found else None


def always(tag):
    return lambda path, headers, body: (200, f"Decided. [[{tag}]]")


def prefers_model(path, headers, body):
    """A working pairwise judge: picks whichever slot holds the model's response."""
    user = body["messages"][1]["content"]
    return 200, "[[A]]" if MODEL in section(user, "Response A") else "[[B]]"


def checks_reference(path, headers, body):
    """A working reference judge: YES exactly when the candidate's answer is the reference."""
    user = body["messages"][1]["content"]
    same = section(user, "Candidate answer") == section(user, "Reference answer")
    return 200, "[[YES]]" if same else "[[NO]]"


# -- A. position balance ----------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["ss_gen", "opus_books"])
def test_a_position_biased_judge_scores_half_a_working_one_all(tmp_path, serve, task):
    biased_a = evaluate(tmp_path, task, HttpVoteJudge(serve(always("A")).url, "m"))
    biased_b = evaluate(tmp_path, task, HttpVoteJudge(serve(always("B")).url, "m"))
    working = serve(prefers_model)
    fair = evaluate(tmp_path, task, HttpVoteJudge(working.url, "m"))
    assert biased_a[f"bench/{task}/preference"] == pytest.approx(50.0)  # was 100
    assert biased_b[f"bench/{task}/preference"] == pytest.approx(50.0)  # was 0
    assert fair[f"bench/{task}/preference"] == pytest.approx(100.0)
    assert fair[f"bench/{task}/undecided"] == 0 and fair[f"bench/{task}/unparsed_share"] == 0
    assert len(working.requests) == 4 * 3 * 2  # 4 items x 3 votes x 2 orders
    assert f"bench/{task}/judge_false_accept" not in fair  # the control is for reference-judged tasks


# -- B. the reference tasks' negative control ----------------------------------------------------------


@pytest.mark.parametrize("task", ["natural_reasoning", "tombench"])
def test_b_an_always_yes_judge_is_caught_by_the_negative_control(tmp_path, serve, caplog, task):
    good_model = FakeModule(task, correct=True)
    with caplog.at_level(logging.WARNING, logger="maestro_lit.evals.paper.benchmark"):
        yes = evaluate(tmp_path, task, HttpVoteJudge(serve(always("YES")).url, "m"), good_model)
    assert yes[f"bench/{task}/preference"] == 100.0
    assert yes[f"bench/{task}/judge_false_accept"] == 1.0 and yes[f"bench/{task}/n_controls"] == 4
    assert f"bench/{task}: the judge accepted 100% of 4 negative controls" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="maestro_lit.evals.paper.benchmark"):
        fair = evaluate(tmp_path, task, HttpVoteJudge(serve(checks_reference).url, "m"), good_model)
    assert fair[f"bench/{task}/preference"] == 100.0 and fair[f"bench/{task}/judge_false_accept"] == 0.0
    assert "negative controls" not in caplog.text
    bad = evaluate(tmp_path, task, HttpVoteJudge(serve(checks_reference).url, "m"), FakeModule(task, correct=False))
    assert bad[f"bench/{task}/preference"] == 0.0  # the controls never enter the preference


def test_b_controls_are_deterministic_and_configurable(tmp_path):
    from maestro_lit.evals.paper.benchmark import PaperTask

    task = PaperTask("webinstruct")
    items = task.items()
    pairs = task.controls(items)
    assert pairs == PaperTask("webinstruct").controls(items) and len(pairs) == 4
    assert all(items[i].reference.strip().lower() != items[j].reference.strip().lower() for i, j in pairs)
    assert PaperTask("webinstruct", control_share=0.0).controls(items) == []
    assert len(PaperTask("webinstruct", min_controls=1, control_share=0.25).controls(items)) == 1
    proxy = evaluate(tmp_path, "natural_reasoning", None, FakeModule("natural_reasoning"))
    assert proxy["bench/natural_reasoning/judge_false_accept_proxy"] == 0.0  # the tag convention


# -- C. redirects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_c_a_redirect_is_not_followed_and_the_key_stays(tmp_path, serve, monkeypatch, caplog, code):
    monkeypatch.setenv("JUDGEFAIR_KEY", "sk-judgefair-secret")
    elsewhere = serve(always("YES"))  # answers anything, a GET included, with [[YES]]
    target = elsewhere.url + "/chat/completions"
    redirecting = serve(lambda path, headers, body: (code, "moved", {"Location": target}))
    judge = HttpVoteJudge(redirecting.url, "m", api_key_env="JUDGEFAIR_KEY", backoff_s=0.01)
    with caplog.at_level(logging.WARNING):
        metrics = evaluate(tmp_path, "natural_reasoning", judge, FakeModule("natural_reasoning"))
    assert elsewhere.seen == []  # never contacted: no key, no GET
    assert metrics["bench/natural_reasoning/undecided"] == 4
    assert math.isnan(metrics["bench/natural_reasoning/preference"])  # was 100 from the GET's [[YES]]
    assert all(method == "POST" for method, _, _ in redirecting.seen)
    assert len(redirecting.seen) < 4 * 3 + 4 * 3  # the batch stopped after the redirect
    assert f"HTTP {code}, a redirect to {target}" in caplog.text and "sk-judgefair-secret" not in caplog.text


@pytest.mark.parametrize(
    "payload",
    [
        b"[[YES]]",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": null}}]}',
        b'{"choices": [{"text": "[[YES]]"}]}',
        b'["[[YES]]"]',
    ],
)
def test_c_only_a_chat_completion_counts(tmp_path, serve, payload):
    server = serve(lambda path, headers, body: (200, payload))
    metrics = evaluate(tmp_path, "natural_reasoning", HttpVoteJudge(server.url, "m"), FakeModule("natural_reasoning"))
    assert metrics["bench/natural_reasoning/undecided"] == 4


def test_c_a_non_200_success_is_not_a_reply(tmp_path, serve):
    server = serve(lambda path, headers, body: (203, "[[YES]]"))
    metrics = evaluate(tmp_path, "natural_reasoning", HttpVoteJudge(server.url, "m"), FakeModule("natural_reasoning"))
    assert metrics["bench/natural_reasoning/undecided"] == 4


# -- D. configuration checked before training ---------------------------------------------------------


class TinyModule(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.steps = 0

    def training_step(self, batch, batch_idx):
        self.steps += 1
        return self.layer(batch).pow(2).mean()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(4, 2), batch_size=2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def generate_chat(self, conversations, max_new_tokens):
        return ["<answer>x</answer>"] * len(conversations)


def short_fit(tmp_path, callback):
    module = TinyModule()
    trainer = Trainer(
        max_steps=2,
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=str(tmp_path),
    )
    return module, trainer


def test_d_an_unset_api_key_stops_the_fit_before_training(tmp_path, monkeypatch):
    monkeypatch.delenv("JUDGEFAIR_UNSET_KEY", raising=False)
    judge = HttpVoteJudge("http://127.0.0.1:9/v1", "m", api_key_env="JUDGEFAIR_UNSET_KEY", max_retries=0)
    module, trainer = short_fit(tmp_path, PaperTaskEvaluation("natural_reasoning", judge=judge, progress_bar=False))
    with pytest.raises(ValueError, match="benchmark 'natural_reasoning': judge api_key_env.*'JUDGEFAIR_UNSET_KEY'"):
        trainer.fit(module)
    assert module.steps == 0
    monkeypatch.setenv("JUDGEFAIR_UNSET_KEY", "set")
    module, trainer = short_fit(tmp_path, PaperTaskEvaluation("natural_reasoning", judge=judge, progress_bar=False))
    trainer.fit(module)  # with the key, the judge's failures later are undecided items, not errors
    assert module.steps == 2


def test_d_a_missing_local_judge_stops_the_fit_before_training(tmp_path):
    judge = LocalVoteJudge(str(tmp_path / "no-such-judge"))
    module, trainer = short_fit(tmp_path, PaperTaskEvaluation("ss_gen", judge=judge, progress_bar=False))
    with pytest.raises(ValueError, match="judge name_or_path: the local judge model .*no-such-judge.* does not exist"):
        trainer.fit(module)
    assert module.steps == 0


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "ftp://judge/v1", "http:///v1", "localhost"])
def test_d_a_malformed_url_is_refused_when_the_config_is_built(url):
    with pytest.raises(ValueError, match="judge base_url: .* is not an http:// or https:// URL with a host"):
        HttpVoteJudge(url, "m")


def test_d_through_the_cli_before_the_first_step(tmp_path, tiny_model_path, monkeypatch):
    from fit_configs import small_fit_config

    from maestro_lit.cli import cli_main
    from maestro_lit.train.module import MaestroModule

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(MaestroModule, "training_step", no_training)
    monkeypatch.delenv("JUDGEFAIR_UNSET_KEY", raising=False)
    judge = {
        "class_path": "maestro_lit.evals.judges.votes.HttpVoteJudge",
        "init_args": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "JUDGEFAIR_UNSET_KEY"},
    }
    callback = {
        "class_path": "maestro_lit.evals.paper.evaluation.PaperTaskEvaluation",
        "init_args": {"task": "webinstruct", "judge": judge, "progress_bar": False},
    }
    config = small_fit_config(tmp_path, 1, [callback])
    config["model"]["policy"]["name_or_path"] = tiny_model_path
    with pytest.raises(ValueError, match="JUDGEFAIR_UNSET_KEY"):
        cli_main({"fit": config})


# -- E. the overall deadline ------------------------------------------------------------------------


@pytest.fixture
def silent_server():
    """Accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


@pytest.mark.parametrize("task", ["natural_reasoning", "ss_gen"])
def test_e_a_silent_judge_is_cut_at_the_deadline(tmp_path, silent_server, caplog, task):
    judge = HttpVoteJudge(silent_server, "m", deadline_s=1.5)  # timeout_s 120, 3 retries, 16 workers
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        metrics = evaluate(tmp_path, task, judge, FakeModule(task))
    assert time.monotonic() - start < 6.0  # was about 8 minutes per request
    assert metrics[f"bench/{task}/undecided"] == 4 and math.isnan(metrics[f"bench/{task}/preference"])
    assert "deadline passed (deadline_s=1.5)" in caplog.text
    assert judge.client.missed_deadline == 24  # 4 items x 6 pairwise requests, or (4 items + 4 controls) x 3


@pytest.mark.parametrize("task", list(TASKS))
def test_the_task_files_judge_line_builds(task, monkeypatch):
    import importlib
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[1] / "configs" / "tasks" / f"{task}.yaml").read_text()
    [line] = [line for line in text.splitlines() if line.startswith("#   judge: ")]
    node = yaml.safe_load(line.removeprefix("#   judge: "))
    module, name = node["class_path"].rsplit(".", 1)
    key_variable = node["init_args"].get("api_key_env")
    if key_variable:  # a hosted judge (ss_gen, opus_books: Gemini's OpenAI-compatible endpoint) reads its key
        monkeypatch.delenv(key_variable, raising=False)
        with pytest.raises(ValueError, match=key_variable):  # checked before training, named
            getattr(importlib.import_module(module), name)(**node["init_args"]).check()
        monkeypatch.setenv(key_variable, "test-key")
    judge = getattr(importlib.import_module(module), name)(**node["init_args"])
    judge.check()
    assert judge.client.deadline_s == 3600

"""Conversational data (TRL's ``prompt`` as a list of messages): reading, rendering through the chat template with
``model.sampling.chat_template_kwargs``, and TRL-shaped inputs for ``CallableReward`` in a real fit."""

import json
import textwrap

import pytest
import torch
from fit_configs import small_fit_config

from maestro_lit.data.messages import conversational_prompts, prompt_text
from maestro_lit.data.prompts import POSITION_KEY, DataFileError, PromptStream
from maestro_lit.data.templates import question_prompt
from maestro_lit.policy.rollout import render_prompt, tokenize_prompts
from maestro_lit.policy.sampler import user_turn
from maestro_lit.settings import SamplingSettings

ROWS = [
    {
        "prompt": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is rain?"},
        ],
        "category": "factual",
    },
    {
        "prompt": [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"},
        ],
        "category": "concise",
    },
    {"prompt": [{"role": "user", "content": "Finish this:"}, {"role": "assistant", "content": "Once upon"}]},
]
RENDERED = [
    "<|system|>You are terse.<|end|><|user|>What is rain?<|end|><|assistant|>",
    "<|user|>Name a colour.<|end|><|assistant|>Blue.<|end|><|user|>Another one?<|end|><|assistant|>",
    "<|user|>Finish this:<|end|><|assistant|>Once upon",  # an assistant turn last is continued, not closed
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def test_message_rows_from_jsonl_and_parquet_render_through_the_tiny_template(tmp_path, tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "chat.parquet")
    for source in (_jsonl(tmp_path / "chat.jsonl", ROWS), str(tmp_path / "chat.parquet")):
        rows = [{k: v for k, v in row.items() if k != POSITION_KEY} for row in PromptStream(source)]
        assert [row["prompt"] for row in rows] == [row["prompt"] for row in ROWS], source
        assert [render_prompt(tokenizer, user_turn(row["prompt"])) for row in rows] == RENDERED, source
    ids, mask, _ = tokenize_prompts(tokenizer, [user_turn(row["prompt"]) for row in ROWS], 64)
    assert tokenizer.decode(ids[0][mask[0].bool()]) == RENDERED[0]


def test_nover_template_wraps_the_last_user_turn_only(tmp_path):
    stream = PromptStream(_jsonl(tmp_path / "chat.jsonl", ROWS[:2]))
    stream.prompt_template = "nover"
    first, second = [row["prompt"] for row in stream]
    assert first == [ROWS[0]["prompt"][0], {"role": "user", "content": question_prompt("What is rain?")}]
    assert second[:2] == ROWS[1]["prompt"][:2] and second[2]["content"] == question_prompt("Another one?")


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"prompt": []}], r"chat.jsonl:1: 'prompt' is an empty list of messages"),
        ([{"prompt": ["hi"]}], r"chat.jsonl:1: 'prompt' message 0 must be an object with 'role' and 'content'"),
        ([{"prompt": [{"content": "hi"}]}], r"chat.jsonl:1: 'prompt' message 0 needs a non-empty string 'role'"),
        ([{"prompt": [{"role": "user"}]}], r"chat.jsonl:1: 'prompt' message 0 \(user\) needs a string 'content'"),
        ([{"prompt": [{"role": "user", "content": " "}]}], r"chat.jsonl:1: every message of 'prompt' has empty"),
        ([ROWS[0], {"prompt": "plain"}], r"chat.jsonl:2: 'prompt' is a plain string, but the first row \(\S+:1\)"),
        ([{"prompt": {"role": "user"}}], r"chat.jsonl:1: 'prompt' must be a non-empty string or a list of"),
    ],
)
def test_malformed_message_rows_name_file_and_line(tmp_path, rows, message):
    with pytest.raises(DataFileError, match=message):
        list(PromptStream(_jsonl(tmp_path / "chat.jsonl", rows)))


SHOUT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>"
    "{% if shout %}{{ message['content'] | upper }}{% else %}{{ message['content'] }}{% endif %}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_chat_template_kwargs_reach_the_template_the_policy_answers_with(make_module, one_thread):
    module = make_module(sampling=SamplingSettings(max_new_tokens=2, chat_template_kwargs={"shout": True}))
    tokenizer = module.policy.tokenizer
    tokenizer.chat_template = SHOUT_TEMPLATE
    rollout, _ = module.sampler.prompts(["what is rain?"], 1, True, torch.device("cpu"))
    assert tokenizer.decode(rollout.prompt_ids[0][rollout.prompt_mask[0].bool()]) == (
        "<|user|>WHAT IS RAIN?<|end|><|assistant|>"
    )
    assert render_prompt(tokenizer, user_turn("what is rain?")) == "<|user|>what is rain?<|end|><|assistant|>"


def test_chat_template_kwargs_cannot_take_the_rollouts_own_arguments():
    with pytest.raises(ValueError, match=r"model.sampling.chat_template_kwargs must be free of .*add_generation"):
        SamplingSettings(chat_template_kwargs={"add_generation_prompt": False})


def test_conversational_inputs_follow_trl_and_texts_stay_for_the_projects_components():
    prompts = [row["prompt"] for row in ROWS]
    conversations, completions = conversational_prompts(prompts, ["Drops.", "Red.", " a time"])
    assert conversations[0] == ROWS[0]["prompt"] and conversations[2] == ROWS[2]["prompt"][:1]  # prefill moves
    assert completions == [
        [{"role": "assistant", "content": "Drops."}],
        [{"role": "assistant", "content": "Red."}],
        [{"role": "assistant", "content": "Once upon a time"}],
    ]
    assert ROWS[2]["prompt"][1]["content"] == "Once upon"  # the data row itself is left as it was
    assert conversational_prompts(["plain", "text"], ["a", "b"]) is None
    assert prompt_text(ROWS[0]["prompt"]) == "You are terse.\n\nWhat is rain?"


CONVERSATIONAL_REWARD = """
CALLS = []

def brevity(prompts, completions, **kwargs):
    # written for TRL's conversational data: the completion is a list holding one assistant message
    CALLS.append((prompts, completions))
    return [-float(len(completion[0]["content"].split())) for completion in completions]
"""


def test_a_trl_conversational_reward_scores_a_two_step_fit(tmp_path, monkeypatch):
    import importlib

    from maestro_lit.cli import cli_main

    (tmp_path / "trl_chat_rewards.py").write_text(textwrap.dedent(CONVERSATIONAL_REWARD))
    monkeypatch.syspath_prepend(str(tmp_path))
    rewards = importlib.import_module("trl_chat_rewards")
    config = small_fit_config(
        tmp_path, max_steps=2, callbacks=[], val_check_interval=2, limit_val_batches=1, num_sanity_val_steps=0
    )
    config["data"]["train_path"] = config["data"]["val_path"] = _jsonl(tmp_path / "chat.jsonl", ROWS[:2] * 4)
    config["data"]["val_batch_size"] = 2
    config["model"]["rewards"] = [
        {
            "class_path": "maestro_lit.rewards.callable.CallableReward",
            "init_args": {"function": "trl_chat_rewards:brevity"},
        },
        {"class_path": "maestro_lit.rewards.length.LengthBand", "init_args": {"name": "length"}},
    ]
    cli = cli_main({"fit": config})

    rollout = config["data"]["batch_size"] * config["model"]["grpo_settings"]["num_generations"]
    training = [call for call in rewards.CALLS if len(call[1]) == rollout]
    validation = [call for call in rewards.CALLS if len(call[1]) == config["data"]["val_batch_size"]]
    assert cli.model.rollouts_done == 2 and len(training) == 2 and validation  # greedy validation scores too
    assert torch.isfinite(cli.trainer.callback_metrics["val/reward/brevity"])
    assert all(isinstance(prompt, list) for prompts, _ in validation for prompt in prompts)
    prompts, completions = training[-1]
    assert all(prompt in (ROWS[0]["prompt"], ROWS[1]["prompt"]) for prompt in prompts)
    assert all(len(c) == 1 and c[0]["role"] == "assistant" for c in completions)
    record = cli.model.last_step
    assert [c[0]["content"] for c in completions] == record.completions
    expected = torch.tensor([-float(len(text.split())) for text in record.completions])
    torch.testing.assert_close(record.raw_rewards[:, 0].cpu(), expected)
    assert set(record.prompts) <= {prompt_text(ROWS[0]["prompt"]), prompt_text(ROWS[1]["prompt"])}

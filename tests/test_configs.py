"""Every command line in the README builds: the CLI composes its ``--config`` files, then the model
and callbacks are instantiated with the tiny model substituted for the weights (no training).

Substitutions, so the check runs offline on CPU: the policy becomes the embedded tiny model in
float32 without 4-bit, reward-model and judge ids become a tiny reward model, the trainer runs on
one CPU device with the default strategy (the configured strategy is built on its own), and logs go
to a temporary folder. ``--print_config`` and ``--ckpt_path`` are dropped. The GPU recipes must also
keep the values of the single-file recipes they replaced.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
from fit_configs import use_tiny_reward_models

from maestro_lit.cli import STANDARD_CALLBACKS, cli_main, compose
from maestro_lit.rewards.tiny_rm import build_tiny_reward_model

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"(?:python -m maestro_lit|maestro-lit|-m maestro_lit) (fit|validate) ")


def readme_commands() -> list[str]:
    """Every ``fit``/``validate`` line inside the README's code blocks, continuation lines joined."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line.strip() for line in lines if COMMAND.search(line)]


def cli_args(line: str) -> list[str]:
    """The arguments after the subcommand, without the ones that need a real run or file."""
    words = shlex.split(line[COMMAND.search(line).end() :], comments=True)
    args, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--ckpt_path":
            skip = True
        elif word != "--print_config":
            args.append(word)
    return args


def substitute(config: dict, tiny_model: str, tiny_rm: str, tmp_path: Path) -> dict:
    config["model"]["policy"].update(name_or_path=tiny_model, dtype="float32", load_in_4bit=False)
    use_tiny_reward_models(config, tiny_rm)
    trainer = config["trainer"]
    trainer.update(accelerator="cpu", devices=1, num_nodes=1, strategy="auto", default_root_dir=str(tmp_path))
    if isinstance(trainer.get("logger"), dict):
        trainer["logger"]["init_args"]["save_dir"] = str(tmp_path)
    return config


def build_strategy(strategy):
    if isinstance(strategy, str):
        from lightning.pytorch.strategies import StrategyRegistry

        assert strategy == "auto" or strategy in StrategyRegistry, strategy
        return strategy
    module, name = strategy["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**strategy.get("init_args", {}))


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny_rm"))


COMMANDS = readme_commands()


def test_the_readme_documents_the_compositions():
    joined = "\n".join(COMMANDS)
    assert len(COMMANDS) >= 15
    for part in (
        "base/gpu",
        "models/qwen3-8b",
        "models/llama-3.1-8b-instruct",
        "overlays/qlora",
        "overlays/ddp",
        "overlays/fsdp",
    ):
        assert f"configs/{part}.yaml" in joined, part


@pytest.mark.parametrize("line", COMMANDS, ids=[f"readme{i}" for i in range(len(COMMANDS))])
def test_readme_command_builds_model_and_callbacks(line, tiny_model_path, tiny_rm, tmp_path):
    config = compose(cli_args(line))
    strategy = build_strategy(config["trainer"]["strategy"])
    names = [r["init_args"]["name"] for r in config["model"]["rewards"]]
    scalarizer = config["model"]["scalarizer"]["class_path"]
    cli = cli_main(substitute(config, tiny_model_path, tiny_rm, tmp_path), run=False)
    assert cli.model.component_names == names
    assert f"{type(cli.model.scalarizer).__module__}.{type(cli.model.scalarizer).__name__}" == scalarizer
    callbacks = cli.trainer.callbacks
    for key in config["standard_callbacks"]:
        if key == "checkpoint" and config["trainer"]["enable_checkpointing"] is False:
            continue
        assert any(isinstance(c, STANDARD_CALLBACKS[key][1]) for c in callbacks), key
    given = config["trainer"].get("callbacks") or []
    # one evaluation per task: the later file wins
    identity = [(c["class_path"], (c.get("init_args") or {}).get("task")) for c in given]
    configured = [
        c["class_path"].rsplit(".", 1)[1] for i, c in enumerate(given) if identity[i] not in identity[i + 1 :]
    ]
    assert configured == [type(c).__name__ for c in callbacks if type(c).__name__ in configured]
    assert strategy is not None


# README GPU line -> the values of the single-file recipe it replaced (configs/recipes/*, configs/multi_gpu/*).
OLD_RECIPES = {
    # model file, overlay: (max_steps, num_minibatches, merge, lr, prompts, 4-bit, devices)
    ("qwen2.5-0.5b-instruct", ""): (500, 8, True, 2.0e-5, 8, False, 1),
    ("qwen2.5-0.5b-instruct", "qlora"): (500, 8, False, 2.0e-5, 4, True, 1),
    ("qwen2.5-1.5b-instruct", ""): (400, 16, True, 1.5e-5, 8, False, 1),
    ("qwen2.5-1.5b-instruct", "qlora"): (400, 8, False, 1.5e-5, 4, True, 1),
    ("qwen2.5-7b-instruct", ""): (300, 32, False, 1.0e-5, 4, False, 1),
    ("qwen2.5-7b-instruct", "qlora"): (300, 32, False, 1.0e-5, 4, True, 1),
    ("qwen2.5-1.5b-instruct", "ddp"): (400, 16, False, 1.5e-5, 2, False, 4),
    ("qwen2.5-7b-instruct", "fsdp"): (300, 32, False, 1.0e-5, 4, False, 8),
}


def test_gpu_recipes_keep_the_values_of_the_files_they_replaced():
    found = set()
    for line in COMMANDS:
        model = re.search(r"configs/models/(qwen2\.5-[\w.-]+)\.yaml", line)
        if not model or "--trainer.num_nodes" in line:
            continue
        overlay = re.search(r"configs/overlays/(\w+)\.yaml", line)
        key = (model.group(1), overlay.group(1) if overlay else "")
        if key[1] == "full_ft":  # new with the overlay: no single-file recipe before it
            continue
        config = compose(cli_args(line))
        m, trainer = config["model"], config["trainer"]
        got = (
            trainer["max_steps"],
            m["grpo_settings"]["num_minibatches"],
            m["sampling"]["merge_adapters_for_rollout"],
            m["policy_optimizer"]["init_args"]["lr"],
            config["data"]["batch_size"],
            m["policy"]["load_in_4bit"],
            int(trainer["devices"]),  # "4" from the command line, 4 from a file: Lightning takes both
        )
        assert got == OLD_RECIPES[key], (key, got)
        # shared by every old GPU recipe
        assert (m["policy"]["dtype"], m["policy"]["lora"]["r"], m["policy"]["lora"]["alpha"]) == ("bfloat16", 16, 32)
        assert (
            m["sampling"]["max_new_tokens"],
            m["sampling"]["max_prompt_tokens"],
            m["grpo_settings"]["num_generations"],
        ) == (512, 512, 8)
        assert m["grpo_settings"]["accumulate_minibatches"] and m["conductor_optimizer"]["init_args"]["lr"] == 1.0e-3
        assert m["scalarizer"]["init_args"]["emphasis"] == 0.6 and len(m["rewards"]) == 4
        assert (trainer["val_check_interval"], trainer["limit_val_batches"], trainer["log_every_n_steps"]) == (50, 4, 1)
        assert config["data"]["train_path"] == "HuggingFaceH4/ultrafeedback_binarized"
        found.add(key)
    assert found == set(OLD_RECIPES)


def test_quickstart_baselines_change_only_the_scalariser():
    quickstart = compose(["--config", str(ROOT / "configs/quickstart.yaml")])
    for method, class_path in (
        ("equal", "StaticWeights"),
        ("nover", "SingleReward"),
        ("em_grpo", "SingleReward"),
        ("random", "RandomWeights"),
    ):
        variant = compose(
            [
                "--config",
                str(ROOT / "configs/quickstart.yaml"),
                "--config",
                str(ROOT / f"configs/methods/{method}.yaml"),
            ]
        )
        assert variant["model"].pop("scalarizer")["class_path"].endswith(class_path)
        assert {k: v for k, v in quickstart["model"].items() if k != "scalarizer"} == variant["model"]
        assert {k: v for k, v in quickstart.items() if k != "model"} == {
            k: v for k, v in variant.items() if k != "model"
        }


def test_yaml_repetition_is_measured_and_low():
    import sys

    sys.path.insert(0, str(ROOT / "perf"))
    from yaml_repetition import content_lines, repeated_share

    assert content_lines("a: 1  # note\n# only a comment\n\nb: 2\n") == ["a: 1", "b: 2"]
    files = sorted(p for d in ("configs", "src/maestro_lab/configs") for p in (ROOT / d).rglob("*.yaml"))
    repeated, total = repeated_share(files)
    assert total > 200 and repeated / total <= 0.30

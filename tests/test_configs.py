"""Every command line in the README builds: the CLI composes its ``--config`` files, then the model
and callbacks are instantiated with the tiny model substituted for the weights (no training).

Substitutions, so the check runs offline on CPU: the policy becomes the embedded tiny model in
float32 without 4-bit, reward-model and judge ids become a tiny reward model, the trainer runs on
one CPU device with the default strategy (the configured strategy is built on its own), and logs go
to a temporary folder. ``--print_config`` and ``--ckpt_path`` are dropped. The GPU recipes must also
keep the values of the single-file recipes they replaced. Every line writes ``run_info.json``, and a line
that means the paper's method (no methods/ file, or methods/maestro.yaml) runs the paper's Conductor, M and
reference sync.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
from fit_configs import use_tiny_reward_models

from maestro_lit.callbacks.run_info import RunInfo
from maestro_lit.cli import STANDARD_CALLBACKS, cli_main, compose
from maestro_lit.conductor.base import EMPHASIS_SETTINGS, Conductor
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
    assert "run_info" in config["standard_callbacks"] and any(isinstance(c, RunInfo) for c in callbacks)  # for compare
    if means_the_paper_method(line):
        assert_paper_method(cli.model, config, line)


PAPER_CONDUCTOR = {
    "table_kind": "one_hot",
    "learn_temperature": True,
    "temperature": 1.0,
    "probability_floor": 1e-4,
    "entropy_coef": 1e-3,
    "eval_weights": "continuous",
    "normalize_hidden": True,
}


def means_the_paper_method(line: str) -> bool:
    """No methods/ file (the configs' default is the paper's) or methods/maestro.yaml."""
    return all(name == "maestro" for name in re.findall(r"configs/methods/(\w+)\.yaml", line))


def assert_paper_method(module, config: dict, line: str) -> None:
    """The paper's Conductor (docs/paper.md#method), M = 3 (6 on SS-GEN), on GPU the reference synced every 6 (12)."""
    scalarizer = module.scalarizer
    assert type(scalarizer) is Conductor, line
    assert {key: getattr(scalarizer, key) for key in PAPER_CONDUCTOR} == PAPER_CONDUCTOR, line
    ss_gen = "configs/tasks/ss_gen.yaml" in line
    assert module.outer.update_every == (6 if ss_gen else 3), line
    optimizer = config["model"]["conductor_optimizer"]
    assert (optimizer["class_path"], optimizer["init_args"]["lr"]) == ("torch.optim.AdamW", 5.0e-5), line
    if "configs/base/gpu.yaml" in line:
        full_ft = "configs/overlays/full_ft.yaml" in line  # the sync mixes a second LoRA adapter: none without LoRA
        assert config["model"]["reference"]["sync_every"] == (0 if full_ft else 12 if ss_gen else 6), line


# README GPU line -> the values of the single-file recipe it replaced (configs/recipes/*, configs/multi_gpu/*).
OLD_RECIPES = {
    # model file, overlay: (max_steps, num_minibatches, merge, lr, prompts, 4-bit, devices)
    ("qwen2.5-0.5b-instruct", ""): (500, 8, True, 2.0e-5, 8, False, 1),
    ("qwen2.5-0.5b-instruct", "qlora"): (500, 8, False, 2.0e-5, 4, True, 1),
    ("qwen2.5-1.5b-instruct", ""): (400, 16, True, 1.5e-5, 8, False, 1),
    ("qwen2.5-1.5b-instruct", "qlora"): (400, 8, False, 1.5e-5, 4, True, 1),
    # base/gpu.yaml sizes the 7-8B minibatches to the GPU's free memory (the files had 32: one row per backward)
    ("qwen2.5-7b-instruct", ""): (300, "auto", False, 1.0e-5, 4, False, 1),
    ("qwen2.5-7b-instruct", "qlora"): (300, "auto", False, 1.0e-5, 4, True, 1),
    ("qwen2.5-1.5b-instruct", "ddp"): (400, 16, False, 1.5e-5, 2, False, 4),
    ("qwen2.5-7b-instruct", "fsdp"): (300, 32, False, 1.0e-5, 4, False, 8),
    ("qwen2.5-7b-instruct", "deepspeed"): (300, 32, False, 1.0e-5, 4, False, 8),  # new: the fsdp recipe's values
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
        assert m["grpo_settings"]["accumulate_minibatches"]
        assert (trainer["val_check_interval"], trainer["limit_val_batches"], trainer["log_every_n_steps"]) == (50, 4, 1)
        # the method is no longer the old recipes' emphasis Conductor (Adam 1e-3, emphasis 0.6) but the paper's
        assert m["scalarizer"]["class_path"] == "maestro_lit.conductor.base.Conductor"
        assert m["scalarizer"]["init_args"]["action_table"] == "one_hot"
        assert m["conductor_optimizer"]["init_args"]["lr"] == 5.0e-5
        if "configs/rewards/" not in line:  # base/gpu.yaml's own: the paper's five
            assert [r["init_args"]["name"] for r in m["rewards"]] == ["ppl", "fmt", "ent", "len", "pref"]
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


def configs(*parts: str) -> list[str]:
    """``--config configs/<part>.yaml`` for each part, in order."""
    return [arg for part in parts for arg in ("--config", str(ROOT / "configs" / f"{part}.yaml"))]


METHODS = sorted(p.stem for p in (ROOT / "configs" / "methods").glob("*.yaml"))
OWN_M = {"maestro_joint": 1, "conductor_emphasis": 1, "trusted": 1}  # files that fix M; the others take the task's


@pytest.mark.parametrize("method", METHODS)
def test_the_ss_gen_task_sets_m_and_the_reference_sync_for_every_method(method, tiny_rm, tmp_path):
    """tasks/ss_gen.yaml composed last, as the README composes tasks: it parses with every method, and M = 6 reaches
    every learned Conductor that leaves M to the run, the reference sync 12 every method."""
    parts = ["base/cpu", "models/tiny", "rewards/paper", f"methods/{method}", "tasks/ss_gen"]
    args = configs(*parts)
    args += {
        "trusted": ["--model.scalarizer.init_args.trusted_component=pref"],
        "single": ["--model.scalarizer.init_args.component=len"],
    }.get(method, [])  # components of the paper's five
    config = compose(args)
    assert config["model"]["outer_loop"]["update_every"] == 6 and config["model"]["reference"]["sync_every"] == 12
    module = cli_main(substitute(config, "maestro-lit/tiny", tiny_rm, tmp_path), run=False).model
    assert module.reference.settings.sync_every == 12 and module.reference.synced
    if module.scalarizer.learnable:
        assert module.outer.update_every == OWN_M.get(method, 6), method
    # the GPU order (base, model, method, task) parses as well, with the same settings
    gpu = ["base/gpu", "models/qwen3-8b", f"methods/{method}", "tasks/ss_gen"]
    composed = compose(configs(*gpu))
    assert (composed["model"]["outer_loop"]["update_every"], composed["model"]["reference"]["sync_every"]) == (6, 12)


def test_other_tasks_keep_the_papers_m_and_sync():
    for task in ("webinstruct", "opus_books", "emobench"):
        config = compose(configs("base/gpu", "models/qwen3-8b", f"tasks/{task}"))
        model = config["model"]
        assert (model["outer_loop"]["update_every"], model["reference"]["sync_every"]) == (3, 6), task


def test_the_gpu_default_is_the_papers_method_with_a_real_reward_model():
    """base/gpu.yaml + a model file + a task, no methods/ or rewards/ file: MAESTRO's preset, the five rewards
    (rewards/paper.yaml's components and normalisations) with a Skywork-Reward-V2 model, run_info on."""
    config = compose(configs("base/gpu", "models/qwen3-8b", "tasks/webinstruct"))
    paper = compose(configs("quickstart", "methods/maestro"))
    assert config["model"]["scalarizer"] == paper["model"]["scalarizer"]  # the class defaults = methods/maestro.yaml
    assert config["model"]["conductor_optimizer"] == paper["model"]["conductor_optimizer"]
    parts_paper = compose(configs("base/cpu", "rewards/paper"))
    rewards, expected = config["model"]["rewards"], parts_paper["model"]["rewards"]
    assert [r["class_path"] for r in rewards] == [r["class_path"] for r in expected]
    for got, want in zip(rewards, expected):
        differs = {k for k in want["init_args"] if got["init_args"].get(k) != want["init_args"][k]}
        assert differs <= {"model"}, (got["init_args"]["name"], differs)
    assert rewards[-1]["init_args"]["model"].startswith("Skywork/Skywork-Reward-V2-")
    assert "run_info" in config["standard_callbacks"] and "device_stats" in config["standard_callbacks"]


def test_the_emphasis_conductor_sets_every_value_it_uses():
    """methods/conductor_emphasis.yaml does not lean on the class defaults (the paper preset) or on earlier files."""
    import yaml

    own = yaml.safe_load((ROOT / "configs/methods/conductor_emphasis.yaml").read_text())["model"]
    assert own["scalarizer"]["init_args"] == EMPHASIS_SETTINGS
    for first in ("quickstart", "base/gpu"):
        config = compose(configs(first, "methods/conductor_emphasis"))
        init = config["model"]["scalarizer"]["init_args"]
        assert {k: init[k] for k in EMPHASIS_SETTINGS} == EMPHASIS_SETTINGS, first
        assert config["model"]["conductor_optimizer"]["class_path"] == "torch.optim.Adam", first

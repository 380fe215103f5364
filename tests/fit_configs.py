"""Small, fast variants of tests/configs/two_rewards.yaml for tests that run a real fit."""

from pathlib import Path

import yaml

QUICKSTART = Path(__file__).resolve().parents[1] / "tests" / "configs" / "two_rewards.yaml"


def tensorboard_logger(save_dir: Path, name: str = "run") -> dict:
    return {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": str(save_dir), "name": name},
    }


def every_step_checkpoint(run_dir: Path) -> dict:
    """The checkpoint callback that keeps every step's file and ``last.ckpt`` under ``run_dir/ckpt``."""
    return {
        "class_path": "maestro_lit.callbacks.checkpointing.AdapterCheckpoint",
        "init_args": {"dirpath": str(run_dir / "ckpt"), "save_last": True, "every_n_train_steps": 1, "save_top_k": -1},
    }


def small_fit_config(
    run_dir: Path,
    max_steps: int,
    callbacks: list,
    logger=False,
    max_new_tokens: int = 8,
    batch_size: int = 2,
    **trainer,
) -> dict:
    """The quickstart with short completions, few prompts, every metric logged every step and no validation
    unless ``trainer`` asks for it."""
    config = yaml.safe_load(QUICKSTART.read_text())
    config["trainer"].update(
        max_steps=max_steps,
        limit_val_batches=0,
        enable_progress_bar=False,
        default_root_dir=str(run_dir),
        logger=logger,
        callbacks=callbacks,
        log_every_n_steps=1,
    )
    config["trainer"].update(trainer)
    config["standard_callbacks"] = []  # exactly the callbacks a test lists
    config["model"]["sampling"]["max_new_tokens"] = max_new_tokens
    config["data"]["batch_size"] = batch_size
    return config


def class_path_nodes(node, suffix: str):
    """Every ``{class_path: …}`` node of a composed config whose class path ends with ``suffix``."""
    if isinstance(node, dict):
        if str(node.get("class_path", "")).endswith(suffix):
            yield node
        for value in node.values():
            yield from class_path_nodes(value, suffix)
    elif isinstance(node, list):
        for value in node:
            yield from class_path_nodes(value, suffix)


def use_tiny_reward_models(config: dict, tiny_rm: str) -> None:
    """Point every reward model and reward-model judge of a composed config at the tiny offline one."""
    for node in class_path_nodes(config, ".RewardModel"):
        node["init_args"]["model"] = tiny_rm
    for node in class_path_nodes(config, ".RewardModelJudge"):
        node["init_args"]["name_or_path"] = tiny_rm

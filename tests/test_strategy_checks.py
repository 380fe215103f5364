"""FSDP2 and DeepSpeed: the overlays build their strategies, what cannot run sharded is refused by name before the
model loads, and the module hands DeepSpeed exactly one optimiser (the Conductor's is its own)."""

from pathlib import Path

import pytest
import torch
from fit_configs import small_fit_config

from maestro_lit.cli import cli_main, compose
from maestro_lit.train.deepspeed_clipping import pass_clipping_to_deepspeed

ROOT = Path(__file__).resolve().parents[1]
FSDP2 = {"class_path": "maestro_lit.train.fsdp2.FSDP2Strategy"}


def _overlay(name: str) -> dict:
    return compose(
        ["--config", str(ROOT / "configs/base/gpu.yaml"), "--config", str(ROOT / f"configs/overlays/{name}")]
    )


def test_fsdp_overlay_is_fsdp2_and_lightning_accepts_it_on_cpu():
    from lightning.pytorch import Trainer

    from maestro_lit.train.fsdp2 import FSDP2Strategy

    config = _overlay("fsdp.yaml")
    assert config["trainer"]["strategy"]["class_path"] == FSDP2["class_path"]
    assert config["model"]["rollout"]["engine"] == "generate"
    assert config["model"]["sampling"]["merge_adapters_for_rollout"] is False
    trainer = Trainer(accelerator="cpu", devices=2, strategy=FSDP2Strategy(), logger=False)
    assert isinstance(trainer.strategy, FSDP2Strategy) and trainer.strategy._tensor_parallel_size == 1


@pytest.mark.parametrize(
    "strategy, change, message",
    [
        (FSDP2, {"rollout": {"engine": "fast"}}, "model.rollout.engine=fast cannot run under FSDP2"),
        (FSDP2, {"rollout": {"engine": "continuous_batching"}}, "model.rollout.engine=continuous_batching cannot"),
        (FSDP2, {"sampling": {"merge_adapters_for_rollout": True}}, "merge_adapters_for_rollout=true cannot merge"),
        ("fsdp", {}, "trainer.strategy=fsdp (FSDP1) is not supported"),
        ("deepspeed_stage_3", {}, "trainer.strategy=deepspeed_stage_3 (ZeRO-3) is not supported"),
        (
            {"class_path": "lightning.pytorch.strategies.DeepSpeedStrategy", "init_args": {"stage": 3}},
            {},
            "(ZeRO-3) is not supported",
        ),
    ],
)
def test_what_cannot_run_sharded_is_refused_by_key(tmp_path, strategy, change, message):
    config = small_fit_config(tmp_path, 1, [], devices=2, strategy=strategy)
    config["model"]["rollout"] = {"engine": "generate"}
    config["model"]["sampling"]["merge_adapters_for_rollout"] = False
    for key, value in change.items():
        config["model"][key].update(value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cli_main(config, run=False)


def test_rank_zero_benchmarks_are_refused_under_fsdp2(tmp_path):
    bench = {"class_path": "maestro_lit.evals.callback.BenchmarkCallback", "init_args": {"benchmarks": []}}
    config = small_fit_config(tmp_path, 1, [bench], devices=2, strategy=FSDP2)
    config["model"]["rollout"] = {"engine": "generate"}
    config["model"]["sampling"]["merge_adapters_for_rollout"] = False
    with pytest.raises(ValueError, match="BenchmarkCallback generates on rank 0 only"):
        cli_main(config, run=False)


@pytest.mark.parametrize("scheduler", [False, True])
def test_deepspeed_takes_the_modules_one_optimizer(make_module, scheduler):
    """DeepSpeed's own check (``_init_optimizers``: one optimiser, one optional scheduler) on the module. A CPU step
    cannot run: Lightning's DeepSpeedStrategy raises without CUDA in ``setup_environment``."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.strategies import DeepSpeedStrategy

    from maestro_lit.settings import ModelSettings

    pytest.importorskip("deepspeed")  # the dev extra installs it
    schedule = {"policy_lr_scheduler": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)}
    module = make_module(**(schedule if scheduler else {}))
    assert isinstance(module.model_settings, ModelSettings)
    strategy = DeepSpeedStrategy(stage=2)
    trainer = Trainer(accelerator="cpu", devices=1, strategy=strategy, logger=False)
    trainer.strategy.connect(module)
    module.trainer = trainer
    optimizer, schedule_config = strategy._init_optimizers()
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {
        id(p) for p in module.trainable_policy_parameters()
    }
    assert (schedule_config is not None) == scheduler
    conductor = module.conductor_optim.optimizer  # built beside it, outside Lightning's list
    assert {id(p) for g in conductor.param_groups for p in g["params"]} == {
        id(p) for p in module.scalarizer.parameters()
    }
    assert _overlay("deepspeed.yaml")["trainer"]["strategy"]["init_args"]["stage"] == 2


@pytest.mark.parametrize("user_clipping", [None, 0.5])
def test_deepspeed_clips_with_the_modules_max_grad_norm_unless_its_config_says(make_module, user_clipping):
    """Lightning would take ``gradient_clipping`` from ``trainer.gradient_clip_val``, which it refuses for manual
    optimisation, and ZeRO-2's gradients are not in ``param.grad`` for the update's own clipping."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy

    pytest.importorskip("deepspeed")
    module = make_module(grpo={"max_grad_norm": 0.7})
    config = None if user_clipping is None else {"zero_optimization": {"stage": 2}, "gradient_clipping": 0.5}
    strategy = DeepSpeedStrategy(stage=2, config=config)
    assert "gradient_clipping" not in strategy.config or user_clipping is not None
    trainer = Trainer(accelerator="cpu", devices=1, strategy=strategy, logger=False)
    trainer.strategy.connect(module)
    module.trainer = trainer
    module.setup("fit")
    assert strategy.config["gradient_clipping"] == (0.7 if user_clipping is None else user_clipping)
    assert not pass_clipping_to_deepspeed(DDPStrategy(), 0.7)  # other strategies are left alone

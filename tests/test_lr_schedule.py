"""The warmup + cosine preset (configs/overlays/warmup_cosine.yaml): the factor's shape, and a fit composed with
the overlay whose learning rate follows it step by step."""

import math

import pytest
import torch
import yaml
from fit_configs import small_fit_config
from lightning.pytorch.callbacks import Callback

from maestro_lit.cli import cli_main
from maestro_lit.train.lr_schedules import WarmupDecay, warmup_decay_factor

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "configs" / "overlays" / "warmup_cosine.yaml"


def test_factor_warms_up_linearly_then_decays_to_the_floor_and_holds():
    cosine = [warmup_decay_factor(k, 4, 12, "cosine", 0.1) for k in range(16)]
    assert cosine[:5] == [pytest.approx(k / 5) for k in range(1, 6)]  # the peak at step warmup_steps
    assert cosine[8] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay: half-way down
    assert cosine[12:] == [pytest.approx(0.1)] * 4  # the floor, held after total_steps
    assert all(a >= b for a, b in zip(cosine[4:], cosine[5:]))
    linear = [warmup_decay_factor(k, 0, 10, "linear") for k in range(11)]
    assert linear == [pytest.approx(1 - k / 10) for k in range(11)]


def test_scheduler_sets_the_optimizer_lr_and_refuses_a_warmup_past_the_end():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = WarmupDecay(optimizer, warmup_steps=2, total_steps=6)
    seen = []
    for _ in range(7):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == [pytest.approx(0.5 * warmup_decay_factor(k, 2, 6)) for k in range(7)]
    assert seen[2] == 0.5 and seen[6] == 0.0
    with pytest.raises(ValueError, match="warmup_steps=6 must be below total_steps=6"):
        WarmupDecay(optimizer, warmup_steps=6, total_steps=6)


class _RecordLr(Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_a_fit_composed_with_the_overlay_follows_the_schedule(tmp_path):
    config = small_fit_config(tmp_path, 4, [], enable_checkpointing=False, enable_model_summary=False)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(config))
    args = ["--config", str(base), "--config", str(OVERLAY)]
    args += ["--model.policy_lr_scheduler.init_args.warmup_steps", "2"]
    args += ["--model.policy_lr_scheduler.init_args.total_steps", "4"]
    record = _RecordLr()
    cli = cli_main(args, run=False)
    cli.trainer.callbacks.append(record)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    scheduler = cli.model.lr_schedulers()
    assert isinstance(scheduler, WarmupDecay) and scheduler.decay == "cosine" and scheduler.min_lr_ratio == 0.1
    lr = config["model"]["policy_optimizer"]["init_args"]["lr"]
    expected = [lr / 3, lr * 2 / 3, lr, lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))]
    assert record.lrs == [pytest.approx(v) for v in expected]

"""Every method of the paper's comparison runs on one harness: base + tiny model + paper rewards + method + task.

Each composes the shipped config files exactly as the README's command line does (only the
method file differs), runs 2 training steps through the CLI, and writes the TensorBoard tags
the paper's comparison reads.
"""

from pathlib import Path

import pytest
import torch
from fit_configs import class_path_nodes
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maestro_lit.cli import cli_main, compose

ROOT = Path(__file__).resolve().parents[1]
PAPER_TAGS = [f"train/reward/{name}" for name in ("ppl", "fmt", "ent", "len", "pref")]
# Per-method overrides a 2-step CPU run needs: trusted.yaml names a component `trusted`, which the
# paper's five lack (the reward model plays it here). Every other method runs its file as shipped, with the
# same policy loss (loss_type grpo): maestro_joint included.
OVERRIDES = {
    "trusted": ["--model.scalarizer.init_args.trusted_component=pref"],
}


def composed_args(method: str, run_dir: Path, steps: int = 2, rewards: str = "paper") -> list[str]:
    configs = ["base/cpu", "models/tiny", f"rewards/{rewards}", f"methods/{method}", "tasks/prompts"]
    return [
        "fit",
        *(arg for name in configs for arg in ("--config", str(ROOT / "configs" / f"{name}.yaml"))),
        f"--trainer.max_steps={steps}",
        "--trainer.limit_val_batches=0",
        "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_checkpointing=false",
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger",
        f"--trainer.logger.init_args.save_dir={run_dir}",
        "--standard_callbacks=[]",
        "--model.sampling.max_new_tokens=6",
        "--model.grpo_settings.num_generations=2",
        "--data.batch_size=2",
        *OVERRIDES.get(method, []),
    ]


def scalar_tags(run_dir: Path) -> list[str]:
    events = EventAccumulator(str(next(run_dir.rglob("events.out.tfevents.*")).parent))
    events.Reload()
    return events.Tags()["scalars"]


@pytest.mark.parametrize("method", ["maestro", "equal", "random", "nover", "em_grpo", "maestro_joint", "trusted"])
def test_every_method_runs_two_steps_and_logs_the_five_rewards(tmp_path, method):
    module = cli_main(composed_args(method, tmp_path)).model
    assert module.rollouts_done == 2
    assert module.component_names == ["ppl", "fmt", "ent", "len", "pref"]
    tags = scalar_tags(tmp_path)
    assert set(PAPER_TAGS) <= set(tags), sorted(set(PAPER_TAGS) - set(tags))
    assert all(f"conductor/weight/{name}" in tags for name in module.component_names)
    if method == "maestro":
        assert {"conductor/temperature", "conductor/updates"} <= set(tags)
        assert module.outer.update_every == 3 and module.outer.updates == 0 and len(module.outer.buffer) == 2
    if method == "maestro_joint":  # REINFORCE after every step (M = 1), under every method's GRPO loss: φ moves
        assert module.grpo_settings.loss_type == "grpo" and module.outer.update_every == 1
        assert module.outer.updates == 2 and not module.outer.buffer
        # φ learns: the last update's gradient is REINFORCE's, not the ~1e-8 float residue of the policy-loss path
        # (which AdamW still turns into lr-sized steps, so "the weights moved" alone would not tell them apart)
        assert module.scalarizer.head.weight.grad.abs().max() > 1e-4 and module.scalarizer.head.weight.abs().max() > 0


def test_hidden_layer_is_a_module_setting(tmp_path):
    cli = cli_main([*composed_args("maestro", tmp_path, steps=1), "--model.scoring.hidden_layer=middle"])
    assert cli.model.scoring.hidden_layer == "middle"
    assert torch.isfinite(cli.model.last_step.raw_rewards[:, 1]).all()  # fmt scores every completion


def test_the_judged_recipe_runs_with_its_judge_on_its_share_of_the_groups(tmp_path, caplog):
    """rewards/paper_judged.yaml + methods/trusted.yaml as shipped but for the judge's share (5 %, so that a judge
    missing on 95 % of the rows by design would trip the 90 % rule for components that score everything): the
    judge scores its share of whole groups, and the missing-score warning stays quiet about it."""
    steps = 12  # past the 10-step window of the missing-score warning
    args = [
        a for a in composed_args("trusted", tmp_path, steps, rewards="paper_judged") if "trusted_component" not in a
    ]
    config = compose(args[1:])
    [judge_node] = list(class_path_nodes(config, ".SampledReward"))
    judge_node["init_args"]["fraction"] = 0.05
    module = cli_main({"fit": config}).model
    judge = module.reward_set.components[-1]
    assert module.component_names == ["ppl", "fmt", "ent", "len", "pref", "trusted"]
    assert judge.groups_seen == steps * 2 and judge.groups_labelled == round(0.05 * judge.groups_seen) >= 1
    assert judge.scored_rows == judge.groups_labelled * 2  # whole groups of G = 2
    assert not [r for r in caplog.records if "reward component 'trusted'" in r.getMessage()]
    events = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert "train/reward_nan/trusted" in events.Tags()["scalars"]
    paid = events.Scalars("train/reward_cost/trusted/scored_rows")
    assert paid[-1].value == judge.scored_rows > 0  # the running total of rows the judge scored
    assert events.Scalars("train/reward_cost/trusted/calls")[-1].value == judge.calls

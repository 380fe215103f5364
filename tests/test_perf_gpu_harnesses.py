"""The pieces of the GPU harnesses that decide what runs within a lent machine's time limit."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "perf"))
import gpu_fit  # noqa: E402
import gpu_methods  # noqa: E402
from maestro_run import StepRecorder  # noqa: E402


class FakeClock:
    """Stands in for StepClock's timer: each call returns the next (wall, cpu) pair."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> tuple[float, float]:
        return self.now, self.now


def run_steps(recorder: StepRecorder, clock: FakeClock, step_seconds: list[float]) -> list[bool]:
    """Drive the recorder through steps of the given lengths; the trainer's should_stop after each."""
    recorder.clock._now = clock
    trainer = SimpleNamespace(should_stop=False)
    last_step = SimpleNamespace(
        phase_seconds={}, completion_lengths=torch.ones(2), component_names=["a"], raw_rewards=torch.ones(2, 1)
    )
    module = SimpleNamespace(last_step=last_step)
    stops = []
    for seconds in step_seconds:
        recorder.on_train_batch_start(trainer, module, None, 0)
        clock.now += seconds
        recorder.on_train_batch_end(trainer, module, None, None, 0)
        stops.append(trainer.should_stop)
    return stops


def test_step_recorder_stops_after_the_step_that_passes_the_budget():
    stops = run_steps(StepRecorder(max_seconds=25.0, min_steps=1), FakeClock(), [10, 10, 10, 10])
    assert stops == [False, False, True, True]  # 30 s after step 3 >= 25 s


def test_step_recorder_runs_warmup_plus_one_step_even_past_the_budget():
    stops = run_steps(StepRecorder(max_seconds=5.0, min_steps=3), FakeClock(), [10, 10, 10, 10])
    assert stops == [False, False, True, True]


def test_step_recorder_without_budget_never_stops_the_trainer():
    assert run_steps(StepRecorder(), FakeClock(), [100, 100, 100]) == [False, False, False]


def test_gpu_methods_passes_the_budget_to_every_method_run(tmp_path):
    args = SimpleNamespace(
        methods=["maestro", "single"],
        rewards="paper",
        new_tokens=16,
        prompt_tokens=32,
        tiny=False,
        steps=8,
        warmup=2,
        max_seconds=45.0,
    )
    args.component = "pref"
    runs = gpu_methods.method_runs(tmp_path, args)
    for method, argv in runs.items():
        assert argv[argv.index("--max-seconds") + 1] == "45.0", method
        configs = [Path(ROOT, argv[i + 1]) for i, a in enumerate(argv) if a == "--config"]
        assert configs[-1].name == f"{method}.yaml" and all(c.is_file() for c in configs)
    assert "model.scalarizer.init_args.component=pref" in runs["single"]
    args.max_seconds = None
    assert "--max-seconds" not in gpu_methods.method_runs(tmp_path, args)["maestro"]
    assert not any("model.rollout.engine" in a for a in gpu_methods.method_runs(tmp_path, args)["maestro"])
    args.engine = "continuous_batching"  # gpu_check.sh's engine for the 8B steps reaches every run
    runs = gpu_methods.method_runs(tmp_path, args)
    assert all("model.rollout.engine=continuous_batching" in run for run in runs.values())


@pytest.mark.parametrize("tiny", [False, True])
def test_gpu_fit_runs_the_paper_composition_with_only_the_documented_substitutions(tmp_path, tiny):
    command = gpu_fit.fit_command("qwen3-8b", tmp_path / "m", tmp_path / "r", steps=5, new_tokens=64, tiny=tiny)
    assert command[1:4] == ["-m", "maestro_lit", "fit"]
    configs = [command[i + 1] for i, a in enumerate(command) if a == "--config"]
    assert configs == [
        "configs/base/gpu.yaml",
        "configs/models/qwen3-8b.yaml",
        "configs/rewards/paper.yaml",
        "configs/methods/maestro.yaml",
    ]
    assert all((ROOT / c).is_file() for c in configs)
    overrides = {a.split("=", 1)[0] for a in command if a.startswith("--") and "=" in a}
    expected = {
        "--model.policy.name_or_path",
        "--trainer.max_steps",
        "--model.sampling.max_new_tokens",
        "--trainer.default_root_dir",
    }
    expected |= {"--trainer.logger.init_args.save_dir", "--checkpoint.dirpath"}
    if tiny:
        expected |= {"--trainer.accelerator", "--trainer.num_sanity_val_steps", "--torch_threads"}
    assert overrides == expected
    assert f"--model.policy.name_or_path={tmp_path / 'm'}" in command and "--trainer.max_steps=5" in command


def test_first_mismatch_gives_each_rows_first_differing_position_or_its_length():
    import gpu_rollout

    a = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8]])
    b = torch.tensor([[1, 2, 3, 4], [1, 9, 3, 9], [0, 6, 7, 8]])
    assert gpu_rollout.first_mismatch(a, b) == [4, 1, 0]


def test_greedy_margins_are_top1_minus_top2_at_each_completion_position():
    import gpu_rollout

    class FixedLogits(torch.nn.Module):
        """Position p's logits are [p, 0.5 p, 0]: margin 0.5 p, independent of the tokens."""

        def forward(self, input_ids, attention_mask):
            positions = torch.arange(input_ids.shape[1], dtype=torch.float32).expand(input_ids.shape[0], -1)
            return SimpleNamespace(logits=torch.stack([positions, 0.5 * positions, torch.zeros_like(positions)], -1))

    margins = gpu_rollout.greedy_margins(
        FixedLogits(), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long)
    )
    # completion tokens sit at positions 3 and 4; they are predicted from positions 2 and 3
    assert torch.equal(margins, torch.tensor([[1.0, 1.5], [1.0, 1.5]]))

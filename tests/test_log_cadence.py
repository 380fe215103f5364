"""Step metrics follow the loggers' cadence: the full set goes through Lightning only on steps a logger writes."""

from fit_configs import small_fit_config, tensorboard_logger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maestro_lit.cli import cli_main
from maestro_lit.train.module import MaestroModule
from maestro_lit.train.step_metrics import EVERY_STEP_METRICS, keep_for_this_step

FULL_ONLY = (
    "train/advantage_std",
    "train/kl",
    "train/policy_entropy",
    "conductor/entropy",
    "time/rollout",
    "train/reward_std/length",
)


def test_keep_for_this_step_keeps_everything_on_logger_steps_and_the_core_otherwise():
    metrics = {
        "train/scalar_reward": 1,
        "train/reward/length": 2,
        "train/completion_length": 3,
        "train/kl": 4,
        "time/inner": 5,
    }
    assert keep_for_this_step(metrics, logger_writes=True) == metrics
    assert keep_for_this_step(metrics, logger_writes=False) == {
        "train/scalar_reward": 1,
        "train/reward/length": 2,
        "train/completion_length": 3,
    }


def test_every_tag_is_written_at_every_logged_step_and_nothing_else_is_logged_between(tmp_path, monkeypatch):
    calls: list[set[str]] = []
    real = MaestroModule.log_dict

    def spy(self, metrics, **kwargs):
        if kwargs.get("on_step"):
            calls.append(set(metrics))
        return real(self, metrics, **kwargs)

    monkeypatch.setattr(MaestroModule, "log_dict", spy)
    config = small_fit_config(
        tmp_path, 5, [], logger=tensorboard_logger(tmp_path), log_every_n_steps=2, enable_checkpointing=False
    )
    cli_main({"fit": config})

    assert len(calls) == 5
    full = [keys for keys in calls if set(FULL_ONLY) <= keys]
    assert len(full) == 2  # steps 2 and 4 of 5 with log_every_n_steps=2
    for keys in calls:
        if keys not in full:
            assert keys and all(k.startswith(EVERY_STEP_METRICS) for k in keys), keys
            assert {"train/scalar_reward", "train/reward/length", "train/reward/diversity"} <= keys

    events = EventAccumulator(str(next((tmp_path / "run").rglob("events.out.tfevents*")))).Reload()
    written = {tag: [e.step for e in events.Scalars(tag)] for tag in (*FULL_ONLY, "train/scalar_reward")}
    assert len(written["train/kl"]) == 2
    assert all(steps == written["train/kl"] for steps in written.values()), written  # no tag misses a logged step

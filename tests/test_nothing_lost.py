"""What a fit leaves on disk, through ``python -m maestro_lit fit``: the final state is always saved, a failed
save keeps the previous checkpoint and leaves nothing half-written, a resumed run keeps one ``last.ckpt``,
a fresh run never overwrites another's checkpoints, the cadence counts rollouts, SIGTERM exits 143."""

import errno
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from fit_configs import small_fit_config
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from maestro_lit.cli import SIGTERM_EXIT, main
from maestro_lit.policy.model import Policy


def _config(run_dir: Path, max_steps: int, every: int, callbacks=()) -> dict:
    """The standard checkpoint callbacks, configured as a user does (``checkpoint.*``), CLI defaults otherwise."""
    config = small_fit_config(run_dir, max_steps, list(callbacks), max_new_tokens=4)
    config["standard_callbacks"] = ["checkpoint", "exception_checkpoint"]
    config["checkpoint"] = {"dirpath": str(run_dir / "ckpt"), "every_n_train_steps": every}
    return config


def _fit(run_dir: Path, config: dict, *flags: str) -> int | None:
    """``python -m maestro_lit fit --config run.yaml FLAGS`` in this process; the exit status (None: done)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.yaml").write_text(yaml.safe_dump(config))
    try:
        main(["fit", "--config", str(run_dir / "run.yaml"), *flags])
    except SystemExit as stop:
        return stop.code
    return None


def _error_line(capsys) -> str:
    """The one ``error:`` line the CLI printed (Lightning's own log lines share stderr)."""
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    return line


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _assert_complete(folder: Path) -> None:
    """Every checkpoint loads, every adapter has its weights and its checkpoint, nothing in flight is left."""
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.endswith(".tmp") or "-v1" in n], names
    for ckpt in folder.glob("*.ckpt"):
        assert "state_dict" in _load(ckpt), ckpt.name
    for adapter in folder.glob("*.adapter"):
        assert (adapter / "adapter_model.safetensors").is_file() and adapter.with_suffix(".ckpt").is_file(), names


def test_the_final_step_is_saved_whatever_the_cadence(tmp_path):
    assert _fit(tmp_path, _config(tmp_path, max_steps=3, every=2)) is None
    folder = tmp_path / "ckpt"
    last = _load(folder / "last.ckpt")
    assert (last["global_step"], last["maestro"]["rollouts_done"]) == (3, 3)  # not step 2's state
    assert (
        _load(folder / "step000002.ckpt")["maestro"]["rollouts_done"] == 2 and not (folder / "step000003.ckpt").exists()
    )
    adapter = load_file(str(folder / "last.adapter" / "adapter_model.safetensors"))  # the adapter of the same state
    lora = sorted(float(v.sum()) for k, v in last["state_dict"].items() if "lora_" in k)
    assert sorted(float(v.sum()) for v in adapter.values()) == pytest.approx(lora, abs=1e-6)
    _assert_complete(folder)


def _fail_on_second_save(monkeypatch, where: str) -> None:
    """A full disk from the second rollout's saves on (each rollout writes its step file and last.ckpt): half a
    checkpoint file, or an adapter folder without its weights."""
    calls = {"n": 0}
    if where == "checkpoint":
        original = TorchCheckpointIO.save_checkpoint

        def save_checkpoint(io, checkpoint, path, storage_options=None):
            calls["n"] += 1
            if calls["n"] < 3:
                return original(io, checkpoint, path, storage_options)
            Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", save_checkpoint)
    else:
        original = Policy.save_adapter

        def save_adapter(policy, directory, state_dict=None):
            calls["n"] += 1
            if calls["n"] < 3:
                return original(policy, directory, state_dict)
            Path(directory).mkdir(parents=True, exist_ok=True)
            (Path(directory) / "adapter_config.json").write_text("{}")
            raise OSError(errno.ENOSPC, "No space left on device", str(directory))

        monkeypatch.setattr(Policy, "save_adapter", save_adapter)


@pytest.mark.parametrize("where", ["checkpoint", "adapter"])
def test_a_failed_save_keeps_the_previous_checkpoint_and_leaves_nothing_half_written(
    tmp_path, monkeypatch, capsys, where
):
    _fail_on_second_save(monkeypatch, where)
    assert _fit(tmp_path, _config(tmp_path, max_steps=3, every=1)) == 2
    error = _error_line(capsys)
    assert (
        error.startswith("error: could not write checkpoint")
        and "step000002.ckpt" in error
        and "No space left" in error
    )
    folder = tmp_path / "ckpt"
    assert _load(folder / "last.ckpt")["maestro"]["rollouts_done"] == 1  # the previous good state
    assert sorted(p.name for p in folder.iterdir()) == [
        "last.adapter",
        "last.ckpt",
        "step000001.adapter",
        "step000001.ckpt",
    ]
    _assert_complete(folder)


def test_resuming_with_another_cadence_keeps_one_last_ckpt_and_a_fresh_fit_never_overwrites(tmp_path, capsys):
    assert _fit(tmp_path, _config(tmp_path, max_steps=2, every=1)) is None
    assert _fit(tmp_path, _config(tmp_path, max_steps=3, every=2)) == 2  # fresh, into a folder with another run's files
    error = _error_line(capsys)
    assert (
        error.startswith("error: checkpoint folder") and str(tmp_path / "ckpt") in error and "--ckpt_path last" in error
    )
    folder = tmp_path / "ckpt"
    assert _load(folder / "last.ckpt")["maestro"]["rollouts_done"] == 2  # untouched

    assert _fit(tmp_path, _config(tmp_path, max_steps=4, every=3), "--ckpt_path", "last") is None
    assert sorted(p.name for p in folder.glob("*.ckpt")) == [
        "last.ckpt",
        "step000001.ckpt",
        "step000002.ckpt",
        "step000003.ckpt",
    ]
    assert _load(folder / "last.ckpt")["maestro"]["rollouts_done"] == 4  # the newest state, under the one name
    _assert_complete(folder)


def test_every_cadence_counts_rollouts_and_max_steps_is_explained(tmp_path):
    config = _config(tmp_path, max_steps=4, every=1)
    config["model"]["grpo_settings"]["num_minibatches"] = 2  # two policy updates per rollout
    with pytest.warns(UserWarning, match=r"max_steps 4 stops after about 2 rollouts"):
        assert _fit(tmp_path, config) is None
    folder = tmp_path / "ckpt"
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["last.ckpt", "step000001.ckpt", "step000002.ckpt"]
    for name, rollouts in (("step000001.ckpt", 1), ("step000002.ckpt", 2), ("last.ckpt", 2)):
        checkpoint = _load(folder / name)
        assert (checkpoint["maestro"]["rollouts_done"], checkpoint["global_step"]) == (rollouts, 2 * rollouts), name


class SigtermAt(Callback):
    """Send this process SIGTERM after a given rollout, as a cluster scheduler does before preempting a job."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.rollouts_done == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_saves_the_state_then_exits_143(tmp_path, capsys):
    sigterm = {"class_path": "test_nothing_lost.SigtermAt", "init_args": {"step": 2}}
    assert _fit(tmp_path, _config(tmp_path, max_steps=5, every=50, callbacks=[sigterm])) == SIGTERM_EXIT == 143
    assert "SIGTERM" in capsys.readouterr().err
    folder = tmp_path / "ckpt"
    assert _load(folder / "on_exception.ckpt")["maestro"]["rollouts_done"] == 2
    assert _load(folder / "last.ckpt")["maestro"]["rollouts_done"] == 2  # what a requeued --ckpt_path last resumes
    _assert_complete(folder)


def _unit_files(folder: Path, **files: str) -> None:
    """Write ``name=content`` files; a name ending in ``adapter`` (or ``adapter.tmp``...) is a folder with weights."""
    for name, content in files.items():
        path = folder / name.replace("__", ".")
        if ".adapter" in path.name:
            path.mkdir()
            (path / "adapter_model.safetensors").write_text(content)
        else:
            path.write_text(content)


def _state(folder: Path) -> dict[str, str]:
    return {
        p.name: (p / "adapter_model.safetensors" if p.is_dir() else p).read_text() for p in sorted(folder.iterdir())
    }


@pytest.mark.parametrize(
    "in_flight, expected",
    [
        ({"last__ckpt__tmp": "half", "last__adapter__tmp": "new"}, "old"),  # not committed: the previous unit stays
        ({"last__ckpt__ready__tmp": "new", "last__adapter__tmp": "new"}, "new"),  # committed: finished
        ({"last__ckpt__ready__tmp": "new", "last__adapter__old__tmp": "old"}, "new"),  # half-way through the swap
    ],
)
def test_recover_folder_finishes_a_committed_save_and_drops_an_uncommitted_one(tmp_path, in_flight, expected):
    from maestro_lit.callbacks.checkpointing import recover_folder

    _unit_files(
        tmp_path, last__ckpt="old", last__adapter="old" if "last__adapter__old__tmp" not in in_flight else "new"
    )
    _unit_files(tmp_path, **in_flight)
    recover_folder(tmp_path)
    assert _state(tmp_path) == {"last.adapter": expected, "last.ckpt": expected}

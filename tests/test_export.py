"""Export round trip: a short fit → ``python -m maestro_lit export`` → a plain HF model with the same logits."""

import json
from types import SimpleNamespace

import pytest
import torch
from fit_configs import small_fit_config, tensorboard_logger

from maestro_lit import cli
from maestro_lit.export import load_conductor


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 2-step fit shared by the tests: (run dir, trained module)."""
    tmp_path = tmp_path_factory.mktemp("export_run")
    checkpoint = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True},
    }
    config = small_fit_config(
        tmp_path,
        2,
        [checkpoint],
        logger=tensorboard_logger(tmp_path),
        val_check_interval=None,
        enable_model_summary=False,
    )
    return tmp_path, cli.cli_main({"fit": config}).model.eval()


def test_export_round_trip_matches_the_trained_policy(run, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, trained = run
    run_config = next((run_dir / "run").rglob("config.yaml"))  # written by LightningCLI
    out = tmp_path / "export"
    monkeypatch.setattr(
        "sys.argv",
        [
            "maestro_lit",
            "export",
            "--ckpt",
            str(run_dir / "ckpt" / "last.ckpt"),
            "--config",
            str(run_config),
            "--out",
            str(out),
        ],
    )
    cli.main()

    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer_config.json",
        "conductor/conductor.safetensors",
    ):
        assert (out / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(
        ["What is the capital of France?", "Write a short poem about the sea."], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        expected = trained.policy.model(**batch).logits
        actual = model(**batch).logits
        with trained.policy.reference():
            base = trained.policy.model(**batch).logits
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)
    assert (base - expected).abs().max() > 1e-3  # the adapters were trained, so the merge mattered

    meta = json.loads((out / "conductor" / "conductor.json").read_text())
    assert (
        meta["component_names"] == ["length", "diversity"]
        and len(meta["action_table"]) == len(meta["action_names"]) == 3
    )
    conductor = load_conductor(out)
    torch.testing.assert_close(conductor.head.weight, trained.scalarizer.head.weight)
    hidden = torch.randn(5, meta["hidden_size"])
    torch.testing.assert_close(conductor.logits(hidden), trained.scalarizer.logits(hidden))


def test_export_rejects_a_checkpoint_that_does_not_match_the_config(run, tmp_path):
    from maestro_lit.export import export

    run_dir, _ = run
    checkpoint = torch.load(run_dir / "ckpt" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if "lora_A" not in k}
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(KeyError, match="trainable tensors are missing"):
        export(tmp_path / "bad.ckpt", next((run_dir / "run").rglob("config.yaml")), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # nothing half-written


def test_export_never_overwrites_files_it_did_not_create(run, tmp_path, capsys):
    run_dir, _ = run
    ckpt = run_dir / "ckpt" / "last.ckpt"
    args = ["export", "--ckpt", str(ckpt), "--config", str(next((run_dir / "run").rglob("config.yaml")))]
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text("the user's own file")

    def refused(*extra: str) -> str:
        with pytest.raises(SystemExit) as stop:
            cli.main([*args, *extra])
        [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert stop.value.code == 2
        return error

    assert str(out) in refused("--out", str(out)) and (out / "config.json").read_text() == "the user's own file"
    assert "holds the input" in refused("--out", str(run_dir / "ckpt"), "--overwrite") and ckpt.is_file()
    cli.main([*args, "--out", str(out), "--overwrite"])  # asked for: the folder is replaced as a whole
    assert json.loads((out / "config.json").read_text())["model_type"] and (out / "maestro_export.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left beside it


class _FakeHub:
    """Stands in for ``huggingface_hub.HfApi``: records the calls and what the folder held at upload time."""

    calls: list = []

    def create_repo(self, repo_id, repo_type, exist_ok):
        self.calls.append(("create_repo", repo_id, repo_type, exist_ok))

    def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
        files = sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir())
        self.calls.append(("upload_folder", folder_path, repo_id, files))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/abc")


def test_export_writes_a_model_card_and_pushes_the_folder(run, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from maestro_lit.model_card import is_hub_id

    run_dir, trained = run
    run_config = next((run_dir / "run").rglob("config.yaml"))
    out = tmp_path / "export"
    _FakeHub.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeHub)
    args = ["export", "--ckpt", str(run_dir / "ckpt" / "last.ckpt"), "--config", str(run_config), "--out", str(out)]
    cli.main([*args, "--push-to-hub", "me/tiny-maestro"])

    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")  # the embedded tiny base is not on the Hub
    assert is_hub_id("Qwen/Qwen3-8B") and not is_hub_id(str(run_dir)) and not is_hub_id("./org/name")
    assert f"| base model | `{trained.model_settings.name_or_path}` |" in card
    assert "| method (scalariser) | `Conductor` |" in card
    assert "| training steps (rollouts) | 2 (2 policy optimiser steps) |" in card
    assert "| `length` | `maestro_lit.rewards.length.LengthBand` |" in card and "| `diversity` |" in card
    assert f"| exported | {__import__('datetime').datetime.now(__import__('datetime').timezone.utc).date()} |" in card
    assert run_config.read_text().rstrip() in card  # the whole config, verbatim
    create, upload = _FakeHub.calls
    assert create == ("create_repo", "me/tiny-maestro", "model", True)
    assert upload[:3] == ("upload_folder", str(out), "me/tiny-maestro") and "README.md" in upload[3]
    assert "model.safetensors" in upload[3]  # the export was complete before the upload
    assert "pushed to https://huggingface.co/me/tiny-maestro/commit/abc" in capsys.readouterr().out


def test_an_unreachable_hub_is_one_error_line_and_keeps_the_export(run, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as on a machine without the network: no request made
    run_dir, _ = run
    run_config = next((run_dir / "run").rglob("config.yaml"))
    out = tmp_path / "export"
    args = ["export", "--ckpt", str(run_dir / "ckpt" / "last.ckpt"), "--config", str(run_config), "--out", str(out)]
    with pytest.raises(SystemExit) as stop:
        cli.main([*args, "--push-to-hub", "me/tiny-maestro"])
    assert stop.value.code == 2
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "--push-to-hub me/tiny-maestro: cannot upload to the Hugging Face Hub" in error
    assert f"the export is complete in {out}" in error and "hf upload me/tiny-maestro" in error
    assert (out / "README.md").is_file() and (out / "model.safetensors").is_file()

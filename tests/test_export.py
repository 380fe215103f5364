"""Export round trip: a short fit → ``python -m maestro_lit export`` → a plain HF model with the same logits."""

import json

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

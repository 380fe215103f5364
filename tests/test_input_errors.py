"""User input that used to train silently, crash with a traceback or fail hours in: now one ``error:`` line naming
the file:line or the config key, exit status 2, before training, and nothing already written is lost."""

import dataclasses
import json
import logging
import pathlib
from pathlib import Path

import pytest
import torch
import yaml
from fit_configs import small_fit_config

from maestro_lit.cli import DEBUG_ENV, main
from maestro_lit.data.prompts import POSITION_KEY, RESERVED_COLUMNS, DataFileError, check_source
from maestro_lit.rewards.base import RewardComponent, RewardError, RewardInputs
from maestro_lit.rewards.reward_set import MISSING_WINDOW, MissingScores

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "tests" / "configs" / "two_rewards.yaml")


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def _fit_args(tmp_path, *extra):
    return [
        "fit",
        "--config",
        QUICKSTART,
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.limit_val_batches=0",
        "--trainer.max_steps=1",
        "--trainer.enable_progress_bar=false",
        "--model.sampling.max_new_tokens=4",
        "--data.batch_size=2",
        f"--checkpoint.dirpath={tmp_path / 'ckpt'}",
        "--checkpoint.every_n_train_steps=1",
        "--standard_callbacks=[checkpoint,exception_checkpoint]",
        *extra,
    ]


def _fails(capsys, argv) -> str:
    """Run ``main``; it must exit 2 with exactly one ``error:`` line and no traceback. Returns that line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert info.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _good_jsonl(path: Path, rows: int = 8) -> str:
    path.write_text("".join(json.dumps({"prompt": f"question number {i}"}) + "\n" for i in range(rows)))
    return str(path)


# ----------------------------------------------------------------------------------------------- data files
def _unbalanced_quote(path: Path) -> str:
    """22 lines: a header and 21 rows; the quote opened on line 6 is never closed (read as one 1,000+ char value)."""
    lines = ["prompt,reference"] + [f"question {i} about the things we know,answer {i}" for i in range(21)]
    lines[5] = '"question 4 with a quote that never closes,answer 4'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _latin1(path: Path) -> str:
    path.write_bytes('prompt,reference\n"a good question",x\n"café question",y\n'.encode("latin-1"))
    return str(path)


def _extra_field(path: Path) -> str:
    path.write_text('prompt,reference\n"a good question",r\n"another question",r,EXTRA\n', encoding="utf-8")
    return str(path)


def _trainer_keyword(path: Path) -> str:
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "completions": "x"}) + "\n" for i in range(4)))
    return str(path)


def _deep_bad_line(path: Path) -> str:
    rows = [json.dumps({"prompt": f"question number {i}"}) for i in range(3600)]
    rows[1099] = '{"prompt": "line 1,100 is cut off'
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _folder(path: Path) -> str:
    path.mkdir()
    return str(path)


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("quote.csv", _unbalanced_quote, "quote.csv:6: a quoted field opens on this line and is never closed"),
        ("latin.csv", _latin1, "latin.csv:3: not valid UTF-8"),
        ("extra.csv", _extra_field, "extra.csv:3: 3 fields, but the header has 2 (prompt, reference)"),
        ("keyword.jsonl", _trainer_keyword, "keyword.jsonl:1: column 'completions' has the name of a keyword"),
        ("deep.jsonl", _deep_bad_line, "deep.jsonl:1100: malformed JSON"),
        ("folder.jsonl", _folder, "folder.jsonl is a folder, not a file"),
    ],
)
def test_bad_data_files_fail_before_training_naming_file_and_line(tmp_path, capsys, name, make, message):
    source = make(tmp_path / name)
    val = _good_jsonl(tmp_path / "val.jsonl")
    line = _fails(capsys, _fit_args(tmp_path, f"--data.train_path={source}", f"--data.val_path={val}"))
    assert message in line and "ppl" not in line and "does not exist" not in line, line
    assert not list(tmp_path.rglob("*.ckpt"))  # nothing trained


def test_check_files_false_reads_only_the_first_row(tmp_path):
    source = _deep_bad_line(tmp_path / "deep.jsonl")
    check_source(source, ["train"], whole=False)  # the documented opt-out: only the first row at setup
    with pytest.raises(DataFileError, match="deep.jsonl:1100"):
        check_source(source, ["train"])


def test_every_split_in_use_is_checked_in_one_pass(tmp_path):
    source = tmp_path / "p.jsonl"
    rows = [{"prompt": "a", "split": "train"}, {"prompt": "b", "split": "test"}, {"prompt": "", "split": "other"}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    check_source(str(source), ["train", "test"])  # the bad row is in a split no one reads
    with pytest.raises(DataFileError, match="holds no rows of split 'validation'"):
        check_source(str(source), ["train", "validation"])


def test_unreadable_data_file_names_it(tmp_path, capsys, monkeypatch):
    source = _good_jsonl(tmp_path / "locked.jsonl")
    real_open = pathlib.Path.open

    def refuse(self, *args, **kwargs):  # chmod 000 does not stop root, so refuse as the OS would
        if self.name == "locked.jsonl":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", refuse)
    line = _fails(capsys, _fit_args(tmp_path, f"--data.train_path={source}", f"--data.val_path={source}"))
    assert "locked.jsonl: cannot be read (Permission denied)" in line


def test_reserved_columns_are_the_reward_keywords():
    fields = {f.name for f in dataclasses.fields(RewardInputs)} - {"columns"}
    assert RESERVED_COLUMNS == fields | {POSITION_KEY}


# ---------------------------------------------------------------------------------------------- config keys
@pytest.mark.parametrize(
    "override, message",
    [
        ("--trainer.max_steps=-5", "trainer.max_steps must be -1 (no limit) or >= 0, got -5"),
        (
            "--model.grpo_settings.num_minibatches=3",
            "model.grpo_settings.num_minibatches=3 does not divide the 8 completions of a step "
            "(data.batch_size × model.grpo_settings.num_generations = 2 × 4)",
        ),
    ],
)
def test_step_settings_fail_at_parse_time(tmp_path, capsys, monkeypatch, override, message):
    import maestro_lit.train.module as module_lib

    def no_model(*_, **__):
        raise AssertionError("the model was loaded before the setting was checked")

    monkeypatch.setattr(module_lib, "Policy", no_model)
    assert message in _fails(capsys, _fit_args(tmp_path, override))


def test_unreachable_hub_id_names_the_key(tmp_path, capsys, monkeypatch):
    import maestro_lit.train.module as module_lib

    def offline(settings):  # what transformers raises offline (no network in tests)
        raise OSError(
            "We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the "
            "cached files.\nCheck your internet connection or see how to run the library in offline mode."
        )

    monkeypatch.setattr(module_lib, "Policy", offline)
    line = _fails(capsys, _fit_args(tmp_path, "--model.policy.name_or_path=someone/not-a-model"))
    assert "model.policy.name_or_path='someone/not-a-model' cannot be loaded: We couldn't connect" in line


# ------------------------------------------------------------------------------------- checkpoints and folders
def test_resume_from_a_corrupt_last_checkpoint_fails_by_name_and_keeps_it(tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "last.ckpt").write_bytes(b"not a checkpoint")
    line = _fails(capsys, _fit_args(tmp_path, "--ckpt_path=last"))
    assert f"checkpoint {tmp_path / 'ckpt' / 'last.ckpt'} cannot be read" in line
    assert (tmp_path / "ckpt" / "last.ckpt").read_bytes() == b"not a checkpoint"


def test_unwritable_checkpoint_folder_fails_before_training(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file where the folder should go")
    line = _fails(capsys, _fit_args(tmp_path, f"--checkpoint.dirpath={tmp_path / 'taken' / 'ckpt'}"))
    assert f"checkpoint.dirpath={tmp_path / 'taken' / 'ckpt'}: {tmp_path / 'taken'} is a file, not a folder" in line
    assert (tmp_path / "taken").read_text() == "a file where the folder should go"


def test_read_only_log_folder_fails_before_training(tmp_path, capsys, monkeypatch):
    import tempfile

    logs = tmp_path / "logs"
    logs.mkdir()
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):  # root ignores chmod, so refuse as a read-only folder would
        if dir is not None and Path(dir) == logs:
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    line = _fails(capsys, _fit_args(tmp_path, f"--trainer.logger.init_args.save_dir={logs}"))
    assert f"trainer.logger.init_args.save_dir={logs}: cannot write in {logs} (Permission denied)" in line


# ------------------------------------------------------------------------------------------ compare / convert
def _run_folder(tmp_path: Path, info: bytes | None = None, benchmarks: bytes | None = None) -> str:
    run = tmp_path / "run"
    run.mkdir()
    text = "step,trigger,benchmark,metric,value\n4,fit_end,emobench,preference,47.5\n"
    (run / "benchmarks.csv").write_bytes(benchmarks if benchmarks is not None else text.encode())
    if info is not None:
        (run / "run_info.json").write_bytes(info)
    return str(run)


def test_compare_names_a_malformed_run_info(tmp_path, capsys):
    run = _run_folder(tmp_path, info=b'{"method": "maestro",')
    line = _fails(capsys, ["compare", run, "--output", str(tmp_path / "out")])
    assert f"{Path(run) / 'run_info.json'}:1: malformed JSON" in line


def test_compare_names_a_non_utf8_benchmarks_file(tmp_path, capsys):
    run = _run_folder(
        tmp_path, benchmarks="step,trigger,benchmark,metric,value\n4,x,emobench,pr\xe9f,1\n".encode("latin-1")
    )
    line = _fails(capsys, ["compare", run, "--output", str(tmp_path / "out")])
    assert f"{Path(run) / 'benchmarks.csv'}:2: not valid UTF-8" in line


def test_compare_output_that_is_a_file_is_refused_and_kept(tmp_path, capsys):
    run = _run_folder(tmp_path, info=b'{"method": "maestro"}')
    (tmp_path / "out.md").write_text("mine")
    line = _fails(capsys, ["compare", run, "--output", str(tmp_path / "out.md")])
    assert f"--output {tmp_path / 'out.md'} is a file" in line and (tmp_path / "out.md").read_text() == "mine"


def test_convert_names_a_non_utf8_csv(tmp_path, capsys):
    source = tmp_path / "train.csv"
    source.write_bytes('question,answer\n"caf\xe9?",yes\n'.encode("latin-1"))
    line = _fails(capsys, ["convert", "natural_reasoning", str(source), str(tmp_path / "out.jsonl")])
    assert f"{source}:2: not valid UTF-8" in line and not (tmp_path / "out.jsonl").exists()


# ------------------------------------------------------------------------------------------------ divergence
@pytest.mark.parametrize("rollout", ["fast", "hf_generate"])
def test_huge_learning_rate_stops_as_a_divergence_naming_the_last_checkpoint(tmp_path, capsys, rollout):
    extra = ["--model.rollout.engine=generate"] if rollout == "hf_generate" else []
    args = _fit_args(tmp_path, "--model.policy_optimizer.init_args.lr=1e30", "--trainer.max_steps=4", *extra)
    line = _fails(capsys, args)
    assert "the policy diverged at training step 2" in line and str(tmp_path / "ckpt" / "last.ckpt") in line, line
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 1  # kept


class NaNAfterFirstStep(torch.optim.SGD):
    """An optimiser whose second step leaves NaN in the weights."""

    def step(self, closure=None):
        super().step(closure)
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps >= 2:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))


def test_non_finite_weights_after_an_update_stop_the_run_at_once(tmp_path, capsys):
    config = small_fit_config(tmp_path, 5, [], max_new_tokens=4)
    config["standard_callbacks"] = ["checkpoint"]
    config["checkpoint"] = {"dirpath": str(tmp_path / "ckpt"), "every_n_train_steps": 1}
    config["model"]["policy_optimizer"] = {
        "class_path": "test_input_errors.NaNAfterFirstStep",
        "init_args": {"lr": 0.01},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    line = _fails(capsys, ["fit", "--config", str(path)])
    assert "diverged at training step 2: a policy update left inf/NaN in the trainable weights" in line, line
    good = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert good["global_step"] == 1 and all(torch.isfinite(v).all() for v in good["state_dict"].values())


# ---------------------------------------------------------------------------------------------- missing scores
class AlwaysMissing(RewardComponent):
    """Scores nothing: NaN, or (``overflow``) values beyond float32's range."""

    name = "missing"

    def __init__(self, overflow: bool = False) -> None:
        self.overflow = overflow

    def __call__(self, prompts, completions, **columns):
        return [1e300] * len(completions) if self.overflow else [float("nan")] * len(completions)


def _missing_config(tmp_path, rewards, steps=2, **model):
    """A fit of ``steps`` rollouts with these reward components, as a config file for ``main``."""
    config = small_fit_config(tmp_path, steps, [], max_new_tokens=4)
    config["model"]["rewards"] = rewards
    config["model"].update(model)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return ["fit", "--config", str(path)]


@pytest.mark.parametrize("overflow", [False, True])
def test_a_component_missing_everywhere_is_warned_about(tmp_path, caplog, overflow):
    rewards = [
        {"class_path": "maestro_lit.rewards.length.LengthBand"},
        {"class_path": "test_input_errors.AlwaysMissing", "init_args": {"overflow": overflow}},
    ]
    with caplog.at_level(logging.WARNING, logger="maestro_lit"):
        main(_missing_config(tmp_path, rewards, steps=MISSING_WINDOW + 2))
    warned = [r.getMessage() for r in caplog.records if "reward component 'missing' has no score" in r.getMessage()]
    assert len(warned) == 1 and "100 % of the completions of training steps 1-10:" in warned[0], warned  # once
    assert not [r for r in caplog.records if "'length' has no score" in r.getMessage()]


def test_no_component_scoring_anything_stops_the_run(tmp_path, capsys):
    rewards = [{"class_path": "test_input_errors.AlwaysMissing"}]
    line = _fails(capsys, _missing_config(tmp_path, rewards))
    assert "no reward component scored any completion in step 1" in line


def test_missing_scores_window():
    monitor = MissingScores(["a", "b"], "skip", window=3, warn_fraction=0.9)
    rows = torch.tensor(4.0)

    def counts(a, b, unscored):
        return torch.stack([torch.tensor(float(a)), torch.tensor(float(b)), torch.tensor(float(unscored)), rows])

    monitor.update(counts(4, 0, 0), 1)
    monitor.update(counts(4, 0, 0), 2)
    assert monitor.warned == set()  # not before the window is full
    monitor.update(counts(4, 0, 0), 3)
    assert monitor.warned == {"a"}
    monitor.update(counts(0, 0, 0), 4)  # 8 of 12 rows: below 90 %, re-armed
    assert monitor.warned == set()
    monitor.update(counts(4, 4, 4), 5)  # skip: an unscored step is tolerated, up to a window of them
    monitor.update(counts(4, 4, 4), 6)
    assert monitor.warned == set()
    with pytest.raises(RewardError, match="in 3 steps in a row, up to step 7"):
        monitor.update(counts(4, 4, 4), 7)
    with pytest.raises(RewardError, match="in step 1"):
        MissingScores(["a"], "raise").update(torch.tensor([4.0, 4.0, 4.0]), 1)


def test_a_component_scoring_a_sample_by_design_is_warned_about_only_below_a_tenth_of_its_share():
    monitor = MissingScores(["judge", "full"], "skip", window=2, scored_fractions=[0.25, 1.0])
    rows = 40.0

    def step(judge_missing, full_missing, number):
        monitor.update(torch.tensor([judge_missing, full_missing, 0.0, rows]), number)

    step(34, 37, 1)  # the judge scored 15 % of the rows (its design: 25 %), the full component 7.5 %
    step(34, 37, 2)
    assert monitor.warned == {"full"}  # 92.5 % missing: over 90 % for a component meant to score everything
    step(40, 0, 3)
    step(40, 0, 4)  # the judge scored nothing: under a tenth of its 25 %
    assert monitor.warned == {"judge"}
    with pytest.raises(ValueError, match="2 scored fractions for 1 components"):
        MissingScores(["a"], scored_fractions=[1.0, 1.0])


# ---------------------------------------------------------------------------------------------- hparams.yaml
def test_hparams_yaml_loads_with_safe_load(tmp_path):
    main(_fit_args(tmp_path, "--standard_callbacks=[]"))
    [hparams] = list(tmp_path.rglob("hparams.yaml"))
    loaded = yaml.safe_load(hparams.read_text())
    assert loaded["grpo"]["num_iterations"] == 1 and loaded["sampling"]["max_new_tokens"] == 4
    assert loaded["sampling"]["temperature"] == 1.0 and loaded["grpo"]["beta"] == 0.0
    from lightning.pytorch.core.saving import load_hparams_from_yaml

    assert load_hparams_from_yaml(str(hparams))["rewards"] == "length,diversity"

"""One real training step on the tiny model: what changes, what does not, and how many forwards run."""

import lightning as L
import pytest
import torch

import maestro_lit.policy.rollout as module_lib  # GenerateEngine calls its module-level generate
from maestro_lit.conductor.outer_loop import OuterLoopSettings
from maestro_lit.data.prompts import PromptDataModule
from maestro_lit.rewards.base import RewardComponent, RewardInputs


def _fit_one_step(module, batch_size=2):
    trainer = L.Trainer(
        max_steps=module.grpo_settings.num_iterations
        * (1 if module.grpo_settings.accumulate_minibatches else module.grpo_settings.num_minibatches),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    trainer.fit(module, datamodule=PromptDataModule(batch_size=batch_size))
    return trainer


def _snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


class _CharCount(RewardComponent):
    """Varies between almost any two completions, so groups always carry a learning signal."""

    def __init__(self, name="chars"):
        self.name = name

    def __call__(self, prompts, completions, **columns):
        return torch.tensor([float(len(c)) for c in completions])


def test_one_step_updates_lora_and_conductor_only(make_module):
    torch.manual_seed(0)
    module = make_module(
        rewards=[_CharCount("chars"), _CharCount("chars_again")],
        policy_optimizer=lambda p: torch.optim.SGD(p, lr=1.0),
        conductor_optimizer=lambda p: torch.optim.SGD(p, lr=1.0),
        outer_loop=OuterLoopSettings(update_every=1),  # the paper's M = 3 would leave φ untouched after one step
    )
    before = _snapshot(module)
    trainer = _fit_one_step(module)
    assert module.last_step.advantages.abs().sum() > 0
    after = _snapshot(module)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert any("lora_" in n for n in changed), "LoRA weights did not move"
    assert any(n.startswith("scalarizer.") for n in changed), "Conductor did not move"
    assert all("lora_" in n or n.startswith("scalarizer.") for n in changed), f"frozen weights changed: {changed}"
    assert trainer.global_step == 1  # the Conductor's step does not count as a policy update


class _ForwardCounter:
    def __init__(self, module, monkeypatch):
        self.generate_calls, self.forwards, self._in_generate = 0, 0, False
        module.policy.backbone.register_forward_hook(self._hook)
        real_generate = module_lib.generate

        def counting_generate(*args, **kwargs):
            self.generate_calls += 1
            self._in_generate = True
            try:
                return real_generate(*args, **kwargs)
            finally:
                self._in_generate = False

        monkeypatch.setattr(module_lib, "generate", counting_generate)

    def _hook(self, *_):
        if not self._in_generate:
            self.forwards += 1


@pytest.mark.parametrize(
    "grpo, expected_forwards",
    [
        ({"num_iterations": 1, "beta": 0.0}, 1),  # the scoring pass is the training forward
        ({"num_iterations": 1, "beta": 0.1}, 2),  # + one adapter-disabled reference forward
        ({"num_iterations": 2, "beta": 0.1}, 4),  # scoring + reference + μ training forwards
        ({"num_minibatches": 2, "accumulate_minibatches": True}, 3),  # scoring + one forward per minibatch
        # CPU: auto plans one minibatch, never fused with the scoring pass: scoring + one training forward
        ({"num_minibatches": "auto", "accumulate_minibatches": True}, 2),
    ],
)
def test_no_forward_is_computed_twice(make_module, monkeypatch, grpo, expected_forwards):
    module = make_module(grpo=grpo)
    counter = _ForwardCounter(module, monkeypatch)
    trainer = _fit_one_step(module)
    assert counter.generate_calls == 1
    assert counter.forwards == expected_forwards
    # one policy update per minibatch, or per pass when accumulating
    per_pass = 1 if grpo.get("accumulate_minibatches") else grpo.get("num_minibatches", 1)
    assert module.updater.planner.plan is None or module.updater.planner.plan.num_minibatches == 1
    assert trainer.global_step == grpo.get("num_iterations", 1) * per_pass


class _AlwaysNaN(RewardComponent):
    name = "broken"

    def __call__(self, prompts, completions, **columns):
        return torch.full((len(completions),), float("nan"))


def test_nan_component_is_masked_and_counted(make_module):
    from maestro_lit.rewards.length import LengthBand

    module = make_module(rewards=[LengthBand(), _AlwaysNaN()])
    logged = {}
    module.log_dict = lambda metrics, **kw: logged.update(metrics)
    _fit_one_step(module, batch_size=2)
    assert logged["train/reward_nan/broken"].item() == 6  # 2 prompts × G=3
    assert torch.isfinite(logged["train/advantage_abs"]) and torch.isfinite(logged["train/policy_loss"])
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_wrong_length_component_names_itself(make_module):
    class Short(RewardComponent):
        name = "short"

        def __call__(self, prompts, completions, **columns):
            return [1.0]

    module = make_module(rewards=[Short()])
    with pytest.raises(ValueError, match="'short' returned 1 scores for 3 completions"):
        module.reward_set.compute(
            RewardInputs(prompts=["p"] * 3, completions=["a", "b", "c"], completion_ids=[[1]] * 3)
        )


def test_group_size_below_two_is_rejected():
    from maestro_lit.train.module import GRPOSettings

    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        GRPOSettings(num_generations=1)


def test_fluency_reuses_the_reference_pass(make_module, monkeypatch):
    """Fluency reads the reference log-probs of the β > 0 pass: still one scoring + one reference forward."""
    from maestro_lit.rewards.fluency import Fluency
    from maestro_lit.rewards.length import LengthBand

    module = make_module(rewards=[LengthBand(), Fluency()], grpo={"beta": 0.1})
    counter = _ForwardCounter(module, monkeypatch)
    logged = {}
    module.log_dict = lambda metrics, **kw: logged.update(metrics)
    _fit_one_step(module)
    assert counter.forwards == 2
    fluency = module.last_step.raw_rewards[:, 1]
    assert torch.isfinite(fluency).all() and (fluency < 0).all()  # mean log-probs


def test_model_based_rewards_stay_out_of_optimizers_and_checkpoints(make_module):
    from maestro_lit.rewards.similarity import SemanticSimilarity

    module = make_module(rewards=[SemanticSimilarity()])
    columns = {"reference": ["Rain is water from clouds."]}
    module.reward_set.compute(RewardInputs(["What is rain?"], ["Water falling from clouds."], [[1]], columns))
    assert not any("encoder" in k for k in module.state_dict())
    optimized = {id(p) for p in module.trainable_policy_parameters()} | {id(p) for p in module.scalarizer.parameters()}
    encoder_params = list(module.rewards[0].encoder._model.parameters())
    assert encoder_params and all(id(p) not in optimized for p in encoder_params)


def test_generate_chat_batches_and_keeps_order(make_module):
    module = make_module(generation_batch_size=2)
    conversations = [
        [{"role": "user", "content": p}] for p in ("What is rain?", "Name a colour.", "Hi", "Write a poem.", "Why?")
    ]
    chunked = module.generate_chat(conversations, max_new_tokens=6)
    module.generation_batch_size = 64
    whole = module.generate_chat(conversations, max_new_tokens=6)
    assert len(chunked) == 5 and chunked == whole  # greedy: batching must not change answers or their order


@pytest.mark.parametrize("engine", ["fast", "continuous_batching"])
def test_rollout_engine_trains_and_answers_like_generate(make_module, engine):
    from maestro_lit.policy.engines import build_engine
    from maestro_lit.policy.rollout import GenerateEngine
    from maestro_lit.settings import RolloutSettings

    module = make_module(rewards=[_CharCount("chars"), _CharCount("again")], rollout=RolloutSettings(engine=engine))
    assert type(module.sampler.engine) is type(build_engine(RolloutSettings(engine=engine)))
    conversations = [[{"role": "user", "content": p}] for p in ("What is rain?", "Name a colour.")]
    answers = module.generate_chat(conversations, max_new_tokens=6)
    engine_used, module.sampler.engine = module.sampler.engine, GenerateEngine()
    plain = module.generate_chat(conversations, max_new_tokens=6)
    assert answers == plain  # greedy: the engine must decode the same tokens
    module.sampler.engine = engine_used
    before = {n: p.detach().clone() for n, p in module.named_parameters() if "lora_B" in n}
    _fit_one_step(module)
    assert any(not torch.equal(before[n], p) for n, p in module.named_parameters() if n in before)


def _paper_rewards():
    import importlib
    from pathlib import Path

    import yaml

    entries = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/rewards/paper.yaml").read_text())["model"][
        "rewards"
    ]
    build = lambda e: getattr(  # noqa: E731
        importlib.import_module(e["class_path"].rpartition(".")[0]), e["class_path"].rpartition(".")[2]
    )
    return [build(entry)(**entry.get("init_args", {})) for entry in entries]


def _formatted_completions(module, monkeypatch):
    """The real rollout's prompts with completions in the <think>/<answer> format, so that ``ppl`` has rows to score."""
    from maestro_lit.policy.rollout import Rollout

    real = module.sampler.prompts

    def prompts(*args, **kwargs):
        rollout, truncated = real(*args, **kwargs)
        n = rollout.prompt_ids.shape[0]
        texts = [f"<think>\nstep {'a b c'[: 1 + i % 5]}\n</think>\n<answer>\n{i}\n</answer>" for i in range(n)]
        ids = module.policy.tokenizer(
            texts, add_special_tokens=False, padding=True, padding_side="right", return_tensors="pt"
        )
        formatted = Rollout(
            rollout.prompt_ids,
            rollout.prompt_mask,
            ids.input_ids,
            ids.attention_mask,
            texts,
            torch.zeros(n, dtype=torch.bool),
        )
        return formatted, truncated

    monkeypatch.setattr(module.sampler, "prompts", prompts)


@pytest.mark.parametrize("hidden_layer, token_entropy", [("last", False), ("middle", False), ("first", True)])
def test_paper_rewards_add_exactly_one_batched_forward_for_ppl(make_module, monkeypatch, hidden_layer, token_entropy):
    """Five paper rewards: scoring pass + ppl's one reference forward over the whole rollout; ``ent`` (either
    variant) reads the scoring pass, whichever layer the Conductor reads."""
    from maestro_lit.rewards.entropy import TokenEntropy
    from maestro_lit.settings import ScoringSettings

    rewards = _paper_rewards()
    if token_entropy:
        rewards[2] = TokenEntropy()
    module = make_module(rewards=rewards, scoring=ScoringSettings(hidden_layer=hidden_layer))
    assert module.reward_set.needs_token_entropy == token_entropy
    counter = _ForwardCounter(module, monkeypatch)
    _formatted_completions(module, monkeypatch)
    reference_forwards = []
    nll = module.reward_set.reference_nll
    monkeypatch.setattr(
        module.reward_set, "reference_nll", lambda *a: reference_forwards.append(a[0].shape[0]) or nll(*a)
    )
    hidden = []
    real_choose = module.scalarizer.choose
    monkeypatch.setattr(module.scalarizer, "choose", lambda h, *a, **k: hidden.append(h) or real_choose(h, *a, **k))
    _fit_one_step(module)
    assert counter.forwards == 2  # the scoring/training forward + ppl's reference forward
    assert reference_forwards == [6]  # one batched call over all 2 prompts × G=3 completions
    raw = module.last_step.raw_rewards
    assert module.component_names == ["ppl", "fmt", "ent", "len", "pref"]
    assert torch.isfinite(raw).all() and (raw[:, 1] == 1).all()  # every completion valid: ppl scored, fmt = 1
    assert hidden[0].shape == (6, module.policy.hidden_size)
    assert module.last_step.phase_seconds["rewards/reference_nll"] <= module.last_step.phase_seconds["rewards"]


def test_paper_rewards_score_by_keyword_with_the_step_tensors(make_module, monkeypatch):
    """Each component gets TRL's keywords, the dataset columns and trainer_state; ``ent`` equals −mean log-prob of
    the scoring pass."""
    from maestro_lit.rewards.base import RewardComponent

    seen = {}

    class Spy(RewardComponent):
        name, needs_logprobs = "spy", True

        def __call__(self, prompts, completions, **kwargs):
            seen.update(kwargs)
            return torch.zeros(len(completions))

    module = make_module(rewards=[*_paper_rewards(), Spy()])
    _formatted_completions(module, monkeypatch)
    _fit_one_step(module)
    assert {"completion_ids", "trainer_state", "reference", "category", "logprobs", "completion_mask"} <= set(seen)
    assert seen["trainer_state"].global_step == 0 and seen["trainer_state"].rollouts_done == 0
    mask = seen["completion_mask"]
    assert [len(ids) for ids in seen["completion_ids"]] == mask.sum(-1).tolist()  # unpadded, one list per completion
    expected = -(seen["logprobs"] * mask).sum(-1) / mask.sum(-1)
    torch.testing.assert_close(module.last_step.raw_rewards[:, 2], expected)


def test_hidden_layer_setting_names_its_key():
    from maestro_lit.settings import ScoringSettings

    with pytest.raises(ValueError, match="model.scoring.hidden_layer must be one of"):
        ScoringSettings(hidden_layer="penultimate")


def test_hidden_position_setting_names_its_key():
    from maestro_lit.settings import ScoringSettings

    assert ScoringSettings(hidden_position="prompt_end").hidden_position == "prompt_end"
    with pytest.raises(ValueError, match="model.scoring.hidden_position must be one of"):
        ScoringSettings(hidden_position="middle")

"""The TRL-shaped reward contract: keyword calls, declared extras, None → NaN, async gathered."""

import asyncio
import math
import textwrap
import threading

import pytest
import torch

from maestro_lit.rewards.base import (
    RewardComponent,
    RewardError,
    RewardInputs,
    call_component,
    check_component_order,
    id_lists,
    score_components,
)
from maestro_lit.rewards.callable import CallableReward


@pytest.fixture
def trl_module(tmp_path, monkeypatch):
    """Reward functions with the signatures TRL's GRPOTrainer documentation shows."""
    (tmp_path / "trl_style.py").write_text(
        textwrap.dedent(
            """
            import asyncio
            import threading

            def reward_len(completions, **kwargs):
                return [-abs(20 - len(c)) for c in completions]

            def reward_num_unique_tokens(completion_ids, **kwargs):
                return [len(set(ids)) for ids in completion_ids]

            def reward_exact(prompts, completions, ground_truth, **kwargs):
                return [None if g is None else float(c == g) for c, g in zip(completions, ground_truth)]

            def reward_step(completions, trainer_state, **kwargs):
                return [float(trainer_state.global_step)] * len(completions)

            def positional_only_two(prompts, completions):
                return [0.0] * len(completions)

            STARTED = threading.Barrier(2, timeout=5)

            async def async_a(completions, **kwargs):
                await asyncio.to_thread(STARTED.wait)  # returns only once async_b runs too
                return [1.0] * len(completions)

            async def async_b(completions, **kwargs):
                await asyncio.to_thread(STARTED.wait)
                return [2.0] * len(completions)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "trl_style"


class _State:
    global_step = 7


def batch(**overrides):
    fields = dict(
        prompts=["p1", "p1", "p2"],
        completions=["aaaa", "b", "exact"],
        completion_ids=[[1, 1, 2], [3], [4, 5, 6, 7]],
        columns={"ground_truth": ["x", None, "exact"]},
        trainer_state=_State(),
        group_size=1,
    )
    fields.update(overrides)
    return RewardInputs(**fields)


def test_trl_signatures_are_called_by_keyword(trl_module):
    b = batch()
    assert call_component(CallableReward(f"{trl_module}:reward_len"), b).tolist() == [-16.0, -19.0, -15.0]
    # The positional call this replaces raised TypeError for this documented signature.
    assert call_component(CallableReward(f"{trl_module}:reward_num_unique_tokens"), b).tolist() == [2.0, 1.0, 4.0]
    exact = call_component(CallableReward(f"{trl_module}:reward_exact"), b)
    assert exact[0] == 0.0 and math.isnan(exact[1]) and exact[2] == 1.0
    assert call_component(CallableReward(f"{trl_module}:reward_step"), b).tolist() == [7.0] * 3


def test_a_function_without_kwargs_fails_with_a_named_error(trl_module):
    # TRL passes the columns and trainer_state too, so a function must accept **kwargs.
    with pytest.raises(TypeError, match="unexpected keyword"):
        call_component(CallableReward(f"{trl_module}:positional_only_two"), batch())


def test_async_function_alone_is_awaited(trl_module):
    component = CallableReward(f"{trl_module}:async_a")
    assert component.is_async
    # Run from a thread: the barrier needs a second party, given here by the main thread.
    import trl_style

    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("s", call_component(component, batch())))
    worker.start()
    trl_style.STARTED.wait()
    worker.join(5)
    assert result["s"].tolist() == [1.0] * 3


def test_async_functions_are_gathered_concurrently(trl_module):
    # Each function waits at a 2-party barrier: run one after the other, they would deadlock (timeout).
    components = [
        CallableReward(f"{trl_module}:async_a"),
        CallableReward(f"{trl_module}:reward_len"),
        CallableReward(f"{trl_module}:async_b"),
    ]
    scores = score_components(components, batch())
    assert scores.shape == (3, 3)
    assert scores[:, 0].tolist() == [1.0] * 3 and scores[:, 2].tolist() == [2.0] * 3
    assert scores[:, 1].tolist() == [-16.0, -19.0, -15.0]


def test_async_call_works_inside_a_running_event_loop(trl_module):
    async def inside():
        return score_components(
            [CallableReward(f"{trl_module}:async_a"), CallableReward(f"{trl_module}:async_b")], batch()
        )

    assert asyncio.run(inside())[:, 1].tolist() == [2.0] * 3


class Probe(RewardComponent):
    """Records the keywords it was given."""

    def __init__(self, name="probe", **flags):
        self.name, self.seen = name, None
        for key, value in flags.items():
            setattr(self, key, value)

    def __call__(self, prompts, completions, **kwargs):
        self.seen = {"prompts": prompts, "completions": completions, **kwargs}
        return [1.0] * len(completions)


def test_only_declared_extras_are_passed():
    logprobs, mask, entropy = torch.zeros(3, 4), torch.ones(3, 4), torch.ones(3, 4)
    b = batch(logprobs=logprobs, completion_mask=mask, token_entropy=entropy, ref_logprobs=logprobs)
    plain = Probe()
    call_component(plain, b)
    assert set(plain.seen) == {"prompts", "completions", "completion_ids", "ground_truth", "trainer_state"}
    wants = Probe(needs_logprobs=True, needs_token_entropy=True, needs_group=True)
    call_component(wants, b)
    assert (
        wants.seen["logprobs"] is logprobs
        and wants.seen["token_entropy"] is entropy
        and wants.seen["completion_mask"] is mask
    )
    assert wants.seen["group_size"] == 1 and "ref_logprobs" not in wants.seen and "reference_nll" not in wants.seen


def test_missing_declared_extra_names_the_component():
    with pytest.raises(RewardError, match="'ppl' needs 'tokenizer'"):
        call_component(Probe(name="ppl", needs_policy=True), batch())


def test_earlier_scores_flow_in_list_order_and_order_is_checked():
    first = Probe(name="first")
    second = Probe(name="second", needs_scores_of=("first",))
    scores = score_components([first, second], batch())
    assert scores.shape == (3, 2) and second.seen["earlier_scores"]["first"].tolist() == [1.0] * 3
    with pytest.raises(ValueError, match="'second' reads the scores of \\['first'\\]"):
        check_component_order([second, first])
    with pytest.raises(ValueError, match="unique"):
        check_component_order([Probe(), Probe()])


def test_skip_turns_a_raising_component_into_nan_and_raise_names_it():
    class Broken(RewardComponent):
        name = "broken"

        def __call__(self, prompts, completions, **kwargs):
            raise KeyError("oops")

    scores = score_components([Probe(), Broken()], batch(), on_error="skip")
    assert torch.isnan(scores[:, 1]).all() and (scores[:, 0] == 1).all()
    with pytest.raises(RewardError, match="'broken' raised KeyError"):
        score_components([Broken()], batch())


def test_inputs_validate_lengths_and_keyword_clashes():
    with pytest.raises(ValueError, match="column 'ground_truth' has 1 values for 3"):
        batch(columns={"ground_truth": ["x"]})
    with pytest.raises(ValueError, match="clashes"):
        batch(columns={"completion_ids": [[1]] * 3})
    ids = torch.tensor([[5, 6, 0], [7, 0, 0]])
    assert id_lists(ids, torch.tensor([[1, 1, 0], [1, 0, 0]])) == [[5, 6], [7]]


def test_none_and_numpy_outputs_become_float_tensors():
    import numpy

    class Np(RewardComponent):
        def __call__(self, prompts, completions, **kwargs):
            return numpy.array([0.5, 1.5, 2.5])

    assert call_component(Np(), batch()).tolist() == [0.5, 1.5, 2.5]


def test_inputs_from_rollout_unpads_ids_and_keeps_masks():
    from maestro_lit.policy.rollout import Rollout
    from maestro_lit.policy.rollout import reward_inputs as inputs_from_rollout

    rollout = Rollout(
        prompt_ids=torch.tensor([[0, 5], [6, 7]]),
        prompt_mask=torch.tensor([[0, 1], [1, 1]]),
        completion_ids=torch.tensor([[8, 9, 0], [10, 0, 0]]),
        completion_mask=torch.tensor([[1, 1, 0], [1, 0, 0]]),
        completions=["a b", "c"],
        truncated=torch.tensor([False, False]),
    )
    logprobs = torch.zeros(2, 3)
    inputs = inputs_from_rollout(
        rollout, ["p", "p"], {"reference": ["r", "r"]}, 2, logprobs=logprobs, trainer_state=_State()
    )
    assert inputs.completion_ids == [[8, 9], [10]] and inputs.group_size == 2 and inputs.logprobs is logprobs
    assert inputs.prompt_mask is rollout.prompt_mask and inputs.columns == {"reference": ["r", "r"]}

"""What each sharding strategy refuses, checked on the config before the model loads (docs/scaling.md).

Under FSDP2 every forward is collective, so each rank must run as many forwards as the others, in the same
order, through a sharded unit's hooks. What cannot is refused by name rather than left to hang or fail deep in
torch: the rollout engines that call the model outside those hooks or need the whole adapter on one process,
merging LoRA into sharded weights, 4-bit weights, and the benchmark callbacks (they generate on rank 0 only).
FSDP1 (``FSDPStrategy``) is refused in favour of FSDP2. DeepSpeed is checked for its stage: ZeRO-3 partitions
the weights like FSDP2 but outside the hooks the project relies on.
"""

from __future__ import annotations

from typing import Any

FSDP2_ENGINES = ("generate",)
RANK_ZERO_CALLBACKS = ("BenchmarkCallback", "PaperTaskEvaluation")


def strategy_name(strategy: Any) -> str:
    """The config's ``trainer.strategy`` as one string: a registered name or a class path."""
    if isinstance(strategy, str):
        return strategy
    class_path = getattr(strategy, "class_path", None)
    if class_path is None and isinstance(strategy, dict):
        class_path = strategy.get("class_path")
    return str(class_path or type(strategy).__name__)


def _init_args(strategy: Any) -> dict:
    args = getattr(strategy, "init_args", None)
    if args is None and isinstance(strategy, dict):
        args = strategy.get("init_args")
    return dict(vars(args) if args is not None and not isinstance(args, dict) else args or {})


def _callback_names(callbacks: Any) -> list[str]:
    return [strategy_name(c).rsplit(".", 1)[-1] for c in callbacks or []]


def fsdp2_refusals(engine: str, merge: bool, load_in_4bit: bool, callbacks: list[str]) -> list[str]:
    """Why these settings cannot run under FSDP2 (empty: they can)."""
    problems = []
    if engine not in FSDP2_ENGINES:
        problems.append(
            f"model.rollout.engine={engine} cannot run under FSDP2 (fast and continuous_batching call the decoder "
            "outside the sharded units' hooks; vllm_server needs the whole adapter in one process): "
            "set model.rollout.engine: generate"
        )
    if merge:
        problems.append(
            "model.sampling.merge_adapters_for_rollout=true cannot merge LoRA into sharded weights under FSDP2: "
            "set it to false"
        )
    if load_in_4bit:
        problems.append("model.policy.load_in_4bit=true: FSDP2 does not shard 4-bit weights; use DDP (ddp.yaml)")
    for name in callbacks:
        if name in RANK_ZERO_CALLBACKS:
            problems.append(
                f"trainer.callbacks: {name} generates on rank 0 only, and under FSDP2 every forward is collective "
                "(it would hang); run the benchmarks on one process or under DDP"
            )
    return problems


def check_strategy_settings(config: Any) -> None:
    """Raise ``ValueError`` naming the key when ``trainer.strategy`` cannot run these settings (module docstring)."""
    strategy = config.get("trainer.strategy")
    name = strategy_name(strategy)
    short = name.rsplit(".", 1)[-1]
    if short in ("FSDPStrategy", "fsdp", "fsdp_cpu_offload") or name.startswith("fsdp"):
        raise ValueError(
            f"trainer.strategy={name} (FSDP1) is not supported: use FSDP2, "
            "--config configs/overlays/fsdp.yaml (maestro_lit.train.fsdp2.FSDP2Strategy; docs/scaling.md)"
        )
    if short == "ModelParallelStrategy":
        raise ValueError(
            "trainer.strategy=ModelParallelStrategy: use maestro_lit.train.fsdp2.FSDP2Strategy "
            "(configs/overlays/fsdp.yaml), which makes every process a data-parallel replica"
        )
    if short == "FSDP2Strategy":
        problems = fsdp2_refusals(
            str(config.get("model.rollout.engine") or "generate"),
            bool(config.get("model.sampling.merge_adapters_for_rollout")),
            bool(config.get("model.policy.load_in_4bit")),
            _callback_names(config.get("trainer.callbacks")),
        )
        if problems:
            raise ValueError("; ".join(problems))
    if name.startswith("deepspeed") or short == "DeepSpeedStrategy":
        stage = _init_args(strategy).get("stage", 2) if short == "DeepSpeedStrategy" else None
        if name.startswith("deepspeed_stage_3") or stage == 3:
            raise ValueError(
                f"trainer.strategy={name} (ZeRO-3) is not supported: it partitions the weights outside the hooks "
                "generation and the reference forward rely on; use ZeRO-2 (configs/overlays/deepspeed.yaml) or "
                "FSDP2 (configs/overlays/fsdp.yaml)"
            )

"""The policy model: loading and LoRA, the scoring forward, generation (rollout engines) and the reference weights."""

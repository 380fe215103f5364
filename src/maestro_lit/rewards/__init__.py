"""Reward components (docs/design.md §5), one small module per family; import them from their module.

Selectable in YAML by ``class_path``:

- ``length.LengthBand`` and ``redundancy.Redundancy`` — conciseness / repeated n-grams
- ``diversity.DistinctN`` and ``diversity.Novelty`` — lexical diversity, novelty vs. prompt
- ``rouge.RougeL`` and ``similarity.SemanticSimilarity`` — agreement with the reference
- ``reward_model.RewardModel`` — any HF sequence-classification reward model
- ``fluency.Fluency`` — reference-model log-probs from the scoring pass (no extra forward)
- ``constraints.VerifiableConstraints`` — per-item rule checks shared with IFEval
- ``callable.CallableReward`` — a TRL-style function given by import path

Nothing is imported here so that loading one component never pulls in another's model code.
"""

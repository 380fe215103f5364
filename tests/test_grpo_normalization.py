"""Per-component group normalisation (rank / z-score / none) on hand-made tensors."""

import pytest
import torch

from maestro_lit import grpo

NAN = float("nan")


def test_rank_is_novers_formula_with_ties_and_invalid_rows():
    # Group of 4: n_valid = 3; best → 1, i-th (0-based rank r) → (3 − r)/3; invalid → 0.
    scores = torch.tensor([[3.0], [1.0], [NAN], [2.0]])
    assert grpo.rank_within_groups(scores, 4).flatten().tolist() == pytest.approx([1.0, 1 / 3, 0.0, 2 / 3])
    # Ties share the average rank: ranks 0.5, 0.5, 2 of n = 3.
    tied = torch.tensor([[5.0], [5.0], [1.0]])
    assert grpo.rank_within_groups(tied, 3).flatten().tolist() == pytest.approx([2.5 / 3, 2.5 / 3, 1 / 3])
    # Infinite values count as invalid too; an all-invalid group is all 0.
    assert grpo.rank_within_groups(torch.tensor([[float("-inf")], [0.0], [NAN], [NAN]]), 2).flatten().tolist() == [
        0.0,
        1.0,
        0.0,
        0.0,
    ]


def test_rank_works_per_group_and_per_column():
    scores = torch.tensor([[1.0, 10.0], [2.0, 10.0], [9.0, NAN], [8.0, 3.0]])
    ranked = grpo.rank_within_groups(scores, 2)
    torch.testing.assert_close(ranked, torch.tensor([[0.5, 0.75], [1.0, 0.75], [1.0, 0.0], [0.5, 1.0]]))


def test_normalize_components_applies_each_columns_mode():
    scores = torch.tensor([[1.0, 4.0, 0.5], [3.0, 2.0, NAN], [2.0, 0.0, 2.0], [2.0, 0.0, 1.0]])
    out = grpo.normalize_components(scores, 2, ["rank", "zscore", "none"])
    torch.testing.assert_close(out[:, 0], grpo.rank_within_groups(scores[:, :1], 2).flatten())
    torch.testing.assert_close(out[:, 1], grpo.normalize_within_groups(scores[:, 1:2], 2).flatten())
    assert out[:, 2].tolist() == [0.5, 0.0, 2.0, 1.0]
    # The default is z-score for every column.
    torch.testing.assert_close(grpo.normalize_components(scores, 2), grpo.normalize_within_groups(scores, 2))
    with pytest.raises(ValueError, match="2 normalisation modes for 3"):
        grpo.normalize_components(scores, 2, ["rank", "none"])
    with pytest.raises(ValueError, match="unknown reward normalisation \\['minmax'\\]"):
        grpo.normalize_components(scores, 2, ["rank", "minmax", "none"])


def test_scalarize_takes_per_component_modes():
    raw = torch.tensor([[1.0, 0.0], [3.0, 1.0]])
    w = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # Column 0 ranked: 1 → 1/2, 3 → 1; weights pick column 0 only.
    assert grpo.scalarize(raw, w, 2, normalizations=["rank", "zscore"]).tolist() == pytest.approx([0.5, 1.0])
    assert grpo.scalarize(raw, w, 2).tolist() == pytest.approx(grpo.normalize_within_groups(raw, 2)[:, 0].tolist())

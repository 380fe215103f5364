"""Testbed v2: can one static weighting be as good as the per-category true weights?

A computation on the shipped reference texts, no training. For every prompt we build candidate
answers of every length L = 1..40 words and score them with the observable components:

- ``own``:     the first L words of the prompt's own reference, continued with the references of
               the next items of the same category (the best a policy could do: it knows the answer);
- ``generic``: the same, but starting from another item's reference of the same category (a policy
               that writes in the category's style without knowing this prompt's answer).

A policy trained with a scalarisation w picks, for EACH prompt, the length that maximises w·R
(generous to static: it may condition on the prompt). Its true utility is scored with the
category's true weights. The oracle picks with the true weights. We scan w over the simplex
(step 0.05) and report, per category, the best static and whether any single w reaches, for every
category at once, the oracle's utility (within ``tol``).

    python -m maestro_lab.testbed.static_check_v2 [--per-category 40] [--split train]
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch

from maestro_lab.paths import TESTBED_ASSETS

HERE = TESTBED_ASSETS["v2"]


def candidates(rows, family: str, max_len: int = 40):
    by_cat: dict[str, list[dict]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r)
    out = []
    for _category, items in by_cat.items():
        for k, r in enumerate(items):
            start = k if family == "own" else (k + 1) % len(items)
            stream = []
            for j in range(len(items)):
                stream += items[(start + j) % len(items)]["reference"].split()
                if len(stream) >= max_len:
                    break
            out.append((r, [" ".join(stream[:L]) for L in range(1, max_len + 1)]))
    return out


def score(spec, rows, family, per_category, max_len=40):
    from maestro_lab.testbed.truth import TrueUtility

    truth = TrueUtility(spec)
    seen: dict[str, int] = {}
    picked = []
    for r in rows:
        if seen.get(r["category"], 0) < per_category:
            seen[r["category"]] = seen.get(r["category"], 0) + 1
            picked.append(r)
    raw, cats = [], []
    for r, texts in candidates(picked, family, max_len):
        cols = {"category": [r["category"]] * len(texts), "reference": [r["reference"]] * len(texts)}
        raw.append(truth.components_matrix([r["prompt"]] * len(texts), texts, cols))
        cats.append(r["category"])
    return truth, torch.stack(raw), cats  # [P, L, K]


def analyse(truth, raw, cats, step=0.05, tol=0.01):
    K = raw.shape[-1]
    order = truth.categories
    W = torch.stack([truth.table[c] for c in cats])  # [P, K] true weights per prompt
    true_u = (raw * W[:, None, :]).sum(-1)  # [P, L]
    cat_idx = torch.tensor([order.index(c) for c in cats])

    def per_cat(u):  # u [P] -> [C]
        return torch.stack([u[cat_idx == i].mean() for i in range(len(order))])

    oracle = per_cat(true_u.max(-1).values)
    n = round(1 / step)
    grid = torch.tensor(
        [[k / n for k in c] + [(n - sum(c)) / n] for c in itertools.product(range(n + 1), repeat=K - 1) if sum(c) <= n]
    )
    choice = torch.einsum("plm,gm->gpl", raw, grid).argmax(-1)  # [G, P] length picked by each static w
    got = torch.gather(true_u.expand(len(grid), -1, -1), 2, choice[..., None]).squeeze(-1)  # [G, P]
    static = torch.stack([per_cat(g) for g in got])  # [G, C]
    gap = static - oracle  # <= 0
    return order, grid, oracle, static, gap, true_u, raw, cat_idx, choice


def report(spec, per_category, split, static_weights=None):
    rows = [json.loads(line) for line in (HERE / f"{split}.jsonl").read_text().splitlines() if line.strip()]
    lines = []
    for family in ("own", "generic"):
        truth, raw, cats = score(spec, rows, family, per_category)
        order, grid, oracle, static, gap, true_u, raw, cat_idx, choice = analyse(truth, raw, cats)
        best = static.mean(-1).argmax()
        all_ok = (gap > -0.01).all(-1)
        worst = gap.min(-1).values
        lines.append(f"[{family}] categories {order}; components {truth.names}")
        lines.append(
            f"  oracle true utility per category: {[round(float(x), 3) for x in oracle]} "
            f"(mean {float(oracle.mean()):.3f})"
        )
        opt_len = [int((true_u[cat_idx == i].argmax(-1) + 1).float().median()) for i in range(len(order))]
        lines.append(f"  oracle's median chosen length (words) per category: {opt_len}")
        lines.append(
            f"  best static w {[round(float(x), 2) for x in grid[best]]}: "
            f"per category {[round(float(x), 3) for x in static[best]]} "
            f"(mean {float(static[best].mean()):.3f}, gap {float(static[best].mean() - oracle.mean()):+.3f})"
        )
        if static_weights is not None:
            w = torch.tensor(static_weights, dtype=torch.float32)
            w = w / w.sum()
            k = int((grid - w).abs().sum(-1).argmin())
            lines.append(
                f"  static baseline w {[round(float(x), 2) for x in grid[k]]}: "
                f"per category {[round(float(x), 3) for x in static[k]]} "
                f"(mean {float(static[k].mean()):.3f}, gap {float(static[k].mean() - oracle.mean()):+.3f})"
            )
        lines.append(
            f"  static w within 0.01 of the oracle in EVERY category: {int(all_ok.sum())} of {len(grid)}; "
            f"smallest worst-category gap over all w: {float(worst.max()):+.3f}"
        )
        for i, c in enumerate(order):
            ok = gap[:, i] > -0.01
            lines.append(f"  {c}: {int(ok.sum())} of {len(grid)} static w reach its oracle utility")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--spec", default=str(HERE / "true_weights.json"))
    p.add_argument("--per-category", type=int, default=40)
    p.add_argument("--split", default="train")
    p.add_argument("--static", type=float, nargs="*", default=None)
    a = p.parse_args()
    print(report(a.spec, a.per_category, a.split, a.static))

"""Held-out evaluation of the testbed: true utility, length, redundancy and the Conductor's choices.

Runs ``pl_module.evaluate_prompts`` (greedy, so it consumes no random numbers and leaves the
training trajectory unchanged) at the start, every ``every_n_steps`` training steps
(``pl_module.rollouts_done``) and at the end of fit. Numbers go to the logger (``testbed/...``) and to
``testbed_eval.json`` / ``testbed_curve.csv`` in the run's log dir, which the comparison runner aggregates.

It also checks, on every training step, whether the training signal points at the truth:
the correlation between the method's advantages and the true-utility advantages of the same
completions, and, for the Conductor, how its meta-reward treats the category's "right" action.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from maestro_lab.testbed import metrics as tm
from maestro_lab.testbed.figures import action_figure
from maestro_lab.testbed.truth import HELDOUT_PROMPTS, TrueUtility
from maestro_lit import grpo
from maestro_lit.data.prompts import iter_rows


class TestbedEvaluation(Callback):
    """Evaluate on the held-out prompts with the true utility; record the training-signal diagnostics."""

    def __init__(
        self,
        heldout_path: str | None = None,
        weights_path: str | None = None,
        every_n_steps: int = 50,
        max_new_tokens: int | None = None,
        output_dir: str | None = None,
        styles: bool = False,
    ) -> None:
        """``styles``: also record which warm-up style (``testbed.behaviours``) each held-out answer took (v3)."""
        self.heldout_path, self.every_n_steps, self.max_new_tokens = heldout_path, every_n_steps, max_new_tokens
        self.styles = styles
        self.truth = TrueUtility(weights_path)
        self.output_dir = output_dir
        self.curve: list[dict[str, float]] = []
        self.final: dict[str, Any] = {}
        self.signal: dict[str, list[float]] = {"adv_true_corr": [], "meta_gap": [], "oracle_action_share": []}
        self.meta_by_action: dict[str, dict[str, list]] = {}  # category -> action -> [sum of meta-rewards, count]

    # ---------------------------------------------------------------- hooks
    def setup(self, trainer, pl_module, stage: str) -> None:
        rows = [row for _, row in iter_rows(self.heldout_path or str(HELDOUT_PROMPTS))]
        self.prompts = [r["prompt"] for r in rows]
        self.columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
        self.order = [c for c in self.truth.categories if c in set(self.columns["category"])]

    def on_train_start(self, trainer, pl_module) -> None:
        self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._training_signal(trainer, pl_module)
        step = pl_module.rollouts_done
        if self.every_n_steps and step % self.every_n_steps == 0 and not self._done(step):
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if not self._done(pl_module.rollouts_done):
            self._evaluate(trainer, pl_module)
        self.final = {**self.curve[-1], **self.final}
        self.final["signal"] = {k: (sum(v) / len(v) if v else float("nan")) for k, v in self.signal.items()}
        if self.meta_by_action:
            self.final["meta_reward_by_action"] = {
                c: {a: [total / max(n, 1), n] for a, (total, n) in cells.items()}
                for c, cells in self.meta_by_action.items()
            }
        self._write(trainer)

    # -------------------------------------------------------------- pieces
    def _done(self, step: int) -> bool:
        return bool(self.curve) and self.curve[-1]["step"] == step

    @torch.no_grad()
    def _evaluate(self, trainer, pl_module) -> None:
        result = pl_module.evaluate_prompts(self.prompts, self.columns, self.max_new_tokens)
        completions, categories, step = result.completions, self.columns["category"], pl_module.rollouts_done
        utility = self.truth(self.prompts, completions, self.columns)
        point = {"step": float(step), "true_utility": float(utility.mean())}
        point.update({f"true_utility/{c}": v for c, v in tm.per_category_mean(utility, categories, self.order).items()})
        point["length_words"] = float(tm.word_lengths(completions).mean())
        point["length_tokens"] = float(result.lengths.float().mean())
        point["redundancy"] = float(tm.redundancy(completions).mean())
        self.curve.append(point)
        self.final = {"completions": list(zip(self.prompts[:6], completions[:6]))}
        choice = result.choice
        self.final.update(self._weight_analysis(pl_module.component_names, choice.weights, categories))
        point["mi_weights_bits"] = self.final["mi_weights_bits"]
        if self.styles:
            self.final["styles"] = tm.style_shares(completions, categories, self.order)
        scalars = {f"testbed/{k}": v for k, v in point.items() if k != "step"}
        if choice.actions is not None:
            self.final.update(self._action_analysis(pl_module, choice, categories))
            scalars["testbed/mi_bits"] = self.final["mi_bits"]
            scalars["testbed/mi_bits_soft"] = self.final["mi_bits_soft"]
            self._figure(trainer, step)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)

    def _action_analysis(self, pl_module, choice, categories) -> dict[str, Any]:
        names = pl_module.scalarizer.action_names
        onehot = torch.nn.functional.one_hot(choice.actions.cpu(), len(names)).float()
        hard = tm.joint_from_probs(onehot, categories, self.order)
        soft = tm.joint_from_probs(choice.log_probs.detach().exp().cpu(), categories, self.order)
        table = lambda joint: {  # noqa: E731
            c: dict(zip(names, map(float, row))) for c, row in zip(self.order, tm.conditional(joint))
        }
        return {
            "action_names": names,
            "actions": table(hard),
            "action_probs": table(soft),
            "mi_bits": tm.mutual_information_bits(hard),
            "mi_bits_soft": tm.mutual_information_bits(soft),
        }

    def _weight_analysis(self, names, weights: torch.Tensor, categories) -> dict[str, Any]:
        """Mean evaluation weight per category and component, and I(category; the component weighted most)."""
        weights = weights.detach().float().cpu()
        dominant = torch.nn.functional.one_hot(weights.argmax(-1), len(names)).float()
        means = {
            c: dict(zip(names, map(float, row)))
            for c, row in zip(self.order, tm.conditional(tm.joint_from_probs(weights, categories, self.order)))
        }
        return {
            "weights": means,
            "mi_weights_bits": tm.mutual_information_bits(tm.joint_from_probs(dominant, categories, self.order)),
        }

    def _figure(self, trainer, step: int) -> None:
        experiment = getattr(trainer.logger, "experiment", None)
        if hasattr(experiment, "add_figure"):
            figure = action_figure(self.final["action_probs"], self.final["actions"], self.final["mi_bits"])
            experiment.add_figure("testbed/conductor_actions", figure, global_step=step)

    def _training_signal(self, trainer, pl_module) -> None:
        """Does this step's training advantage agree with the true-utility advantage of the same completions?"""
        step = pl_module.last_step
        if step is None or step.categories is None or not set(self.truth.names) <= set(step.component_names):
            return
        order = [list(step.component_names).index(n) for n in self.truth.names]
        true_u = self.truth.combine(step.raw_rewards[:, order], step.categories)
        G = step.group_size
        true_adv, adv = grpo.group_advantages(true_u, G), step.advantages.float().cpu()
        logged = {"testbed/signal/adv_true_corr": tm.pearson(adv, true_adv)}
        actions = step.actions
        if actions is not None:
            table = pl_module.scalarizer.action_table.cpu()[:, order]  # columns in the truth's order
            right = torch.tensor([tm.nearest_action(table, self.truth.table[c]) for c in step.categories])
            hit = actions.cpu() == right
            logged["testbed/signal/oracle_action_share"] = float(hit.float().mean())
            meta = pl_module.scalarizer.meta_reward(step.advantages, step.raw_rewards, G).float().cpu()
            if hit.any() and (~hit).any():
                logged["testbed/signal/meta_gap"] = float(meta[hit].mean() - meta[~hit].mean())
            names = pl_module.scalarizer.action_names
            for i, (category, action) in enumerate(zip(step.categories, actions.cpu().tolist())):
                cell = self.meta_by_action.setdefault(category, {}).setdefault(names[action], [0.0, 0])
                cell[0], cell[1] = cell[0] + float(adv[i]), cell[1] + 1
        for key, value in logged.items():
            if value == value:  # skip NaN
                self.signal[key.rsplit("/", 1)[1]].append(value)
        for logger in trainer.loggers:
            logger.log_metrics(logged, step=step.step)

    def _write(self, trainer) -> None:
        out = Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "testbed_eval.json").write_text(json.dumps({"curve": self.curve, "final": self.final}, indent=1))
        with (out / "testbed_curve.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.curve[0]))
            writer.writeheader()
            writer.writerows(self.curve)

"""A fast simulator of the bi-level MAESTRO loop: pure torch, no language model, < 1 s per run.

Why: on the language-model testbeds no method separated from static weights, because the
tiny policy could not explore the trade-offs. Here the policy can reach every
behaviour, so the question "does the scalariser pick the right trade-off per prompt?" has
resolution, and ≥ 20 seeds per method take about a minute on one core.

**The world** (``world.py``, fixed at 2026-11-26 10:03 UTC before the first comparison run).
Four prompt categories (factoid, explain, howto, chat) and nine response types = length band
(short 15 / medium 60 / long 150 words) × style (plain / structured / padded). Each type has
a mean score on K = 4 observable components — detail (grows with length; padding fools it),
brevity (1 − words/160), format (structured best), preference (a length-biased reward model
that dislikes redundancy) — and a completion shows those means plus N(0, 0.25²) noise.
The true utility of a type for a category is that category's weighting of the component
means (``TRUE_WEIGHTS``); training never sees it, except the ``trusted`` method's labels
(true utility of the completion's type on 25 % of prompts, NaN elsewhere).

**Why it can separate methods.** Any static weighting w makes one type the best for every
category (argmax_t w·means_t, the same for all); the best such w on a simplex grid is worth
0.668, while each category's own best type is worth 0.767 on average (``static_check``,
asserted by the tests): factoid and chat want short answers, explain and howto long
structured ones. Only a prompt-dependent scalarisation can close that gap.

**The loop** (``loop.py``) is the project's step with the policy and world simulated: a
tabular softmax policy π_θ(type | category) samples G completions per prompt; the real
``Scalarizer.choose`` (reading a hidden vector h = fixed random embedding of category + type,
as an LM's final hidden state carries both), ``grpo.scalarize`` (z-score per group, then
w·R̃), ``grpo.group_advantages``, ``grpo.clipped_policy_loss`` (μ = 1, so REINFORCE) on
``OuterLoop.policy_advantages`` (the joint Conductor's grad-collecting leaf), then
``OuterLoop.step`` (meta-reward, buffer, an update every M steps, or the joint gradient).

**The methods** (``methods.py``) are ``model:`` blocks built with jsonargparse as the CLI builds
them (``presets.py``): ``equal``, ``random``, ``maestro`` (the paper preset) and
``maestro_joint`` are the project's own ``configs/methods/*.yaml``; ``single``, ``trusted`` and
``oracle`` are written in the sim because they name its components. One documented sim
setting departs from the files: every learned method's Conductor lr is ``SimConfig.conductor_lr``
(0.05, with the file's optimiser class, AdamW) because the sim has 150 steps where a paper run
has thousands; ``maestro_paper_lr`` keeps the paper's 5e-5. ``label_free.py`` holds two
label-free candidates and why none can win here.

**Where it departs from the language-model loop.** One "token" per completion, no KL and no
reference model; the policy is tabular per category, so it cannot generalise across
categories and it sees the category directly (an LM infers it from the prompt); the
Conductor's h is a clean feature embedding, not a learned representation; the outer learning
rate (above); reward noise is Gaussian and components are independent given the type; there
is no length cost in compute. With one token per completion every loss type weighs the
completions equally, so the joint Conductor's policy-loss gradient is exactly 0 here
(group advantages sum to 0), whatever ``loss_type``.

A method may set its own per-component normalisations and ``scale_rewards`` (``Method``); ``bias.py`` uses
that for the meta-reward's bias experiments (``python -m maestro_lab.sim.bias``), with a null world whose
components carry no utility information but whose format failures differ by category.

Run: ``python -m maestro_lab.sim --seeds 20 --out results/sim``.
"""

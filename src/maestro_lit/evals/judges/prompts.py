"""Judge prompts in the form each benchmark publishes them (for the HTTP/LLM judge).

The wording follows the published templates (FastChat's MT-Bench ``judge_prompts.jsonl``,
Arena-Hard-Auto's ``judge_config``, AlpacaEval's ranking prompt, WritingBench's criterion
prompt) closely enough that an LLM judge returns the same grade format: ``[[7]]``,
``[[A>B]]``, ``Output (a)``, ``{"score": 7}``. Model-based judges ignore them.
"""

from __future__ import annotations

from maestro_lit.evals.judges.base import JudgePrompt

_MT_SYSTEM = "You are a helpful assistant."
_MT_RULES = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
    "to the user question displayed below. Your evaluation should consider factors such as the helpfulness, "
    "relevance, accuracy, depth, creativity, and level of detail of the response. Begin your evaluation by "
    "providing a short explanation. Be as objective as possible. After providing your explanation, you must "
    'rate the response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for example: '
    '"Rating: [[5]]".'
)
_MT_REF_RULES = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
    "to the user question displayed below. Your evaluation should consider correctness and helpfulness. You "
    "will be given a reference answer and the assistant's answer. Begin your evaluation by comparing the "
    "assistant's answer with the reference answer. Identify and correct any mistakes. Be as objective as "
    "possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly "
    'following this format: "[[rating]]", for example: "Rating: [[5]]".'
)
_MT_TURN2 = " Your evaluation should focus on the assistant's answer to the second user question."

MT_BENCH_SINGLE = JudgePrompt(
    "single-v1",
    _MT_SYSTEM,
    "[Instruction]\n"
    + _MT_RULES
    + "\n\n[Question]\n{question_1}\n\n[The Start of Assistant's Answer]\n{answer_1}\n[The End of Assistant's Answer]",
    "score",
)
MT_BENCH_SINGLE_REF = JudgePrompt(
    "single-math-v1",
    _MT_SYSTEM,
    "[Instruction]\n" + _MT_REF_RULES + "\n\n[Question]\n{question_1}\n\n"
    "[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n"
    "[The Start of Assistant's Answer]\n{answer_1}\n[The End of Assistant's Answer]",
    "score",
)
_MT_CONVERSATION = (
    "<|The Start of Assistant A's Conversation with User|>\n\n"
    "### User:\n{question_1}\n\n### Assistant A:\n{answer_1}\n\n"
    "### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n<|The End of Assistant A's Conversation with User|>"
)
MT_BENCH_MULTI = JudgePrompt("single-v1-multi-turn", _MT_RULES + _MT_TURN2, _MT_CONVERSATION, "score")
MT_BENCH_MULTI_REF = JudgePrompt(
    "single-math-v1-multi-turn",
    _MT_REF_RULES + _MT_TURN2,
    "<|The Start of Reference Answer|>\n\n### User:\n{question_1}\n\n"
    "### Reference answer:\n{ref_answer_1}\n\n### User:\n{question_2}\n\n"
    "### Reference answer:\n{ref_answer_2}\n\n<|The End of Reference Answer|>\n\n\n" + _MT_CONVERSATION,
    "score",
)

ARENA_HARD = JudgePrompt(
    "arena-hard-v0.1",
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the "
    "user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to "
    "evaluate which assistant's answer is better.\n\nBegin your evaluation by generating your own answer to the "
    "prompt. You must provide your answers before judging any answers.\n\nWhen evaluating the assistants' answers, "
    "compare both "
    "assistants' answers with your answer. You must identify and correct any mistakes or inaccurate information.\n\n"
    "Then consider if the assistant's answers are helpful, relevant, and concise. Then consider the creativity and "
    "novelty of the assistant's answers when needed. Finally, identify any missing important information in the "
    "assistants' answers that would be beneficial to include when responding to the user prompt.\n\nAfter providing "
    "your explanation, you must output only one of the following choices as your final verdict with a label:\n\n"
    "1. Assistant A is significantly better: [[A>>B]]\n2. Assistant A is slightly better: [[A>B]]\n"
    "3. Tie, relatively the same: [[A=B]]\n4. Assistant B is slightly better: [[B>A]]\n"
    '5. Assistant B is significantly better: [[B>>A]]\n\nExample output: "My final verdict is tie: [[A=B]]".',
    "<|User Prompt|>\n{question}\n\n"
    "<|The Start of Assistant A's Answer|>\n{answer_a}\n<|The End of Assistant A's Answer|>\n\n"
    "<|The Start of Assistant B's Answer|>\n{answer_b}\n<|The End of Assistant B's Answer|>",
    "verdict",
)

ALPACA_EVAL = JudgePrompt(
    "alpaca_eval_gpt4",
    "You are a helpful assistant, that ranks models by the quality of their answers.",
    "I want you to create a leaderboard of different large-language models. To do so, I will give you the instructions "
    "(prompts) given to the models, and the responses of two models. Please rank the models based on which responses "
    "would be preferred by humans.\n\n## Instruction\n\n{question}\n\n## Model Outputs\n\n"
    "### Output (a):\n{answer_a}\n\n### Output (b):\n{answer_b}\n\n## Task\n\n"
    "Evaluate the models based on the quality and relevance of their outputs, and select the model that generated the "
    'best output. Answer by providing the model identifier of the best model: "Output (a)" or "Output (b)". '
    "Your response should only contain one of these two identifiers.",
    "verdict",
)

WRITING_BENCH = JudgePrompt(
    "writingbench-criteria",
    "You are an expert evaluator with extensive experience in evaluating responses to writing queries.",
    "Evaluate the Response based on the Query and the Criteria provided below.\n\n** Criteria **\n```{criteria}```\n\n"
    "** Query **\n```{question}```\n\n** Response **\n```{answer}```\n\nProvide your evaluation based on the criteria "
    "restated below:\n```{criteria}```\n\n** Output format **\nReturn the results in the following JSON format; only "
    'output this JSON and nothing else:\n```json\n{{"score": an integer score between 1 and 10, "reason": "a short '
    'justification"}}\n```',
    "score",
)

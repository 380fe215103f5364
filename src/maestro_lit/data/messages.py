"""Conversational prompts: a row's ``prompt`` as TRL's list of ``{"role", "content"}`` messages, beside plain strings.

Why TRL's shape: a prompt set prepared for TRL's ``GRPOTrainer`` (system turns, earlier turns of a dialogue)
trains here unchanged. A plain string is one user turn. The policy's chat template renders either
(``policy.rollout.render_prompt``): a conversation ending in a user (or system, tool) turn gets the generation
prompt; one ending in an assistant turn is continued, that turn's text being the start of the answer (TRL's
``continue_final_message``). Roles are not restricted: the chat template decides which it knows. Extra keys of a
message (``name``, ``tool_calls``) reach the template as they are.

Reward components of the project read ``prompt_text`` (a conversation's turns as one text, a blank line between
turns); ``CallableReward`` receives the messages themselves, as TRL gives them (``conversational_prompts``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Message = dict[str, Any]
Conversation = list[Message]
Prompt = str | Conversation
"""A row's ``prompt``: plain text (one user turn) or a conversation."""


def is_conversation(prompt: Any) -> bool:
    return isinstance(prompt, (list, tuple))


def prompt_problem(prompt: Any) -> str | None:
    """Why ``prompt`` is neither a non-empty string nor a well-formed conversation, or None when it is fine."""
    if isinstance(prompt, str):
        return None if prompt.strip() else "'prompt' is an empty string"
    if not is_conversation(prompt):
        return (
            f"'prompt' must be a non-empty string or a list of {{role, content}} messages, "
            f"got {type(prompt).__name__} {prompt!r:.60}"
        )
    if not prompt:
        return "'prompt' is an empty list of messages"
    for index, message in enumerate(prompt):
        where = f"'prompt' message {index}"
        if not isinstance(message, Mapping):
            return f"{where} must be an object with 'role' and 'content', got {type(message).__name__} {message!r:.60}"
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role.strip():
            return f"{where} needs a non-empty string 'role' (system, user, assistant, …), got {role!r:.40}"
        if not isinstance(content, str):
            return (
                f"{where} ({role}) needs a string 'content', got {type(content).__name__}: "
                "multimodal content parts are not supported"
            )
    if not any(message["content"].strip() for message in prompt):
        return "every message of 'prompt' has empty content"
    return None


def as_conversation(prompt: Prompt) -> Conversation:
    """The messages of ``prompt``: a plain string is one user turn; a conversation is copied (plain dicts)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(message) for message in prompt]


def continues_answer(conversation: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the conversation ends in an assistant turn, which generation continues (TRL's prefill)."""
    return bool(conversation) and conversation[-1].get("role") == "assistant"


def prompt_text(prompt: Prompt) -> str:
    """The prompt as one text for the project's reward components and logs: a string as it is, a conversation's
    contents with a blank line between turns (the rendering without a chat template, ``render_prompt``)."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(str(message["content"]) for message in prompt)


def wrap_last_user_turn(prompt: Prompt, wrap: Any) -> Prompt:
    """``wrap`` applied to a string prompt, or to the content of a conversation's last user turn (a prompt
    template such as NOVER's wraps the question, not the system turn or the earlier dialogue)."""
    if isinstance(prompt, str):
        return wrap(prompt)
    conversation = as_conversation(prompt)
    for message in reversed(conversation):
        if message["role"] == "user":
            message["content"] = wrap(message["content"])
            break
    return conversation


def conversational_prompts(
    prompts: Sequence[Prompt], completions: Sequence[str]
) -> tuple[list[Conversation], list[Conversation]] | None:
    """TRL's conversational reward inputs when any prompt is a conversation, else None: the prompts as message
    lists and each completion as ``[{"role": "assistant", "content": …}]``. As in TRL, a prompt that ends in an
    assistant turn (a prefill) gives that turn's text to the completion and loses it from the prompt."""
    if not any(is_conversation(prompt) for prompt in prompts):
        return None
    conversations, answers = [], []
    for prompt, completion in zip(prompts, completions):
        conversation = as_conversation(prompt)
        start = conversation.pop()["content"] if continues_answer(conversation) else ""
        conversations.append(conversation)
        answers.append([{"role": "assistant", "content": start + completion}])
    return conversations, answers

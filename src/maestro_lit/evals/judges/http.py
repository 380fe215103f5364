"""OpenAI-compatible HTTP judge (vLLM, TGI, llama.cpp server, a hosted API), stdlib only.

Why ``urllib``: no client dependency for users who never call a judge. It sends the
benchmark's published judge prompt to ``{base_url}/chat/completions`` at temperature 0,
retries 5xx/429 and network errors with exponential backoff, gives each call ``timeout_s``,
and turns a reply without a grade into a failed item (``None``), never an exception.
The API key is read from the environment variable named by ``api_key_env`` and never logged.

``replies`` is the one way many chats are sent (``max_workers`` at once); the benchmark suite's
grades and verdicts and the seven tasks' votes (``votes.HttpVoteJudge``) all go through it.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from maestro_lit.evals.judges.base import GradeRequest, Judge, JudgePrompt, Messages, PairRequest
from maestro_lit.evals.judges.parse import parse_score, parse_verdict

log = logging.getLogger(__name__)


class HttpJudge(Judge):
    tag = ""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: Optional[str] = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        max_workers: int = 4,
    ) -> None:
        if max_retries < 0 or max_workers < 1:
            raise ValueError("HttpJudge needs max_retries >= 0 and max_workers >= 1")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.max_tokens, self.temperature, self.max_workers = max_tokens, temperature, max_workers

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ValueError(f"HttpJudge: environment variable {self.api_key_env!r} is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def reply(self, messages: Messages) -> Optional[str]:
        """The judge's reply text, or ``None`` after retries/timeouts/bad responses."""
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        data = json.dumps(body).encode("utf-8")
        headers = self._headers()
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                return str(payload["choices"][0]["message"]["content"])
            except urllib.error.HTTPError as err:
                if err.code >= 500 or err.code == 429:
                    log.warning(
                        "judge %s answered HTTP %d (attempt %d/%d)",
                        self.url,
                        err.code,
                        attempt + 1,
                        self.max_retries + 1,
                    )
                    continue
                log.warning("judge %s answered HTTP %d; not retrying", self.url, err.code)
                return None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                log.warning(
                    "judge %s unreachable or timed out (%s), attempt %d/%d",
                    self.url,
                    type(err).__name__,
                    attempt + 1,
                    self.max_retries + 1,
                )
                continue
            except (ValueError, KeyError, IndexError, TypeError):
                log.warning("judge %s sent a response without choices[0].message.content", self.url)
                return None
        return None

    def replies(self, conversations: Sequence[Messages]) -> list[Optional[str]]:
        """One reply per conversation, ``max_workers`` requests at once, ``None`` where one failed.

        A missing API key raises here, before any request: it is a setup error, not a failed item.
        """
        self._headers()
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(self._reply_or_none, conversations))

    def _reply_or_none(self, messages: Messages) -> Optional[str]:
        try:
            return self.reply(messages)
        except Exception as err:  # noqa: BLE001 - one broken request is one failed item, never a crashed evaluation
            log.warning("judge %s request failed: %s", self.url, err)
            return None

    def _ask_all(self, prompt: JudgePrompt, fields: list[dict[str, str]]) -> list[Optional[str]]:
        system = {"role": "system", "content": prompt.system}
        return self.replies([[system, {"role": "user", "content": prompt.user.format(**f)}] for f in fields])

    def grade(self, requests: Sequence[GradeRequest], prompt: JudgePrompt) -> list[Optional[float]]:
        replies = self._ask_all(prompt, [r.fields for r in requests])
        return [None if reply is None else parse_score(reply) for reply in replies]

    def compare(self, requests: Sequence[PairRequest], prompt: JudgePrompt) -> list[Optional[float]]:
        fields = []
        for r in requests:
            a, b = (r.answer, r.baseline) if r.model_first else (r.baseline, r.answer)
            fields.append({**r.fields, "answer_a": a, "answer_b": b})
        out: list[Optional[float]] = []
        for r, reply in zip(requests, self._ask_all(prompt, fields)):
            share_a = None if reply is None else parse_verdict(reply)
            out.append(None if share_a is None else (share_a if r.model_first else 1.0 - share_a))
        return out

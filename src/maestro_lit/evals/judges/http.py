"""OpenAI-compatible HTTP judge (vLLM, TGI, llama.cpp server, a hosted API), stdlib only.

Why ``urllib``: no client dependency for users who never call a judge. It sends the
benchmark's published judge prompt to ``{base_url}/chat/completions`` at temperature 0,
retries 5xx/429 and network errors with exponential backoff, gives each call ``timeout_s``,
and turns a reply without a grade into a failed item (``None``), never an exception.
The API key is read from the environment variable named by ``api_key_env`` and never logged.

What counts as a reply, and where the key may go:

- **No redirect is followed.** A 3xx answer is a failed request, logged as an error naming the
  URL and the ``Location`` it pointed to, and the rest of that batch is not sent: following it
  would re-send the ``Authorization`` header to whatever origin the server names (urllib also
  turns a redirected POST into a GET, so the "reply" would answer no prompt). Set ``base_url`` to
  the final address instead.
- A reply counts only when it answers the POST sent: HTTP 200 from the URL requested, a JSON
  object whose ``choices[0].message.content`` is a string, at most ``MAX_REPLY_BYTES``.
  Anything else is a failed request (``None``).

Time limits: ``timeout_s`` bounds each socket wait and ``deadline_s`` one ``replies`` call as a
whole (for the seven tasks: one task's evaluation, controls included). At the deadline the
requests still waiting are given up and answer ``None``: their items are undecided, the
evaluation and the run finish. Every wait (socket, backoff) is cut to the time left.

``replies`` is the one way many chats are sent (``max_workers`` at once); the benchmark suite's
grades and verdicts and the seven tasks' votes (``votes.HttpVoteJudge``) all go through it.
``check`` is called by the evaluation callbacks at setup, so a missing key or a malformed URL
stops the run before training, naming the setting.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Optional

from maestro_lit.evals.judges.base import GradeRequest, Judge, JudgePrompt, Messages, PairRequest
from maestro_lit.evals.judges.parse import parse_score, parse_verdict

log = logging.getLogger(__name__)
MAX_REPLY_BYTES = 8 * 1024 * 1024
DEFAULT_DEADLINE_S = 3600.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turns every 3xx into an ``HTTPError``: the request and its key never leave for another URL."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def check_url(url: str, setting: str = "base_url") -> None:
    """Raise ``ValueError`` unless ``url`` is an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"judge {setting}: {url!r} is not an http:// or https:// URL with a host")


def _content(payload: object) -> Optional[str]:
    """``choices[0].message.content`` of a chat completion, or ``None`` when the JSON is not one."""
    if not isinstance(payload, dict):
        return None
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else None


class HttpJudge(Judge):
    """Args as the module docstring says; ``deadline_s`` ``None`` or 0 means no overall limit."""

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
        deadline_s: Optional[float] = DEFAULT_DEADLINE_S,
    ) -> None:
        if max_retries < 0 or max_workers < 1:
            raise ValueError("HttpJudge needs max_retries >= 0 and max_workers >= 1")
        if timeout_s <= 0 or (deadline_s is not None and deadline_s < 0):
            raise ValueError("HttpJudge needs timeout_s > 0 and deadline_s >= 0 (0 or None: no deadline)")
        check_url(base_url)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.max_tokens, self.temperature, self.max_workers = max_tokens, temperature, max_workers
        self.deadline_s = deadline_s or None
        self._stopped: Optional[str] = None  # why the current batch stopped sending (a redirect)
        self.missed_deadline = 0  # requests of the last ``replies`` call without a reply when the deadline passed

    def check(self) -> None:
        """Raise ``ValueError`` naming the setting: a malformed URL, or ``api_key_env`` naming an unset variable."""
        check_url(self.url, "base_url")
        self._headers()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ValueError(
                    f"judge api_key_env: the environment variable {self.api_key_env!r} is not set "
                    f"(export it before the run, or drop api_key_env for a server without a key)"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def reply(self, messages: Messages, deadline: Optional[float] = None) -> Optional[str]:
        """The judge's reply text, or ``None`` after retries/timeouts/bad responses/a redirect.

        ``deadline``: a ``time.monotonic()`` instant after which nothing more is sent or waited for.
        """
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        data = json.dumps(body).encode("utf-8")
        headers = self._headers()

        def left() -> float:
            return self.timeout_s if deadline is None else min(self.timeout_s, deadline - time.monotonic())

        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(max(0.0, min(self.backoff_s * 2 ** (attempt - 1), left())))
            if self._stopped or left() <= 0:
                return None
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with _OPENER.open(request, timeout=left()) as response:
                    if response.status != 200 or response.geturl() != self.url:
                        status, where = response.status, response.geturl()
                        log.warning("judge %s answered HTTP %d from %s; not counted", self.url, status, where)
                        return None
                    raw = response.read(MAX_REPLY_BYTES + 1)
                if len(raw) > MAX_REPLY_BYTES:
                    log.warning("judge %s sent more than %d bytes; not counted", self.url, MAX_REPLY_BYTES)
                    return None
                content = _content(json.loads(raw.decode("utf-8")))
                if content is None:
                    log.warning("judge %s sent a response without choices[0].message.content", self.url)
                return content
            except urllib.error.HTTPError as err:
                if 300 <= err.code < 400:
                    where = err.headers.get("Location", "?") if err.headers else "?"
                    if not self._stopped:
                        log.error(
                            "judge %s answered HTTP %d, a redirect to %s: redirects are not followed (the API key "
                            "would go with it); set base_url to the final address. No further requests this batch.",
                            self.url,
                            err.code,
                            where,
                        )
                    self._stopped = f"HTTP {err.code} redirect"
                    return None
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
            except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets, truncated replies
                log.warning(
                    "judge %s unreachable or timed out (%s), attempt %d/%d",
                    self.url,
                    type(err).__name__,
                    attempt + 1,
                    self.max_retries + 1,
                )
                continue
            except (ValueError, UnicodeDecodeError):
                log.warning("judge %s sent a response that is not JSON", self.url)
                return None
        return None

    def replies(self, conversations: Sequence[Messages]) -> list[Optional[str]]:
        """One reply per conversation, ``max_workers`` requests at once, ``None`` where one failed.

        A missing API key raises here, before any request: it is a setup error, not a failed item.
        Returns by ``deadline_s`` (plus a moment) whatever the server does; the requests still
        waiting then answer ``None`` (counted in ``missed_deadline``).
        """
        self._headers()
        self._stopped, self.missed_deadline = None, 0
        if not conversations:
            return []
        deadline = None if self.deadline_s is None else time.monotonic() + self.deadline_s
        pool = ThreadPoolExecutor(max_workers=self.max_workers)
        try:
            futures = [pool.submit(self._reply_or_none, messages, deadline) for messages in conversations]
            wait(futures, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()) + 1.0)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # at the deadline, the requests still waiting are dropped
        out = [f.result() if f.done() and not f.cancelled() else None for f in futures]
        if deadline is not None and time.monotonic() >= deadline:
            self.missed_deadline = sum(o is None for o in out)
            log.warning(
                "judge %s: the evaluation deadline passed (deadline_s=%g); %d of %d requests have no reply, "
                "their votes are missing and items without any vote are undecided",
                self.url,
                self.deadline_s,
                self.missed_deadline,
                len(out),
            )
        return out

    def _reply_or_none(self, messages: Messages, deadline: Optional[float] = None) -> Optional[str]:
        try:
            return self.reply(messages, deadline)
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

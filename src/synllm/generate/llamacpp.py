"""llama.cpp backend (llama-cpp-python): GGUF models on CPU, the project's default local path.

Measured on a 2-core CPU with SmolLM2-135M Q4_1 (benchmarks/constrained_decoding.md): load
0.1 s, 45-85 tokens/s; with a JSON-schema grammar every record parses. Constrained mode makes
one call per record (the prompt prefix stays in llama.cpp's KV cache, so only the record is
decoded each time); unconstrained mode makes one call per mini-batch with a token budget for
all its records, like the paper.

With ``generation.parallel_sequences`` > 1 (the default, :data:`PARALLEL_SEQUENCES`) the
records of a round (field-wise) or its mini-batches (unconstrained) are decoded as parallel
sequences of one llama.cpp batch instead (:mod:`synllm.generate.llamacpp_batch`); 1 keeps the
one-sequence path above, byte for byte.

The decode grammar is :func:`synllm.generate.grammar.record_gbnf` (card-aware; see there).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from synllm.errors import ConfigError
from synllm.generate.base import (
    BackendStats,
    GenerationContext,
    GenerationSettings,
    call_seed,
    resolve_constrained,
    token_budget,
)
from synllm.generate.grammar import MAX_VALUE_TOKENS, field_plan, record_gbnf
from synllm.generate.sampler import LazyGrammarSampler, value_sampler

MAX_CTX = 8192
"""Context cap (tokens): the embedded models' KV cache stays small on CPU."""

PARALLEL_SEQUENCES = 16
"""Default ``generation.parallel_sequences``: records (or unconstrained mini-batches) decoded
together by :class:`~synllm.generate.llamacpp_batch.SequencePool`; the best of widths 1-16 on
the 2-core reference machine (benchmarks/generation_parallel.md; the issue's quiet bare loop:
99.8 tok/s at 1 sequence, 178 at 8, 196 at 16)."""


def format_prompt(llm: Any, spec: Any, system: str, user: str) -> tuple[str, str]:
    """(prompt text, how) using the GGUF's chat template when it has one, else plain_format."""
    template = (llm.metadata or {}).get("tokenizer.chat_template")
    if spec.chat_template == "auto" and template:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = _token_text(llm, llm.token_eos())
        bos = _token_text(llm, llm.token_bos())
        fmt = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
        if spec.system_role and system:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        else:
            messages = [{"role": "user", "content": f"{system}\n\n{user}" if system else user}]
        return fmt(messages=messages).prompt, "chat_template"
    return spec.plain_format.format(system=system, user=user), "plain"


def _token_text(llm: Any, token: int) -> str:
    if token is None or token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")


def make_llama(lazy_grammar: bool = True, **kwargs: Any) -> Any:
    """``llama_cpp.Llama(**kwargs)``; with ``lazy_grammar`` its grammar-bound sampling goes
    through :class:`LazyGrammarSampler` (plain sampling, penalties, mirostat and logits
    processors keep llama-cpp-python's own chain)."""
    from llama_cpp import Llama

    if not lazy_grammar:
        return Llama(**kwargs)

    class LazyGrammarLlama(Llama):
        grammar_stats = {"steps": 0, "full_passes": 0}

        def _init_sampler(self, **kw: Any) -> Any:
            grammar = kw.get("grammar")
            plain = (
                kw.get("logits_processor") is None
                and not kw.get("mirostat_mode")
                and kw.get("repeat_penalty", 1.0) == 1.0
                and not kw.get("frequency_penalty")
                and not kw.get("presence_penalty")
                and kw.get("temp", 0.8) > 0
            )
            if grammar is None or not plain:
                return super()._init_sampler(**kw)
            self._flush_grammar_stats()
            sampler = LazyGrammarSampler(
                self,
                grammar,
                kw.get("top_k", 40),
                kw.get("top_p", 0.95),
                kw.get("min_p", 0.05),
                kw.get("typical_p", 1.0),
                kw.get("temp", 0.8),
                self._seed,
            )
            self._lazy = sampler
            return sampler

        def _flush_grammar_stats(self) -> None:
            lazy = getattr(self, "_lazy", None)
            if lazy is not None:
                self.grammar_stats["steps"] += lazy.steps
                self.grammar_stats["full_passes"] += lazy.full_passes
                lazy.steps = lazy.full_passes = 0

    LazyGrammarLlama.grammar_stats = {"steps": 0, "full_passes": 0}
    return LazyGrammarLlama(**kwargs)


class LlamaCppBackend:
    """GGUF model through llama-cpp-python (see module docstring)."""

    name = "llamacpp"
    batched = True

    def __init__(self) -> None:
        self.stats = BackendStats(device="cpu", quantization="gguf")
        self.llm: Any = None
        self.spec: Any = None
        self.constrained = False
        self.fieldwise = True
        self.lazy_grammar = True
        self._grammars: dict[str, Any] = {}
        self._plans: dict[str, Any] = {}
        self._grammar_steps = 0
        self._grammar_full = 0
        self.parallel = 1
        self._pool: Any = None
        self.slot_order: list[int] | None = None
        """Tests: the order in which the pool hands out its slots (default 0, 1, ...)."""
        self.trace: list | None = None
        """Tests: a list the pool appends every step's ``[(job key, field, slot), ...]`` to."""
        self._threads = 1

    def load(
        self, spec: Any, settings: GenerationSettings, context: GenerationContext | None
    ) -> None:
        """Open the GGUF file (never downloads); ``n_threads`` from the registry."""
        # llama.cpp's OpenMP threads otherwise spin while they wait: beside another job on the
        # same cores (the grid runs evaluate beside generate) a spinning decode starves (bare
        # loop, oversubscribed 2 cores: 0.17 tok/s spinning, 43.6 passive; the quiet numbers of
        # benchmarks/generation_parallel.md were measured with it).
        # Read by libgomp when llama.cpp's library loads, so it must be set before the import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import llama_cpp  # noqa: F401
        except ImportError:  # pragma: no cover - dependency of the project
            raise ConfigError("models: backend 'llamacpp' needs llama-cpp-python") from None
        path = spec.gguf_path()
        n_ctx = min(spec.context or 4096, MAX_CTX)
        threads = spec.threads or os.cpu_count() or 1
        self.lazy_grammar = bool(getattr(settings, "lazy_grammar", True))
        self.llm = make_llama(
            lazy_grammar=self.lazy_grammar,
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            seed=0,
            verbose=False,
        )
        self.spec = spec
        self.constrained = resolve_constrained(settings.constrained, "llamacpp", spec)
        self.stats.constrained = self.constrained
        self.stats.quantization = _gguf_type(path.name)
        self.stats.extra["n_ctx"] = n_ctx
        self.fieldwise = bool(getattr(settings, "fieldwise", True))
        self.stats.extra["lazy_grammar"] = self.lazy_grammar
        if self.constrained:
            self.stats.extra["decoding"] = "fieldwise" if self.fieldwise else "record"
        self.stats.extra["threads"] = threads
        self._threads = threads
        self.parallel = int(getattr(settings, "parallel_sequences", None) or PARALLEL_SEQUENCES)
        self.stats.extra["parallel_sequences"] = self.parallel if self._pooled() else 1

    def _pooled(self) -> bool:
        """Parallel sequences: width > 1, field-wise or unconstrained decoding (record-at-a-time
        constrained decoding keeps the one-sequence path)."""
        return self.parallel > 1 and (not self.constrained or self.fieldwise)

    def parallel_width(self, settings: GenerationSettings, requests: list[tuple]) -> int:
        """Mini-batches the run loop hands :meth:`generate_many` at once: all of a round's
        (the pool keeps its sequences busy across them), or 1 on the one-sequence path."""
        return max(1, len(requests)) if self._pooled() else 1

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def grammar(self, schema: dict) -> Any:
        """LlamaGrammar of one record (cached per schema)."""
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_string(record_gbnf(schema), verbose=False)
        return self._grammars[key]

    def _complete(
        self,
        prompt: str,
        max_tokens: int,
        seed: int,
        settings: GenerationSettings,
        grammar: Any = None,
    ) -> str:
        n_prompt = self.count_tokens(prompt)
        room = self.llm.n_ctx() - n_prompt - 1
        if room <= 0:
            raise ConfigError(
                f"models: prompt of {n_prompt} tokens does not fit the context of "
                f"{self.spec.slug!r} ({self.llm.n_ctx()} tokens)"
            )
        if max_tokens > room:
            warning = f"token budget cut from {max_tokens} to {room} to fit the context"
            if warning not in self.stats.warnings:
                self.stats.warnings.append(warning)
            max_tokens = room
        out = self.llm.create_completion(
            prompt,
            max_tokens=max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=seed,
            grammar=grammar,
        )
        usage = out.get("usage", {})
        self.stats.input_tokens += int(usage.get("prompt_tokens", n_prompt))
        self.stats.output_tokens += int(usage.get("completion_tokens", 0))
        self.stats.calls += 1
        if grammar is not None and hasattr(self.llm, "_flush_grammar_stats"):
            self.llm._flush_grammar_stats()
            gs = self.llm.grammar_stats
            self.stats.extra["grammar_steps"] = gs["steps"]
            self.stats.extra["grammar_full_mask_steps"] = gs["full_passes"]
        return out["choices"][0]["text"]

    def _prime(self, prompt: str) -> int:
        """Evaluate ``prompt`` into the KV cache, reusing the cached prefix; returns its length."""
        toks = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if len(toks) + 64 >= self.llm.n_ctx():
            raise ConfigError(
                f"models: prompt of {len(toks)} tokens does not fit the context of "
                f"{self.spec.slug!r} ({self.llm.n_ctx()} tokens)"
            )
        cached = self.llm.input_ids[: self.llm.n_tokens].tolist()
        n = 0
        for a, b in zip(cached, toks):
            if a != b:
                break
            n += 1
        n = min(n, len(toks) - 1)  # the forced text needs a fresh position after the prompt
        self.llm.n_tokens = n
        self.llm.eval(toks[n:])
        return len(toks)

    def _fieldwise_record(
        self, prompt: str, schema: dict, seed: int, settings: GenerationSettings
    ) -> str:
        """One record, field by field (see :func:`field_plan`): forced key text evaluated as a
        batch, each value sampled under its grammar with :class:`LazyGrammarSampler` until
        its separator. Returns the record line."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._plans:
            from llama_cpp import LlamaGrammar

            self._plans[key] = [
                (f, LlamaGrammar.from_string(g, verbose=False), rx)
                for f, g, rx in field_plan(schema)
            ]
        plan = self._plans[key]
        llm = self.llm
        n_prompt = self._prime(prompt)
        room = llm.n_ctx() - n_prompt - 1
        text, pending, sampled, forced_n = [], [], 0, 0
        done = True
        for j, (forced, grammar, rx) in enumerate(plan):
            toks = pending + llm.tokenize(forced.encode("utf-8"), add_bos=False, special=False)
            forced_n += len(toks) - len(pending)
            if llm.n_tokens - n_prompt + len(toks) + 8 > room:
                done = False
                break
            llm.eval(toks)
            text.append(forced)
            sampler = value_sampler(llm, grammar, settings, call_seed(seed, j))
            value, pending = b"", []
            try:
                for _ in range(MAX_VALUE_TOKENS):
                    tok = sampler.sample(llm._ctx, -1)
                    sampled += 1
                    value += llm.detokenize([tok])
                    if rx.fullmatch(value.decode("utf-8", errors="ignore")):
                        pending = [tok]  # evaluated with the next field's forced text
                        break
                    llm.eval([tok])
                else:
                    done = False
            finally:
                self._grammar_steps += sampler.steps
                self._grammar_full += sampler.full_passes
                sampler.close()
            text.append(value.decode("utf-8", errors="replace"))
            if not done:
                break
        if not done:
            warning = "field-wise decoding stopped a record early (value too long or context full)"
            if warning not in self.stats.warnings:
                self.stats.warnings.append(warning)
        self.stats.calls += 1
        self.stats.input_tokens += n_prompt
        self.stats.output_tokens += sampled + forced_n
        ex = self.stats.extra
        ex["sampled_tokens"] = ex.get("sampled_tokens", 0) + sampled
        ex["forced_tokens"] = ex.get("forced_tokens", 0) + forced_n
        ex["grammar_steps"] = self._grammar_steps
        ex["grammar_full_mask_steps"] = self._grammar_full
        return "".join(text)

    def _plan(self, schema: dict) -> list:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._plans:
            from llama_cpp import LlamaGrammar

            self._plans[key] = [
                (f, LlamaGrammar.from_string(g, verbose=False), rx)
                for f, g, rx in field_plan(schema)
            ]
        return self._plans[key]

    def generate_many(
        self,
        requests: list[tuple[str, str, int, int]],
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[list[str]]:
        """(system, user, n_records, seed) per mini-batch -> its chunks, every record (field-wise)
        or mini-batch (unconstrained) one sequence of the pool (:mod:`.llamacpp_batch`)."""
        from synllm.generate.llamacpp_batch import (
            Job,
            SequencePool,
            fieldwise_job_tokens,
            plan_cells,
        )

        if not self._pooled():
            return [self.generate(s, u, n, seed, settings, schema) for s, u, n, seed in requests]
        n_ctx = self.llm.n_ctx()
        tpr = settings.tokens_per_record or 64.0
        fieldwise = bool(self.constrained and schema)
        plan = self._plan(schema) if fieldwise else None
        jobs, longest, per_job = [], 0, 0
        for r, (system, user, n, seed) in enumerate(requests):
            prompt, how = format_prompt(self.llm, self.spec, system, user)
            self.stats.extra["prompt_format"] = how
            toks = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            longest = max(longest, len(toks))
            if fieldwise:
                if len(toks) + 64 >= n_ctx:
                    raise ConfigError(
                        f"models: prompt of {len(toks)} tokens does not fit the context of "
                        f"{self.spec.slug!r} ({n_ctx} tokens)"
                    )
                jobs += [Job((r, i), toks, call_seed(seed, i), plan=plan) for i in range(n)]
                continue
            n_prompt = self.count_tokens(prompt)
            room = n_ctx - n_prompt - 1
            if room <= 0:
                raise ConfigError(
                    f"models: prompt of {n_prompt} tokens does not fit the context of "
                    f"{self.spec.slug!r} ({n_ctx} tokens)"
                )
            budget = settings.max_new_tokens or token_budget(n, tpr)
            if budget > room:
                warning = f"token budget cut from {budget} to {room} to fit the context"
                if warning not in self.stats.warnings:
                    self.stats.warnings.append(warning)
                budget = room
            per_job = max(per_job, budget + 1)
            jobs.append(Job((r, 0), toks, call_seed(seed, 0), budget=budget))
        if fieldwise:
            per_job = fieldwise_job_tokens(
                plan, lambda t: self.llm.tokenize(t.encode("utf-8"), add_bos=False)
            )
        cells = plan_cells(longest, min(self.parallel, len(jobs)), per_job)
        if self._pool is None or self._pool.cells < cells:
            if self._pool is not None:
                self._pool.close()
            self._pool = SequencePool(self.llm, self.parallel, n_ctx, self._threads, cells)
        pool = self._pool
        pool.stats.update(max_active=0, decode_seconds=0.0, host_seconds=0.0)
        pool.trace = self.trace
        results = pool.run(jobs, settings, self.slot_order)
        ex = self.stats.extra
        ex["parallel_sequences_used"] = max(
            ex.get("parallel_sequences_used", 0), pool.stats["max_active"]
        )
        out: list[list[str]] = [[] for _ in requests]
        for job in jobs:
            text, sampled, forced, complete = results[job.key]
            out[job.key[0]].append(text)
            self.stats.calls += 1
            self.stats.input_tokens += len(job.prompt)
            self.stats.output_tokens += sampled + forced
            if fieldwise:
                ex["sampled_tokens"] = ex.get("sampled_tokens", 0) + sampled
                ex["forced_tokens"] = ex.get("forced_tokens", 0) + forced
                if not complete:
                    warning = (
                        "field-wise decoding stopped a record early "
                        "(value too long or context full)"
                    )
                    if warning not in self.stats.warnings:
                        self.stats.warnings.append(warning)
        # host: sampling, grammar and bookkeeping in Python between two llama_decode calls
        ex["pool_decode_seconds"] = round(
            ex.get("pool_decode_seconds", 0) + pool.stats["decode_seconds"], 3
        )
        ex["pool_host_seconds"] = round(
            ex.get("pool_host_seconds", 0) + pool.stats["host_seconds"], 3
        )
        if fieldwise:
            ex["grammar_steps"] = self._grammar_steps + pool.grammar_steps
            ex["grammar_full_mask_steps"] = self._grammar_full + pool.grammar_full
        return out

    def generate(
        self,
        system: str,
        user: str,
        n_records: int,
        seed: int,
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[str]:
        """Constrained: one grammar-bound call per record; else one call for all records.
        With parallel sequences the mini-batch's records go through :meth:`generate_many`."""
        if self._pooled():
            return self.generate_many([(system, user, n_records, seed)], settings, schema)[0]
        prompt, how = format_prompt(self.llm, self.spec, system, user)
        self.stats.extra["prompt_format"] = how
        tpr = settings.tokens_per_record or 64.0
        if self.constrained and schema and self.fieldwise:
            return [
                self._fieldwise_record(prompt, schema, call_seed(seed, i), settings)
                for i in range(n_records)
            ]
        if self.constrained and schema:
            grammar = self.grammar(schema)
            budget = settings.max_new_tokens or token_budget(1, tpr)
            return [
                self._complete(prompt, budget, call_seed(seed, i), settings, grammar).strip()
                for i in range(n_records)
            ]
        budget = settings.max_new_tokens or token_budget(n_records, tpr)
        return [self._complete(prompt, budget, call_seed(seed, 0), settings)]


def _gguf_type(filename: str) -> str:
    """Weight format from a GGUF file name, e.g. 'gguf-Q4_1' (or 'gguf')."""

    m = re.search(r"\.((?:I?Q\d[\w]*)|F16|F32|BF16)\.gguf$", filename, flags=re.IGNORECASE)
    return f"gguf-{m.group(1)}" if m else "gguf"


def create() -> LlamaCppBackend:
    return LlamaCppBackend()

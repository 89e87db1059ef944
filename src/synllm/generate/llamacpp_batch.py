"""Parallel sequences for the llama.cpp backend: the records of a cell decoded together.

At one sequence, decoding the embedded 135M GGUF on a CPU is bound by reading the weights once
per token; a llama.cpp batch that holds one token of each of several sequences reads them once
for all. :class:`SequencePool` keeps ``width`` sequences of one llama.cpp context busy:

- the prompt is evaluated once per round into a reserved sequence (all but its last token) and
  copied into a slot's KV cells (``llama_memory_seq_cp``; ``kv_unified`` shares the cells, no copy of
  data) whenever a job starts there; the slot evaluates the prompt's last token with its own
  first tokens, like the record-at-a-time path that re-evaluates it after reusing its cache;
- every step is one ``llama_decode`` of one batch holding each busy slot's next tokens (the
  sampled token, plus the forced key text of the next field in field-wise decoding), with
  logits for each slot's last token only;
- each slot samples with its own sampler: field-wise records use a fresh
  :class:`~synllm.generate.sampler.LazyGrammarSampler` per value (its own grammar state and
  ``dist`` seed), unconstrained completions a llama.cpp sampler chain sampled in C
  (``llama_sampler_sample``) seeded per completion;
- a finished job frees its slot, which takes the next queued job, until the queue is empty.

Seeds belong to jobs, never to slots: record ``i`` of a mini-batch seeded ``s`` samples value
``j`` with ``call_seed(call_seed(s, i), j)`` and a completion with ``call_seed(s, 0)``, the
seeds of the one-sequence path, so which slot a job lands in, and when, changes nothing but
the float rounding of the batch it shares (see docs/architecture.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from synllm.errors import ConfigError
from synllm.generate.base import call_seed
from synllm.generate.grammar import MAX_VALUE_TOKENS


@dataclass
class Job:
    """One sequence's work: a field-wise record (``plan`` set) or a free completion."""

    key: int
    """Position of the job's text in the output (request index, record index)."""
    prompt: list[int]
    seed: int
    budget: int = 0
    """Completion: most tokens to sample (field-wise: unused)."""
    plan: list | None = None


@dataclass
class _Slot:
    job: Job
    seq: int
    pos: int
    feed: list[int]
    field_index: int = 0
    sampler: Any = None
    value: bytes = b""
    value_tokens: int = 0
    parts: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    sampled: int = 0
    forced: int = 0
    complete: bool = True


class SequencePool:
    """``width`` parallel sequences on one llama.cpp context beside ``llm``'s own (same model
    weights, same threads); see the module docstring. ``n_ctx`` is the per-sequence limit the
    one-sequence path has (a record stops early at it, with the same warning)."""

    def __init__(self, llm: Any, width: int, n_ctx: int, threads: int, cells: int) -> None:
        import llama_cpp as lc

        self.lc, self.llm, self.width, self.n_ctx = lc, llm, width, n_ctx
        self.prefix_seq = width
        params = lc.llama_context_default_params()
        params.n_ctx = cells
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = width + 1
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        self.ctx = lc.llama_init_from_model(llm._model.model, params)
        if not self.ctx:
            raise ConfigError(f"generation: llama.cpp could not open {width} parallel sequences")
        self.cells = lc.llama_n_ctx(self.ctx)
        self.mem = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(512, 0, 1)
        self.handle = SimpleNamespace(ctx=self.ctx)
        self.vocab = llm._model.vocab
        self.stats = {
            "steps": 0,
            "decode_tokens": 0,
            "max_active": 0,
            "decode_seconds": 0.0,
            "host_seconds": 0.0,
        }
        self.trace: list | None = None

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.lc.llama_batch_free(self.batch)
            self.lc.llama_free(self.ctx)
            self.ctx = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- llama.cpp calls ---------------------------------------------------------------

    def _decode(self, parts: list[tuple[int, int, list[int]]]) -> list[int]:
        """Evaluate ``(seq, first position, tokens)`` parts as one batch (split at 512 tokens
        like ``Llama.eval``); returns each part's batch index of its last token's logits."""
        b = self.batch
        n, out = 0, []
        for seq, pos, toks in parts:
            if n + len(toks) > 512:
                self._flush(n)
                n = 0
            for k, t in enumerate(toks):
                b.token[n], b.pos[n], b.n_seq_id[n] = t, pos + k, 1
                b.seq_id[n][0] = seq
                b.logits[n] = k == len(toks) - 1
                n += 1
            out.append(n - 1)
        self._flush(n)
        return out

    def _flush(self, n: int) -> None:
        if not n:
            return
        self.batch.n_tokens = n
        rc = self.lc.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise ConfigError(f"generation: llama_decode failed ({rc}) on {n} tokens")
        self.stats["steps"] += 1
        self.stats["decode_tokens"] += n

    def _set_prefix(self, prompt: list[int]) -> None:
        """Hold ``prompt[:-1]`` in the prefix sequence, evaluated into an empty cache.

        Every call starts from cell 0: which cells a sequence's tokens occupy changes the
        order of the attention sums (the last bits of the logits), so a round's text must not
        depend on the rounds and cells before it (a cell's text is that of a one-cell run)."""
        want = prompt[:-1]
        self.lc.llama_memory_clear(self.mem, False)
        for i in range(0, len(want), 512):
            self._decode([(self.prefix_seq, i, want[i : i + 512])])

    # -- the pool ----------------------------------------------------------------------

    def run(self, jobs: list[Job], settings: Any, order: list[int] | None = None) -> dict:
        """Decode every job (jobs sharing a prompt together); returns ``{job.key: result}``
        where a result is ``(text, sampled, forced, complete)``. ``order`` permutes the slot
        ids handed out (tests: the output must not depend on it)."""
        results: dict = {}
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            groups.setdefault(tuple(job.prompt), []).append(job)
        for prompt, group in groups.items():
            self._set_prefix(list(prompt))
            self._run_group(group, settings, results, order or list(range(self.width)))
        return results

    def _start(self, job: Job, seq: int, settings: Any) -> _Slot:
        lc = self.lc
        lc.llama_memory_seq_rm(self.mem, seq, -1, -1)
        lc.llama_memory_seq_cp(self.mem, self.prefix_seq, seq, -1, -1)
        last = job.prompt[-1:]
        slot = _Slot(job=job, seq=seq, pos=len(job.prompt) - 1, feed=list(last))
        if job.plan is not None:
            self._next_field(slot, [], settings)
        else:
            slot.sampler = _chain(lc, settings, job.seed)
        return slot

    def _next_field(self, slot: _Slot, pending: list[int], settings: Any) -> bool:
        """Queue field ``slot.field_index``'s forced text and its sampler; False when the record
        does not fit (the one-sequence path's room check)."""
        from synllm.generate.sampler import value_sampler

        forced, grammar, _ = slot.job.plan[slot.field_index]
        toks = pending + self.llm.tokenize(forced.encode("utf-8"), add_bos=False, special=False)
        n_prompt = len(slot.job.prompt)
        room = self.n_ctx - n_prompt - 1
        used = slot.pos + len(slot.feed)  # the one-sequence path's n_tokens before this field
        if used - n_prompt + len(toks) + 8 > room:
            return False
        slot.forced += len(toks) - len(pending)
        slot.feed += toks
        slot.parts.append(forced)
        slot.sampler = value_sampler(
            self.llm, grammar, settings, call_seed(slot.job.seed, slot.field_index)
        )
        slot.value, slot.value_tokens = b"", 0
        return True

    def _close_sampler(self, slot: _Slot) -> None:
        if slot.sampler is not None and slot.job.plan is not None:
            self.grammar_steps += slot.sampler.steps
            self.grammar_full += slot.sampler.full_passes
            slot.sampler.close()
        elif slot.sampler is not None:
            self.lc.llama_sampler_free(slot.sampler)
        slot.sampler = None

    grammar_steps = 0
    grammar_full = 0

    def _run_group(self, jobs: list[Job], settings: Any, results: dict, order: list[int]) -> None:
        queue = list(jobs)
        free = list(order)
        active: list[_Slot] = []
        while queue or active:
            while queue and free:
                active.append(self._start(queue.pop(0), free.pop(0), settings))
            self.stats["max_active"] = max(self.stats["max_active"], len(active))
            if self.trace is not None:
                self.trace.append([(s.job.key, s.field_index, s.seq) for s in active])
            t0 = time.perf_counter()
            idx = self._decode([(s.seq, s.pos, s.feed) for s in active])
            t1 = time.perf_counter()
            still = []
            for slot, i in zip(active, idx):
                slot.pos += len(slot.feed)
                slot.feed = []
                if self._step(slot, i, settings):
                    still.append(slot)
                else:
                    self._close_sampler(slot)
                    self.lc.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
                    free.append(slot.seq)
                    results[slot.job.key] = self._result(slot)
            active = still
            self.stats["decode_seconds"] += t1 - t0
            self.stats["host_seconds"] += time.perf_counter() - t1

    def _step(self, slot: _Slot, i: int, settings: Any) -> bool:
        """Sample slot's next token from batch row ``i``; False when its job is done."""
        lc = self.lc
        if slot.job.plan is None:
            tok = lc.llama_sampler_sample(slot.sampler, self.ctx, i)
            if lc.llama_vocab_is_eog(self.vocab, tok):
                return False
            slot.tokens.append(tok)
            slot.sampled += 1
            if slot.sampled >= slot.job.budget:
                return False
            slot.feed = [tok]
            return True
        tok = slot.sampler.sample(self.handle, i)
        slot.sampled += 1
        slot.value_tokens += 1
        slot.value += self.llm.detokenize([tok])
        _, _, rx = slot.job.plan[slot.field_index]
        if rx.fullmatch(slot.value.decode("utf-8", errors="ignore")):
            slot.parts.append(slot.value.decode("utf-8", errors="replace"))
            self._close_sampler(slot)
            slot.field_index += 1
            if slot.field_index == len(slot.job.plan):
                return False
            if not self._next_field(slot, [tok], settings):
                slot.complete = False
                return False
            return True
        if slot.value_tokens >= MAX_VALUE_TOKENS:
            slot.parts.append(slot.value.decode("utf-8", errors="replace"))
            slot.complete = False
            return False
        slot.feed = [tok]
        return True

    def _result(self, slot: _Slot) -> tuple[str, int, int, bool]:
        if slot.job.plan is None:
            text = self.llm.detokenize(slot.tokens).decode("utf-8", errors="ignore")
            return text, slot.sampled, 0, True
        return "".join(slot.parts), slot.sampled, slot.forced, slot.complete


def _chain(lc: Any, settings: Any, seed: int) -> Any:
    """llama-cpp-python's sampler chain of ``create_completion`` (top-k 40, typical 1, top-p,
    min-p 0.05, temperature, dist; greedy at temperature 0), seeded ``seed``."""
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    add = lc.llama_sampler_chain_add
    if settings.temperature <= 0:
        add(chain, lc.llama_sampler_init_greedy())
        return chain
    add(chain, lc.llama_sampler_init_top_k(40))
    add(chain, lc.llama_sampler_init_typical(1.0, 1))
    add(chain, lc.llama_sampler_init_top_p(settings.top_p, 1))
    add(chain, lc.llama_sampler_init_min_p(0.05, 1))
    add(chain, lc.llama_sampler_init_temp(settings.temperature))
    add(chain, lc.llama_sampler_init_dist(seed))
    return chain


def plan_cells(n_prompt: int, width: int, per_job: int) -> int:
    """KV cells of a pool: the prompt plus ``width`` jobs of at most ``per_job`` tokens."""
    return n_prompt + width * per_job + 64


def fieldwise_job_tokens(plan: list, tokenize: Any) -> int:
    """Most tokens one field-wise record can evaluate (forced text + MAX_VALUE_TOKENS per
    field)."""
    return sum(len(tokenize(f)) + 1 + MAX_VALUE_TOKENS for f, _, _ in plan)

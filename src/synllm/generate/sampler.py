"""Grammar-constrained sampling for llama.cpp (:class:`LazyGrammarSampler`), shared by the
one-sequence backend (:mod:`synllm.generate.llamacpp`) and its parallel-sequence pool
(:mod:`synllm.generate.llamacpp_batch`), so neither imports the other."""

from __future__ import annotations

from typing import Any

from synllm.errors import ConfigError

TOKEN_DATA = None  # numpy dtype of llama_token_data, set on first use


class LazyGrammarSampler:
    """Grammar-constrained sampling that applies the grammar to the whole vocabulary only
    when the unconstrained pick breaks it (llama.cpp's ``common_sampler_sample`` does this;
    llama-cpp-python's own sampler chain runs the grammar over all ~49k tokens at every step).

    Each step: the chain top-k -> typical -> top-p -> min-p -> temperature -> dist picks a token
    from the raw logits; the grammar checks that one token; only if it is rejected are the
    logits masked by the grammar and the chain run again. The output always satisfies the
    grammar; the distribution is the same as grammar-first sampling whenever the first pick is
    accepted (the chain then renormalises over the grammar's survivors otherwise). Seeded
    through ``dist``, so the same seed gives the same text. Used by :func:`make_llama`.
    """

    def __init__(
        self,
        llm: Any,
        grammar: Any,
        top_k: int,
        top_p: float,
        min_p: float,
        typical_p: float,
        temp: float,
        seed: int,
    ) -> None:
        global TOKEN_DATA
        import ctypes

        import llama_cpp as lc
        import numpy as np
        from llama_cpp import _internals

        if TOKEN_DATA is None:
            TOKEN_DATA = np.dtype(
                [("id", np.intc), ("logit", np.single), ("p", np.single)], align=True
            )
            assert TOKEN_DATA.itemsize == ctypes.sizeof(lc.llama_token_data)
        self._lc, self._np, self._ct = lc, np, ctypes
        self.chain = _internals.LlamaSampler()
        if temp <= 0:
            self.chain.add_greedy()
        else:
            self.chain.add_top_k(top_k)
            self.chain.add_typical(typical_p, 1)
            self.chain.add_top_p(top_p, 1)
            self.chain.add_min_p(min_p, 1)
            self.chain.add_temp(temp)
            self.chain.add_dist(seed)
        self.grammar = lc.llama_sampler_init_grammar(
            llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not self.grammar:
            raise ConfigError("constrained decoding: llama.cpp rejected the record grammar")
        self.n_vocab = llm.n_vocab()
        self.ids = np.arange(self.n_vocab, dtype=np.intc)
        self.buf = np.zeros(self.n_vocab, dtype=TOKEN_DATA)
        self.one = np.zeros(1, dtype=TOKEN_DATA)
        self.full_passes = 0
        self.steps = 0

    def _array(self, buf: Any) -> Any:
        lc = self._lc
        return lc.llama_token_data_array(
            data=buf.ctypes.data_as(self._ct.POINTER(lc.llama_token_data)),
            size=len(buf),
            selected=-1,
            sorted=False,
        )

    def _pick(self, logits: Any, masked: bool) -> int:
        self.buf["id"] = self.ids
        self.buf["logit"] = logits
        self.buf["p"] = 0.0
        arr = self._array(self.buf)
        if masked:
            self._lc.llama_sampler_apply(self.grammar, self._ct.byref(arr))
        self._lc.llama_sampler_apply(self.chain.sampler, self._ct.byref(arr))
        return int(arr.data[arr.selected].id)

    def _allowed(self, token: int) -> bool:
        self.one["id"], self.one["logit"], self.one["p"] = token, 1.0, 0.0
        arr = self._array(self.one)
        self._lc.llama_sampler_apply(self.grammar, self._ct.byref(arr))
        return bool(self._np.isfinite(self.one["logit"][0]))

    def sample(self, ctx: Any, idx: int = -1) -> int:
        ptr = self._lc.llama_get_logits_ith(ctx.ctx, idx)
        logits = self._np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        token = self._pick(logits, masked=False)
        self.steps += 1
        if not self._allowed(token):
            self.full_passes += 1
            token = self._pick(logits, masked=True)
        self._lc.llama_sampler_accept(self.grammar, token)
        self._lc.llama_sampler_accept(self.chain.sampler, token)
        return token

    def accept(self, token: int) -> None:  # pragma: no cover - Llama calls sample() only
        self._lc.llama_sampler_accept(self.grammar, token)
        self._lc.llama_sampler_accept(self.chain.sampler, token)

    def reset(self) -> None:  # pragma: no cover
        self._lc.llama_sampler_reset(self.grammar)
        self.chain.reset()

    def close(self) -> None:
        if self.grammar:
            self._lc.llama_sampler_free(self.grammar)
            self.grammar = None
        self.chain.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def value_sampler(llm: Any, grammar: str, settings: Any, seed: int) -> LazyGrammarSampler:
    """The sampler of one field value in field-wise decoding, for the one-sequence path and the
    pool alike: top-k 40, min-p 0.05 and typical 1.0 (llama-cpp-python's completion defaults)
    with the run's temperature and top-p, seeded by the caller's record and field."""
    return LazyGrammarSampler(
        llm, grammar, 40, settings.top_p, 0.05, 1.0, settings.temperature, seed
    )

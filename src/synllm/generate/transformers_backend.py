"""Hugging Face transformers backend: the paper's generation path.

- Loads a model by Hugging Face id or local path, or a GGUF file (``gguf_file=``; weights are
  dequantised to float32). Never downloads when ``HF_HUB_OFFLINE=1``.
- ``quantization: nf4``: bitsandbytes 4-bit NF4 with double quantization (the paper's
  setting), float16 compute on CUDA and float32 compute on CPU where the installed
  bitsandbytes can quantize and multiply 4-bit weights there (:func:`bnb_cpu_4bit_error`
  tries it on a small matrix; bitsandbytes 0.50.2 can). Without bitsandbytes, on a CPU it
  cannot serve, or when loading the quantized model fails, it falls back to full precision
  and says so (log warning, meta ``quantization: none`` + a warning). A GGUF file is loaded
  dequantised and then quantized (:func:`quantized_from_gguf`). The meta's ``backend_info``
  counts the 4-bit layers (``quantized_layers``) and gives the weights' size (``weights_mb``).
  bitsandbytes is imported only inside :func:`choose_quantization`, so a model without
  ``nf4`` never needs it.
- ``rope_scaling`` from the registry overrides the model config (LLaMA).
- Prompt: the tokenizer's chat template when it has one (``chat_template: auto``), else the
  registry's ``plain_format``. A template that rejects the system turn gets it merged into
  the user turn.
- Sampling: temperature / top-p from settings (paper: 0.7 / 0.9). Unconstrained: one sequence
  per mini-batch with a token budget for all its records; :meth:`TransformersBackend.generate_many`
  decodes several mini-batches (also different sub-prompts) as the rows of one ``generate``
  call, left-padded with an attention mask, each row with its own budget and EOS; rows that
  all send one prompt (a one-prompt cell) start from one copy of that prompt's KV cache,
  computed once per prompt (:meth:`TransformersBackend._prompt_cache`). Constrained
  (lm-format-enforcer, JSON schema of one record): ``records_per_forward`` sequences per
  ``generate`` call, one record each.
- Determinism of unconstrained sampling: each row draws its token from its own
  ``torch.Generator`` seeded by its mini-batch seed (:class:`RowSampler`, inverse-CDF on the
  temperature / top-p distribution), so a row's random stream does not depend on its
  neighbours, its position or the width of the call. Same seed and same width give the same
  text; across widths the streams are the same and the text differs only where the float
  rounding of a padded batched forward pass tips a sampled token.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
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

log = logging.getLogger("synllm.generate")

CPU_RECORDS_PER_FORWARD = 4
"""Constrained sequences decoded together on CPU (measured best of 1/4/8 on 2 cores)."""

CPU_PARALLEL_SEQUENCES = 8
"""Unconstrained mini-batches decoded together on CPU: on the 2-core reference machine
SmolLM2 through transformers gave 22 tok/s at 1 sequence and 59 at 4 (issue 17), and a cell's
5 mini-batches fit in one call; ``benchmarks/generation.py --transformers --widths`` measures it
on a given machine."""

GPU_MAX_PARALLEL_SEQUENCES = 64
"""Upper bound of the width sized from free GPU memory."""

GPU_MEMORY_SHARE = 0.6
"""Share of the free GPU memory the KV caches of one call may take (activations need the rest)."""


class RowSampler:
    """Logits processor that samples each row with its own generator (see module docstring).

    ``generate`` runs greedy; this processor applies temperature and top-p (transformers'
    own warpers), draws one uniform per row from the row's generator, picks the token by
    inverse CDF and returns scores that are -inf everywhere else. A row at its own token
    budget is handed ``stop_id`` so that ``generate`` finishes it like an EOS.
    """

    def __init__(
        self,
        seeds: list[int],
        temperature: float,
        top_p: float,
        budgets: list[int],
        start: int,
        stop_id: int | None,
    ):
        import torch
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.warpers = [TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)]
        self.budgets = budgets
        self.start = start
        self.stop_id = stop_id

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float()
        for w in self.warpers:
            scores = w(input_ids, scores)
        probs = torch.softmax(scores, dim=-1).double()
        cdf = probs.cumsum(dim=-1)
        u = torch.tensor(
            [float(torch.rand(1, generator=g, dtype=torch.float64)) for g in self.gens],
            dtype=torch.float64,
            device=cdf.device,
        )
        tok = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
        tok = tok.clamp(max=cdf.shape[1] - 1)
        step = input_ids.shape[1] - self.start
        if self.stop_id is not None:
            done = torch.tensor([step >= b for b in self.budgets], device=tok.device)
            tok = torch.where(done, torch.full_like(tok, self.stop_id), tok)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, tok.unsqueeze(1), 0.0)
        return out


@dataclass
class QuantChoice:
    """What to pass as ``quantization_config`` and what to report."""

    config: Any
    label: str
    warnings: list[str] = field(default_factory=list)


def cuda_available() -> bool:
    """True when torch sees a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def bnb_cpu_4bit_error() -> str | None:
    """None when the installed bitsandbytes runs NF4 on CPU, else why not (one line).

    Detected, not assumed from a version: a 64 x 64 float32 matrix is quantized to NF4 with
    double quantization and multiplied at one row and at two rows (bitsandbytes' decode and
    prefill paths), and both products must match the matrix bitsandbytes dequantises. Run
    once per process (a few milliseconds once bitsandbytes is imported).
    """
    if _BNB_CPU:
        return _BNB_CPU[0]
    try:
        import bitsandbytes as bnb
        import torch

        weight = torch.linspace(-1.0, 1.0, 64 * 64).reshape(64, 64)
        packed, state = bnb.functional.quantize_4bit(
            weight, blocksize=64, quant_type="nf4", compress_statistics=True
        )
        dense = bnb.functional.dequantize_4bit(packed, state)
        error = None
        for rows in (1, 2):
            x = torch.linspace(-1.0, 1.0, rows * 64).reshape(rows, 64)
            got = bnb.matmul_4bit(x, packed.t(), quant_state=state)
            if got.shape != (rows, 64) or not torch.allclose(got, x @ dense.t(), atol=1e-3):
                error = f"its 4-bit product at {rows} row(s) does not match the weights"
                break
    except Exception as err:  # ImportError, NotImplementedError, RuntimeError of a backend
        error = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    _BNB_CPU.append(error)
    return error


_BNB_CPU: list[str | None] = []
"""Memo of :func:`bnb_cpu_4bit_error` (one probe per process; tests clear it)."""


def choose_quantization(requested: str, cuda: bool) -> QuantChoice:
    """Quantization config for ``requested`` (nf4|none|gptq) on a machine with/without CUDA.

    nf4 needs an importable bitsandbytes, and without CUDA one that runs 4-bit on CPU
    (:func:`bnb_cpu_4bit_error`); otherwise full precision with a warning. Compute dtype:
    float16 on CUDA (the paper's), float32 on CPU (the dtype the CPU path loads in).
    """
    if requested == "none":
        return QuantChoice(None, "none")
    if requested == "gptq":
        # the checkpoint carries its own quantization_config; transformers picks the kernel
        return QuantChoice(None, "gptq")
    try:
        import bitsandbytes  # noqa: F401
        import torch
        from transformers import BitsAndBytesConfig
    except Exception as err:  # ImportError, or a broken CUDA build raising at import
        return QuantChoice(
            None,
            "none",
            [
                f"nf4 requested but bitsandbytes is unavailable ({type(err).__name__}: {err}): "
                "loading in full precision"
            ],
        )
    if not cuda:
        why = bnb_cpu_4bit_error()
        if why is not None:
            return QuantChoice(
                None,
                "none",
                [
                    "nf4 requested without CUDA and the installed bitsandbytes cannot run "
                    f"4-bit on CPU ({why}): loading in full precision"
                ],
            )
    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.float16 if cuda else torch.float32,
        bnb_4bit_use_double_quant=True,
    )
    return QuantChoice(config, "nf4")


def quantized_from_gguf(quantization_config: Any = None, **kwargs: Any) -> Any:
    """``from_pretrained(**kwargs)`` of a GGUF file (``gguf_file=``), then quantized.

    transformers loads a GGUF file only dequantised (it rejects ``quantization_config``
    beside ``gguf_file``): the dequantised weights go, as a state dict, through the model
    class's own ``from_pretrained`` with the quantization config, which quantizes them as it
    would a checkpoint's. The full-precision copy is dropped afterwards; it is the load's
    peak memory.
    """
    import copy

    from transformers import AutoModelForCausalLM

    if quantization_config is None:
        return AutoModelForCausalLM.from_pretrained(**kwargs)
    config = copy.deepcopy(kwargs["config"])  # the GGUF load writes its GgufConfig into it
    full = AutoModelForCausalLM.from_pretrained(**kwargs)
    state, cls = full.state_dict(), type(full)
    del full
    keep = {k: kwargs[k] for k in ("dtype", "device_map") if k in kwargs}
    return cls.from_pretrained(
        None,
        config=config,
        state_dict=state,
        quantization_config=quantization_config,
        **keep,
    )


def quantized_layers(model: Any) -> int:
    """bitsandbytes 4-bit linear layers of ``model`` (by class name: no bitsandbytes import)."""
    return sum(type(m).__name__ == "Linear4bit" for m in model.modules())


def load_with_fallback(
    loader: Callable[..., Any], kwargs: dict[str, Any], choice: QuantChoice
) -> tuple[Any, QuantChoice]:
    """Call ``loader(**kwargs, quantization_config=...)``; on failure of a quantized load retry
    in full precision and return the updated choice (label ``none`` + warning)."""
    if choice.config is None:
        return loader(**kwargs), choice
    try:
        return loader(**kwargs, quantization_config=choice.config), choice
    except (ImportError, ValueError, RuntimeError, TypeError, NotImplementedError) as err:
        msg = (
            f"4-bit {choice.label} load failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}): "
            "loading in full precision"
        )
        return loader(**kwargs), QuantChoice(None, "none", choice.warnings + [msg])


def apply_rope_scaling(config: Any, rope: dict | None) -> None:
    """Set the registry's rope scaling on a transformers config: merged into v5's
    ``rope_parameters`` (which keep the checkpoint's ``rope_theta``), else v4's
    ``rope_scaling``.

    In transformers 5 ``rope_scaling`` is a deprecated alias whose setter replaces
    ``rope_parameters`` whole: setting it too left ``rope_theta`` None, and the dynamic-NTK
    LLaMA models failed at their first forward pass (``None * float``).
    """
    if not rope:
        return
    rope = dict(rope)
    if "type" in rope and "rope_type" not in rope:
        rope["rope_type"] = rope["type"]
    if hasattr(config, "rope_parameters"):
        params = dict(getattr(config, "rope_parameters", None) or {})
        params.update(rope)
        config.rope_parameters = params
    else:
        config.rope_scaling = rope


def format_chat(tokenizer: Any, spec: Any, system: str, user: str) -> tuple[str, str, list[str]]:
    """(prompt text, 'chat_template'|'plain', warnings) for one system+user turn."""
    template = getattr(tokenizer, "chat_template", None)
    if spec.chat_template == "auto" and template:
        merged = [{"role": "user", "content": f"{system}\n\n{user}" if system else user}]
        messages = merged
        if spec.system_role and system:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return text, "chat_template", []
        except Exception as err:  # jinja TemplateError "roles must alternate" etc.
            if messages is merged:
                raise
            text = tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
            return (
                text,
                "chat_template",
                [f"chat template rejected the system turn ({err}): merged into user"],
            )
    return spec.plain_format.format(system=system, user=user), "plain", []


def enforcer_tokenizer_data(tokenizer: Any) -> Any:
    """lm-format-enforcer's TokenEnforcerTokenizerData for a transformers tokenizer.

    Same construction as ``lmformatenforcer.integrations.transformers`` (whose import fails
    under transformers 5: it imports ``transformers.tokenization_utils``).
    """
    from lmformatenforcer import TokenEnforcerTokenizerData

    vocab_size = len(tokenizer)
    token_0 = tokenizer.encode("0")[-1]
    special = set(tokenizer.all_special_ids)
    regular = []
    for idx in range(vocab_size):
        if idx in special:
            continue
        after_0 = tokenizer.decode([token_0, idx])[1:]
        alone = tokenizer.decode([idx])
        regular.append((idx, after_0, len(after_0) > len(alone)))

    def decode(tokens: list[int]) -> str:
        return tokenizer.decode(tokens).rstrip("\ufffd")

    return TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, vocab_size)


class TransformersBackend:
    """See module docstring."""

    name = "transformers"
    batched = True

    def __init__(self) -> None:
        self.stats = BackendStats()
        self.model: Any = None
        self.tokenizer: Any = None
        self.spec: Any = None
        self.constrained = False
        self.records_per_forward = CPU_RECORDS_PER_FORWARD
        self._enforcer_data: Any = None
        self._prefill: tuple[str, Any] | None = None

    # -- loading -------------------------------------------------------------------------
    def load(
        self, spec: Any, settings: GenerationSettings, context: GenerationContext | None
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        cuda = cuda_available() and settings.device != "cpu"
        if settings.device == "cuda" and not cuda:
            raise ConfigError("generation: field 'device' is cuda but torch sees no CUDA device")
        choice = choose_quantization(spec.quantization, cuda)
        if spec.gguf_file:
            path = spec.gguf_path()
            ref, extra = str(path.parent), {"gguf_file": path.name}
        else:
            ref, extra = spec.hf_id, {}
        common = {"trust_remote_code": spec.trust_remote_code, **extra}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(ref, **common)
            config = AutoConfig.from_pretrained(ref, **common)
        except ImportError as err:  # e.g. gguf_file= without the gguf package
            raise ConfigError(
                f"models: cannot load {spec.slug!r}: {str(err).splitlines()[0][:200]}"
            ) from None
        except OSError as err:
            raise ConfigError(
                f"models: cannot load {spec.slug!r} from {ref!r} "
                f"({str(err).splitlines()[0][:200]}; offline runs need the model in the HF cache)"
            ) from None
        apply_rope_scaling(config, spec.rope_scaling)
        kwargs: dict[str, Any] = {"pretrained_model_name_or_path": ref, "config": config, **common}
        if cuda:
            kwargs.update(device_map="auto", dtype=torch.float16)
        else:
            kwargs.update(dtype=torch.float32)
        loader = quantized_from_gguf if spec.gguf_file else AutoModelForCausalLM.from_pretrained
        self.model, choice = load_with_fallback(loader, kwargs, choice)
        self.model.eval()
        for w in choice.warnings:
            log.warning("%s", w)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.spec = spec
        self._prefill = None
        self.constrained = resolve_constrained(settings.constrained, "transformers", spec)
        self.records_per_forward = settings.batch_size if cuda else CPU_RECORDS_PER_FORWARD
        device = str(getattr(self.model, "device", "cpu"))
        self.stats = BackendStats(
            device=device if not cuda else f"{device} ({torch.cuda.get_device_name(0)})",
            quantization=choice.label,
            constrained=self.constrained,
            warnings=list(choice.warnings),
        )
        self.stats.extra["threads"] = torch.get_num_threads()
        self.stats.extra["quantized_layers"] = quantized_layers(self.model)
        self.stats.extra["weights_mb"] = round(self.model.get_memory_footprint() / 2**20, 1)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- generation ----------------------------------------------------------------------
    def _prefix_fn(self, schema: dict) -> Callable[[int, Any], list[int]]:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        if self._enforcer_data is None:
            self._enforcer_data = enforcer_tokenizer_data(self.tokenizer)
        enforcer = TokenEnforcer(self._enforcer_data, JsonSchemaParser(schema))

        def allowed(batch_id: int, sent: Any) -> list[int]:
            return enforcer.get_allowed_tokens(sent.tolist()).allowed_tokens

        return allowed

    def _fit_context(self, n_prompt: int, budgets: list[int]) -> list[int]:
        """Budgets cut so that prompt + budget fits the model's context (with a warning)."""
        ctx = self.spec.context or getattr(self.model.config, "max_position_embeddings", None)
        if not ctx or n_prompt + max(budgets) <= ctx:
            return budgets
        room = ctx - n_prompt
        if room <= 0:
            raise ConfigError(
                f"models: prompt of {n_prompt} tokens does not fit the context of "
                f"{self.spec.slug!r} ({ctx} tokens)"
            )
        for b in budgets:
            if b > room:
                warning = f"token budget cut from {b} to {room} to fit the context"
                if warning not in self.stats.warnings:
                    self.stats.warnings.append(warning)
        return [min(b, room) for b in budgets]

    def _stop_id(self) -> int | None:
        """A token ``generate`` treats as end of sequence (generation config first)."""
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(eos, (list, tuple)):
            eos = eos[0] if eos else None
        return eos if eos is not None else self.tokenizer.eos_token_id

    def _decode_rows(self, new: Any, budgets: list[int]) -> list[str]:
        texts = []
        eos = self.tokenizer.eos_token_id
        for row, budget in zip(new.tolist(), budgets):
            row = row[:budget]
            if eos is not None and eos in row:
                row = row[: row.index(eos) + 1]
            self.stats.output_tokens += len(row)
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return texts

    def _generate(
        self,
        texts: list[str],
        budgets: list[int],
        seeds: list[int],
        settings: GenerationSettings,
        prefix_fn: Callable | None = None,
    ) -> list[str]:
        """One ``generate`` call with one row per text (left-padded).

        Unconstrained rows sample with :class:`RowSampler` (row ``i`` seeded ``seeds[i]``);
        constrained rows (``prefix_fn``) share ``seeds[0]`` through the global torch seed.
        """
        import torch

        add_special = self.stats.extra.get("prompt_format") != "chat_template"
        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=add_special
        )
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        n_prompt = int(enc["input_ids"].shape[1])
        budgets = self._fit_context(n_prompt, budgets)
        sample = settings.temperature > 0
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=max(budgets),
            pad_token_id=self.tokenizer.pad_token_id,
            # KV caching whatever the checkpoint's config says: MPT's is off (MptConfig's
            # default), so generate re-ran the whole sequence at every step and appended it
            # to a prompt cache handed in (a tiny MPT failed past max_seq_len after 6 steps)
            use_cache=True,
        )
        if prefix_fn is not None:
            torch.manual_seed(seeds[0])
            gen_kwargs.update(do_sample=sample, prefix_allowed_tokens_fn=prefix_fn)
            if sample:
                gen_kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        else:
            # greedy over the scores RowSampler returns = its per-row sample
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if len(set(texts)) == 1:
                cache = self._prompt_cache(texts[0], enc["input_ids"][:1], len(texts))
                if cache is not None:
                    gen_kwargs["cache"] = cache
            if sample:
                from transformers import LogitsProcessorList

                gen_kwargs["logits_processor"] = LogitsProcessorList(
                    [
                        RowSampler(
                            seeds,
                            settings.temperature,
                            settings.top_p,
                            budgets,
                            n_prompt,
                            self._stop_id(),
                        )
                    ]
                )
        with torch.inference_mode():
            out = self.model.generate(**enc, **gen_kwargs)
        n_real = (
            int(enc["attention_mask"].sum()) if "attention_mask" in enc else n_prompt * len(texts)
        )
        self.stats.input_tokens += n_real
        self.stats.calls += 1
        return self._decode_rows(out[:, n_prompt:], budgets)

    def _prompt_cache(self, text: str, ids: Any, width: int) -> Any:
        """The KV cache of ``ids`` (the tokens of ``text``) without its last token, repeated for
        ``width`` rows, or None where the model's cache cannot be copied and repeated (legacy
        tuples of remote code). The cache is kept per prompt text: one tokeniser setting per
        load, and :meth:`load` drops it.

        Every mini-batch of a one-prompt cell sends the same prompt: its prefill is computed
        once per prompt and copied into each call, instead of once per row and call. On the
        2-core CPU one prefill of the stroke FEATDESC prompt costs SmolLM2 about 1.5 s, some
        30 sampled tokens; the cell of ``benchmarks/generation.py --transformers`` went from
        53.3 to 47.1 s decoded sequentially and from 24.5 to 18.6 s batched (width 5).
        The last prompt token is left to ``generate`` so that its first step yields the
        logits the sampler reads; rows sharing the cache are exact copies of one prefill, so
        the same seed and width still give the same text.
        """
        import copy

        import torch
        from transformers import Cache

        if ids.shape[1] < 2:
            return None
        with torch.inference_mode():
            if self._prefill is None or self._prefill[0] != text:
                self._prefill = None  # free the previous prompt's cache before this prefill
                # only the cache is needed: skip the logits of all prompt positions where the
                # model allows it (a 152k vocabulary over 1,500 positions is ~0.5 GB in fp16)
                supports = getattr(self.model, "_supports_logits_to_keep", lambda: False)
                keep = {"logits_to_keep": 1} if supports() else {}
                out = self.model(input_ids=ids[:, :-1], use_cache=True, **keep)
                cache = getattr(out, "cache", None)
                if cache is None:  # the output's name before transformers 5.x's rename
                    cache = getattr(out, "past_key_values", None)
                usable = isinstance(cache, Cache) and hasattr(cache, "batch_repeat_interleave")
                self._prefill = (text, cache if usable else None)
            if self._prefill[1] is None:
                return None
            cache = copy.deepcopy(self._prefill[1])
            if width > 1:
                cache.batch_repeat_interleave(width)
        return cache

    def _prompt_text(self, system: str, user: str) -> str:
        text, how, warnings = format_chat(self.tokenizer, self.spec, system, user)
        self.stats.extra["prompt_format"] = how
        for w in warnings:
            if w not in self.stats.warnings:
                self.stats.warnings.append(w)
        return text

    def parallel_width(self, settings: GenerationSettings, requests: list[tuple]) -> int:
        """Mini-batches per ``generate`` call: the setting, else sized from free GPU memory
        (KV cache of the longest prompt + budget of ``requests``), else the CPU constant.
        Constrained decoding batches records itself: 1."""
        if self.constrained:
            return 1
        if settings.max_parallel_sequences:
            return int(settings.max_parallel_sequences)
        if not str(getattr(self.model, "device", "cpu")).startswith("cuda"):
            return CPU_PARALLEL_SEQUENCES
        import torch

        tpr = settings.tokens_per_record or 64.0
        longest = (
            max(
                self.count_tokens(s + u) + (settings.max_new_tokens or token_budget(n, tpr))
                for s, u, n, _ in requests
            )
            if requests
            else 4096
        )
        free, _ = torch.cuda.mem_get_info()
        return gpu_width(self.model.config, longest, free)

    def generate_many(
        self,
        requests: list[tuple[str, str, int, int]],
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[list[str]]:
        """(system, user, n_records, seed) per mini-batch -> its chunks, decoded as the rows of
        one call (unconstrained); constrained requests run one after the other."""
        if self.constrained and schema:
            return [self.generate(s, u, n, seed, settings, schema) for s, u, n, seed in requests]
        tpr = settings.tokens_per_record or 64.0
        texts = [self._prompt_text(s, u) for s, u, _, _ in requests]
        budgets = [settings.max_new_tokens or token_budget(n, tpr) for _, _, n, _ in requests]
        seeds = [call_seed(seed, 0) for _, _, _, seed in requests]
        return [[t] for t in self._generate(texts, budgets, seeds, settings)]

    def generate(
        self,
        system: str,
        user: str,
        n_records: int,
        seed: int,
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[str]:
        """Constrained: ``records_per_forward`` one-record sequences per call; else one
        sequence with a budget for ``n_records``."""
        text = self._prompt_text(system, user)
        tpr = settings.tokens_per_record or 64.0
        if self.constrained and schema:
            budget = settings.max_new_tokens or token_budget(1, tpr)
            chunks: list[str] = []
            call = 0
            while len(chunks) < n_records:
                k = min(self.records_per_forward, n_records - len(chunks))
                # a fresh enforcer per call: it keys its state on the token prefix
                chunks += [
                    t.strip()
                    for t in self._generate(
                        [text] * k,
                        [budget] * k,
                        [call_seed(seed, call)],
                        settings,
                        self._prefix_fn(schema),
                    )
                ]
                call += 1
            return chunks
        budget = settings.max_new_tokens or token_budget(n_records, tpr)
        return self._generate([text], [budget], [call_seed(seed, 0)], settings)


def gpu_width(config: Any, tokens: int, free_bytes: int) -> int:
    """Sequences of ``tokens`` tokens whose float16 KV caches (and a float32 logits row) fit
    :data:`GPU_MEMORY_SHARE` of ``free_bytes``; 1 .. :data:`GPU_MAX_PARALLEL_SEQUENCES`."""
    layers = int(getattr(config, "num_hidden_layers", 32))
    heads = int(getattr(config, "num_attention_heads", 32))
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(
        getattr(config, "head_dim", None) or getattr(config, "hidden_size", 4096) // heads
    )
    per_seq = 2 * layers * kv_heads * head_dim * 2 * tokens + 4 * int(
        getattr(config, "vocab_size", 32000)
    )
    return max(1, min(GPU_MAX_PARALLEL_SEQUENCES, int(GPU_MEMORY_SHARE * free_bytes // per_seq)))


def create() -> TransformersBackend:
    return TransformersBackend()


# keep a reference for tests/benchmarks that want to know whether CUDA code was imported
CUDA_MODULES = ("bitsandbytes",)


def cuda_modules_loaded() -> list[str]:
    """CUDA-only modules present in ``sys.modules`` (empty on a clean CPU run)."""
    return [m for m in CUDA_MODULES if m in sys.modules]

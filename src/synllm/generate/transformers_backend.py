"""Hugging Face transformers backend: the paper's generation path.

- Loads a model by Hugging Face id or local path, or a GGUF file (``gguf_file=``; weights are
  dequantised to float32). Never downloads when ``HF_HUB_OFFLINE=1``.
- On CUDA with ``quantization: nf4``: bitsandbytes 4-bit NF4, float16 compute, double
  quantization (the paper's setting). Without CUDA, without bitsandbytes, or when loading the
  quantized model fails, it falls back to full precision and says so (log warning, meta
  ``quantization: none`` + a warning). bitsandbytes is imported only inside
  :func:`choose_quantization`, so CPU machines never need it.
- ``rope_scaling`` from the registry overrides the model config (LLaMA).
- Prompt: the tokenizer's chat template when it has one (``chat_template: auto``), else the
  registry's ``plain_format``. A template that rejects the system turn gets it merged into
  the user turn.
- Sampling: temperature / top-p from settings (paper: 0.7 / 0.9). Unconstrained: one sequence
  per mini-batch with a token budget for all its records. Constrained (lm-format-enforcer,
  JSON schema of one record): ``records_per_forward`` sequences per ``generate`` call, one
  record each.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

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


def choose_quantization(requested: str, cuda: bool) -> QuantChoice:
    """Quantization config for ``requested`` (nf4|none|gptq) on a machine with/without CUDA.

    nf4 needs CUDA and an importable bitsandbytes; otherwise full precision with a warning.
    """
    if requested == "none":
        return QuantChoice(None, "none")
    if requested == "gptq":
        # the checkpoint carries its own quantization_config; transformers picks the kernel
        return QuantChoice(None, "gptq")
    if not cuda:
        return QuantChoice(
            None, "none", ["nf4 requested but CUDA is not available: loading in full precision"]
        )
    try:
        import bitsandbytes  # noqa: F401
        import torch
        from transformers import BitsAndBytesConfig
    except Exception as err:  # ImportError, or a broken CUDA build raising at import
        return QuantChoice(
            None,
            "none",
            [f"nf4 requested but bitsandbytes is unavailable ({type(err).__name__}: {err}): "
             "loading in full precision"],
        )
    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.float16,
        bnb_4bit_use_double_quant=True,
    )
    return QuantChoice(config, "nf4")


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
        msg = (f"4-bit {choice.label} load failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}): "
               "loading in full precision")
        return loader(**kwargs), QuantChoice(None, "none", choice.warnings + [msg])


def apply_rope_scaling(config: Any, rope: dict | None) -> None:
    """Set the registry's rope scaling on a transformers config (v4 ``rope_scaling`` and v5
    ``rope_parameters`` spellings)."""
    if not rope:
        return
    rope = dict(rope)
    if "type" in rope and "rope_type" not in rope:
        rope["rope_type"] = rope["type"]
    if hasattr(config, "rope_parameters"):
        params = dict(getattr(config, "rope_parameters", None) or {})
        params.update(rope)
        config.rope_parameters = params
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
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return text, "chat_template", []
        except Exception as err:  # jinja TemplateError "roles must alternate" etc.
            if messages is merged:
                raise
            text = tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
            return text, "chat_template", [f"chat template rejected the system turn ({err}): merged into user"]
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

    # -- loading -------------------------------------------------------------------------
    def load(self, spec: Any, settings: GenerationSettings, context: GenerationContext | None) -> None:
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
        self.model, choice = load_with_fallback(AutoModelForCausalLM.from_pretrained, kwargs, choice)
        self.model.eval()
        for w in choice.warnings:
            log.warning("%s", w)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.spec = spec
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

    def _generate(self, text: str, n_seq: int, max_new_tokens: int, seed: int,
                  settings: GenerationSettings, prefix_fn: Callable | None) -> list[str]:
        import torch

        add_special = self.stats.extra.get("prompt_format") != "chat_template"
        enc = self.tokenizer([text] * n_seq, return_tensors="pt", add_special_tokens=add_special)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        n_prompt = int(enc["input_ids"].shape[1])
        ctx = self.spec.context or getattr(self.model.config, "max_position_embeddings", None)
        if ctx and n_prompt + max_new_tokens > ctx:
            room = ctx - n_prompt
            if room <= 0:
                raise ConfigError(
                    f"models: prompt of {n_prompt} tokens does not fit the context of "
                    f"{self.spec.slug!r} ({ctx} tokens)"
                )
            warning = f"token budget cut from {max_new_tokens} to {room} to fit the context"
            if warning not in self.stats.warnings:
                self.stats.warnings.append(warning)
            max_new_tokens = room
        torch.manual_seed(seed)
        sample = settings.temperature > 0
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if sample:
            gen_kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        if prefix_fn is not None:
            gen_kwargs["prefix_allowed_tokens_fn"] = prefix_fn
        with torch.inference_mode():
            out = self.model.generate(**enc, **gen_kwargs)
        new = out[:, n_prompt:]
        texts = []
        eos = self.tokenizer.eos_token_id
        for row in new.tolist():
            if eos is not None and eos in row:
                row = row[: row.index(eos) + 1]
            self.stats.output_tokens += len(row)
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        self.stats.input_tokens += n_prompt * n_seq
        self.stats.calls += 1
        return texts

    def generate(self, system: str, user: str, n_records: int, seed: int,
                 settings: GenerationSettings, schema: dict | None) -> list[str]:
        """Constrained: ``records_per_forward`` one-record sequences per call; else one
        sequence with a budget for ``n_records``."""
        text, how, warnings = format_chat(self.tokenizer, self.spec, system, user)
        self.stats.extra["prompt_format"] = how
        for w in warnings:
            if w not in self.stats.warnings:
                self.stats.warnings.append(w)
        tpr = settings.tokens_per_record or 64.0
        if self.constrained and schema:
            budget = settings.max_new_tokens or token_budget(1, tpr)
            chunks: list[str] = []
            call = 0
            while len(chunks) < n_records:
                k = min(self.records_per_forward, n_records - len(chunks))
                # a fresh enforcer per call: it keys its state on the token prefix
                chunks += [t.strip() for t in self._generate(
                    text, k, budget, call_seed(seed, call), settings, self._prefix_fn(schema))]
                call += 1
            return chunks
        budget = settings.max_new_tokens or token_budget(n_records, tpr)
        return self._generate(text, 1, budget, call_seed(seed, 0), settings, None)


def create() -> TransformersBackend:
    return TransformersBackend()


# keep a reference for tests/benchmarks that want to know whether CUDA code was imported
CUDA_MODULES = ("bitsandbytes",)


def cuda_modules_loaded() -> list[str]:
    """CUDA-only modules present in ``sys.modules`` (empty on a clean CPU run)."""
    return [m for m in CUDA_MODULES if m in sys.modules]


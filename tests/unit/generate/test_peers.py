"""Peer generators (CTGAN, TVAE through SDV) and "bring your own table" (backend replay).

Training tests run on a small real subset with a few epochs (seconds) and need the extra
``peers`` (``pip install -e ".[peers]"``); without it they skip and only the checks that do
not fit a model run (registry, grid, the one-line missing-package error, aggregation). The
peers grid through the Snakefile (dry run): tests/workflow/test_peers_dry_run.py.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synllm.config import grid
from synllm.errors import ConfigError
from synllm.generate import peers
from synllm.generate.base import GenerationContext, GenerationSettings, get_backend
from synllm.registry import load_registry, parse_registry
from synllm.validate import validate_text

HAVE_SDV = importlib.util.find_spec("sdv") is not None
needs_sdv = pytest.mark.skipif(not HAVE_SDV, reason='needs the extra: pip install -e ".[peers]"')
KINDS = ("ctgan", "tvae")
TINY = {"epochs": 2, "batch_size": 100, "max_train_rows": 300}


def registry(tmp_path: Path, **budget) -> Path:
    body = {"epochs": 2, "batch_size": 100, "max_train_rows": 300, **budget}
    models = {k: {"backend": "peer", "peer": k, "train": body, "threads": 1} for k in KINDS}
    models["mygen"] = {"backend": "replay"}
    path = tmp_path / "models.yaml"
    path.write_text(json.dumps({"models": models}))
    return path


# -------------------------------------------------------------------- registry and grid
def test_shipped_registry_declares_peers_with_budgets():
    reg = load_registry("config/models.yaml")
    for kind in KINDS:
        spec = reg.get(kind)
        assert spec.backend == "peer" and spec.peer == kind and not spec.takes_prompt
        cpu, gpu = spec.budget("cpu"), spec.budget("gpu")
        assert cpu.max_train_seconds and cpu.max_train_rows  # CPU-sized
        assert gpu.epochs >= 300 and gpu.max_train_rows is None  # paper-sized: every train row


def test_peer_needs_a_kind_and_a_budget():
    with pytest.raises(ConfigError, match=r"models\.x.*'peer'.*'train'"):
        parse_registry({"models": {"x": {"backend": "peer", "peer": "ctgan"}}})
    with pytest.raises(ConfigError, match="only apply to backend 'peer'"):
        parse_registry(
            {"models": {"x": {"backend": "baseline", "kind": "copula", "peer": "ctgan"}}}
        )


def test_grid_gives_peers_and_external_tables_prompt_none(tmp_path):
    reg = parse_registry(
        {
            "models": {
                **json.loads(registry(tmp_path).read_text())["models"],
                "llm": {"backend": "openai", "api_model": "m"},
            }
        }
    )
    cfg = {
        "datasets": ["stroke"],
        "models": ["ctgan", "mygen", "llm"],
        "prompts": ["SEEDEx", "naive"],
        "repeats": 1,
    }
    cells = {(c.model, c.prompt) for c in grid(cfg, reg)}
    assert cells == {("ctgan", "none"), ("mygen", "none"), ("llm", "SEEDEx"), ("llm", "naive")}


def test_missing_package_is_one_line_naming_the_extra(monkeypatch, stroke_split, tmp_path):
    real_find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sdv" else real_find(name, *a)
    )
    with pytest.raises(ConfigError) as err:
        peers.require("ctgan")
    msg = str(err.value)
    assert "\n" not in msg and "'sdv'" in msg and 'pip install -e ".[peers]"' in msg
    # the backend itself imports without sdv: the error comes from load, in the same words
    spec = load_registry(registry(tmp_path)).get("tvae")
    card = stroke_split[0]
    with pytest.raises(ConfigError, match=r"\.\[peers\]"):
        get_backend("peer").load(spec, GenerationSettings(), GenerationContext(card=card))


def test_sdv_metadata_follows_the_card(real):
    card, _ = real("stroke")
    cols = peers.sdv_metadata_dict(card)["tables"]["stroke"]["columns"]
    assert list(cols) == card.feature_names
    for name, col in card.columns.items():
        want = "numerical" if col.is_numeric else "categorical"
        assert cols[name]["sdtype"] == want
    if HAVE_SDV:
        from sdv.metadata import Metadata

        Metadata.load_from_dict(peers.sdv_metadata_dict(card)).validate()


# -------------------------------------------------------------------- training and sampling
def fit(kind, card, root, seed, tmp_path, **budget):
    spec = load_registry(registry(tmp_path, **budget)).get(kind)
    return peers.train(spec, card, root / "train.parquet", seed)


@needs_sdv
@pytest.mark.parametrize("kind", KINDS)
def test_samples_pass_the_validator_with_card_columns_and_types(kind, stroke_split, tmp_path):
    card, train, _, root = stroke_split
    model, info = fit(kind, card, root, 3, tmp_path)
    assert info["train_rows"] == 300 and info["epochs_run"] == 2 and info["train_seconds"] > 0
    df = peers.sample_peer(model, card, 60, seed=11)
    assert list(df.columns) == card.feature_names and len(df) == 60
    text = peers.to_csv_text(df, card)
    assert text.splitlines()[0] == ",".join(card.feature_names)
    table, report = validate_text(text, card, train=train)
    # SDV keeps the train min/max and the categories: every row parses with the card's types;
    # only the card's clinical rules may reject some (a 2-epoch GAN marries 11-year-olds)
    rejected = report["rejected"]
    assert report["parsed"] == 60 and report["valid"] + rejected["clinical_rule"] == 60
    assert sum(v for k, v in rejected.items() if k != "clinical_rule") == 0
    assert report["valid"] >= 30
    assert str(table["age"].dtype) == "float64" and str(table["hypertension"].dtype) == "Int64"
    assert set(table["hypertension"].dropna()) <= {0, 1}
    assert set(table["gender"].dropna()) <= set(card.columns["gender"].categories)


@needs_sdv
@pytest.mark.parametrize("kind", KINDS)
def test_reproducible_from_the_seed(kind, stroke_split, tmp_path):
    card, _, _, root = stroke_split
    a, _ = fit(kind, card, root, 5, tmp_path)
    b, _ = fit(kind, card, root, 5, tmp_path)
    text = [peers.to_csv_text(peers.sample_peer(m, card, 25, seed=9), card) for m in (a, b)]
    assert text[0] == text[1]  # same training seed, same sampling seed
    again = peers.to_csv_text(peers.sample_peer(a, card, 25, seed=9), card)
    other = peers.to_csv_text(peers.sample_peer(a, card, 25, seed=10), card)
    assert again == text[0] and other != text[0]  # a rep's seed changes the records


@needs_sdv
def test_training_never_reads_holdout_rows(monkeypatch, stroke_split, tmp_path):
    """Only the train file is read, and every row the synthesizer sees is a train row."""
    card, train, holdout, root = stroke_split
    read, seen = [], []
    real_read = pd.read_parquet
    monkeypatch.setattr(
        pd, "read_parquet", lambda p, *a, **k: read.append(Path(p)) or real_read(p, *a, **k)
    )
    real_fit = peers.fit_peer

    def spy(kind, card_, rows, *a, **k):
        seen.append(rows.copy())
        return real_fit(kind, card_, rows, *a, **k)

    monkeypatch.setattr(peers, "fit_peer", spy)
    spec = load_registry(registry(tmp_path)).get("tvae")
    model, _ = peers.train(spec, card, root / "train.parquet", 1)
    assert read == [root / "train.parquet"]
    # stroke rows are unique per patient once the id is dropped? not always: match on all columns
    key = lambda df: set(map(tuple, df[card.feature_names].astype(str).to_numpy().tolist()))  # noqa: E731
    assert key(seen[0]) <= key(train)
    assert len(seen[0]) == 300
    # sampling reads nothing either (the fitted model is all it needs)
    read.clear()
    backend = get_backend("peer")
    path = tmp_path / "m" / "model.pkl"
    peers.save_model(model, path)
    ctx = GenerationContext(
        card=card,
        train_path=root / "train.parquet",
        holdout_path=root / "holdout.parquet",
        peer_model=path,
    )
    backend.load(spec, GenerationSettings(), ctx)
    backend.generate("", "", 10, 1, GenerationSettings(), None)
    assert read == []


@needs_sdv
def test_time_budget_stops_training_after_an_epoch(stroke_split, tmp_path):
    card, _, _, root = stroke_split
    _, info = fit("ctgan", card, root, 1, tmp_path, epochs=50, max_train_seconds=0.001)
    assert info["epochs_run"] == 1 and info["stopped_by_time"]


@needs_sdv
def test_train_and_generate_steps_write_model_and_meta(stroke_split, tmp_path):
    """``synllm train-peer`` then ``synllm generate --peer-model``: CSV raw text + peer meta."""
    from synllm.cli import main

    card, train, _, root = stroke_split
    reg = registry(tmp_path)
    model, info = tmp_path / "peers" / "model.pkl", tmp_path / "peers" / "train.json"
    assert (
        main(
            [
                "train-peer",
                "--model",
                "tvae",
                "--registry",
                str(reg),
                "--card",
                "resources/datasets/stroke.yaml",
                "--train",
                str(root / "train.parquet"),
                "--seed",
                "2",
                "--out-model",
                str(model),
                "--out-info",
                str(info),
            ]
        )
        == 0
    )
    facts = json.loads(info.read_text())
    assert facts["epochs_run"] == 2 and facts["budget"]["epochs"] == 2 and facts["peak_rss_mb"] > 0
    raw, meta = tmp_path / "r1.txt", tmp_path / "r1.meta.json"
    assert (
        main(
            [
                "generate",
                "--model",
                "tvae",
                "--registry",
                str(reg),
                "--card",
                "resources/datasets/stroke.yaml",
                "--train",
                str(root / "train.parquet"),
                "--holdout",
                str(root / "holdout.parquet"),
                "--n-records",
                "20",
                "--seed",
                "7",
                "--peer-model",
                str(model),
                "--out-raw",
                str(raw),
                "--out-meta",
                str(meta),
            ]
        )
        == 0
    )
    m = json.loads(meta.read_text())
    assert m["generator_kind"] == "peer" and m["prompt_style"] == "none"
    assert m["records_found"] == 20 and m["warnings"] == []
    assert m["train_seconds"] == facts["train_seconds"] and m["epochs_run"] == 2
    assert m["sample_seconds"] > 0 and m["train_peak_rss_mb"] == facts["peak_rss_mb"]
    _, report = validate_text(raw.read_text(), card, train=train)
    assert report["parsed"] == 20


# -------------------------------------------------------------------- bring your own table
def test_bring_your_own_table_goes_through_replay(real, stroke_split, tmp_path):
    """``<dir>/<dataset>/<name>.csv`` from anywhere: read with prompt none, validated, kind external."""
    from synllm.cli import main

    card, train, _, root = stroke_split
    mine = train.sample(30, random_state=0)
    folder = tmp_path / "tables" / "stroke"
    folder.mkdir(parents=True)
    # a foreign tool's CSV: its own column order, an index column, NA for missing
    mine[card.feature_names[::-1]].to_csv(folder / "mygen.csv", na_rep="NA")
    raw, meta = tmp_path / "r1.txt", tmp_path / "r1.meta.json"
    settings = json.dumps({"replay_dir": str(tmp_path / "tables")})
    assert (
        main(
            [
                "generate",
                "--model",
                "mygen",
                "--registry",
                str(registry(tmp_path)),
                "--card",
                "resources/datasets/stroke.yaml",
                "--n-records",
                "30",
                "--settings",
                settings,
                "--out-raw",
                str(raw),
                "--out-meta",
                str(meta),
            ]
        )
        == 0
    )
    m = json.loads(meta.read_text())
    assert m["generator_kind"] == "external" and m["backend"] == "replay"
    assert m["backend_info"]["replay_file"].endswith("stroke/mygen.csv")
    table, report = validate_text(raw.read_text(), card)
    assert report["valid"] == 30
    np.testing.assert_allclose(np.sort(table["age"].to_numpy()), np.sort(mine["age"].to_numpy()))


# -------------------------------------------------------------------- aggregation
def test_table6_ranks_peers_with_llms_on_train_plus_sample_time():
    from synllm.aggregate import scores, tables

    key = ["dataset", "model", "prompt", "rep"]
    cells = pd.DataFrame(
        [
            ["d", "llm", "SEEDEx", 1],
            ["d", "ctgan", "none", 1],
            ["d", "copula", "none", 1],
            ["d", "mine", "none", 1],
        ],
        columns=key,
    )
    meta = cells.assign(
        generator_kind=["LLM", "peer", "baseline", "external"],
        wall_seconds=[40.0, 2.0, 0.5, 0.1],
        train_seconds=[np.nan, 18.0, np.nan, np.nan],
    )
    kinds = scores.model_kinds(cells, meta)
    assert kinds == {"llm": "LLM", "ctgan": "peer", "copula": "baseline", "mine": "external"}
    assert scores.model_kinds(cells)["ctgan"] == "baseline"  # without meta: prompt none
    sc = cells.assign(status="ok", gfi=[0.5, 0.5, 0.9, 0.5])
    eff = scores.efficiency_table(sc, meta, kinds).set_index("model")
    # durations: llm 40, ctgan 18 + 2 = 20, mine 0.1; speed 1/d min-max over the three
    assert eff.loc["ctgan", "mean_duration_s"] == pytest.approx(20.0)
    assert eff.loc["ctgan", "mean_train_s"] == pytest.approx(18.0)
    s = {"llm": 1 / 40, "ctgan": 1 / 20, "mine": 1 / 0.1}
    lo, hi = min(s.values()), max(s.values())
    assert eff.loc["ctgan", "norm_speed"] == pytest.approx((s["ctgan"] - lo) / (hi - lo))
    assert list(eff["rank"].dropna()) == [1, 2, 3] and pd.isna(eff.loc["copula", "rank"])
    frame, layout = tables.table6(eff.reset_index(), {})
    assert layout.index == ["Rank", "Model", "Kind"]
    by_model = {r[1]: r for r in layout.rows}
    assert by_model["ctgan (peer)"][2] == "peer" and by_model["ctgan (peer)"][4] == "18.00"
    assert by_model["llm"][2] == "LLM" and by_model["llm"][4] == ""

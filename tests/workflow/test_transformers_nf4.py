"""The paper's generation path through the real Snakefile in 4-bit NF4 on CPU: the embedded
SmolLM2 through the transformers backend (``smollm2-135m-hf``, its registry entry with
``quantization: nf4``, the paper models' setting), one stroke cell, generated and validated.

The GGUF is loaded dequantised and quantized by bitsandbytes on CPU (0.50.2, the pin,
detected at load); every model class of the paper grid in NF4:
tests/unit/generate/test_transformers_classes.py."""

from __future__ import annotations

import json

import pandas as pd
import yaml

SLUG = "smollm2-135m-hf"


def test_smollm2_in_nf4_on_cpu_generates_and_validates(tmp_path, root, run_snakemake):
    """The generate job's meta says NF4 on CPU with the 4-bit layers counted, and the cell's
    records go through the validator. Constrained decoding (the entry's default) so that the
    two records parse whatever the 4-bit weights sample; 2 records in one call of 2 rows."""
    registry = yaml.safe_load((root / "config" / "models.yaml").read_text())["models"]
    entry = {**registry[SLUG], "quantization": "nf4"}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"models": {SLUG: entry}}))
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    for key in ("data_dir", "cards_dir", "prompts_dir"):
        config[key] = str(root / config[key])
    config.update(
        model_registry=str(tmp_path / "models.yaml"),
        datasets=["stroke"],
        models=[SLUG],
        prompts=["SEEDEx"],
        n_records=2,
    )
    config["generation"].update(batch_size=2, max_attempts=1, device="cpu")
    cell = "stroke/smollm2-135m-hf/SEEDEx/r1"
    proc = run_snakemake(tmp_path, config, f"results/validation/{cell}.json")
    assert proc.returncode == 0, proc.stderr[-4000:]

    res = tmp_path / "results"
    meta = json.loads((res / f"raw/{cell}.meta.json").read_text())
    assert meta["backend"] == "transformers" and meta["model"] == SLUG
    assert meta["quantization"] == "nf4" and meta["device"] == "cpu"
    assert not [w for w in meta["warnings"] if "precision" in w], meta["warnings"]
    info = meta["backend_info"]
    # SmolLM2-135M: 30 layers x 7 projections in 4-bit; the tied embedding / output head
    # (49,152 x 576) stays float32 (113 MB), the 4-bit linears ~106 M weights at half a byte
    # plus their block statistics: ~159 MB against 513 MB in float32
    assert info["quantized_layers"] == 30 * 7
    assert 120 < info["weights_mb"] < 200, info
    assert meta["constrained"] is True and meta["output_tokens"] > 0
    report = json.loads((res / f"validation/{cell}.json").read_text())
    assert report["parsed"] >= 1, report
    synth = pd.read_csv(res / f"synthetic/{cell}.csv")
    assert len(synth) == report["valid"]
    assert set(synth.columns) >= {"age", "stroke"}

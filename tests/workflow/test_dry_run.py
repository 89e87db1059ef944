"""The paper grid (config/paper.yaml) through the real `snakemake -n`, resources of the
generate jobs as the registry declares them, and one-line errors for bad config/profile values.

Every test runs the real Snakemake CLI on the repo's Snakefile with `--directory <tmp>`, so
nothing is written into the repository. (The paper config's own content:
tests/unit/test_config.py.)
"""

import re

import pytest
import yaml

from synllm.registry import load_registry

PAPER_MODELS = 20
PAPER_PROMPTS = ("SEEDEx", "FEATDESC", "STATGUIDE", "CLINRULE")


@pytest.fixture(scope="module")
def paper(root):
    return root / "config" / "paper.yaml"


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory, snakemake, paper):
    work = tmp_path_factory.mktemp("paper_dry")
    proc = snakemake(work, "-n", "--configfile", str(paper), "--cores", "8", "--resources", "gpu=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_paper_dry_run_lists_every_cell(paper_dry_run, job_counts, job_blocks):
    counts = job_counts(paper_dry_run)
    cells = 3 * PAPER_MODELS * len(PAPER_PROMPTS)
    # transformers models: one generate job (one model load) per dataset x model, writing
    # the cells of every prompt (rule generate_model)
    assert counts["generate_model"] == 3 * PAPER_MODELS and "generate" not in counts
    # and one validate and one evaluate job for the same cells (rules validate_model,
    # evaluate_model): one Python start-up per step instead of one per cell
    assert counts["validate_model"] == counts["evaluate_model"] == 3 * PAPER_MODELS
    assert "validate" not in counts and "evaluate" not in counts
    for prompt in PAPER_PROMPTS:
        assert paper_dry_run.count(f"/{prompt}/r1.json") >= 2 * 3 * PAPER_MODELS  # report, metrics
    assert cells == 240
    assert counts["split"] == counts["profile"] == counts["real_fits"] == 3
    assert counts["prompt"] == 3 * len(PAPER_PROMPTS)
    assert counts["check_models"] == counts["aggregate"] == counts["all"] == 1
    assert "fetch_models" not in counts  # a target of its own, never in the default run
    generate = job_blocks(paper_dry_run, "generate_model")
    groups = {(j["wildcards"]["dataset"], j["wildcards"]["model"]) for j in generate}
    assert len(groups) == 3 * PAPER_MODELS
    for prompt in PAPER_PROMPTS:
        assert f"/{prompt}/r1.meta.json" in paper_dry_run


def test_generate_jobs_take_resources_from_the_registry(paper_dry_run, job_blocks, root):
    registry = load_registry(root / "config" / "models.yaml")
    generate = job_blocks(paper_dry_run, "generate_model")
    assert len(generate) == 60
    for job in generate:
        spec = registry.get(job["wildcards"]["model"])
        res = job["resources"]
        assert int(res["gpu"]) == 1, job
        assert int(res["mem_mb"]) == spec.mem_mb, job  # attempt 1: registry value
        assert int(res["runtime"]) == spec.runtime * len(PAPER_PROMPTS), job  # 4 cells
        assert int(res["attempt"]) == 1
        assert job["threads"] == spec.threads, job
    # CPU steps never ask for a GPU, so they run beside the one GPU job
    for rule in (
        "validate_model",
        "evaluate_model",
        "prompt",
        "split",
        "profile",
        "aggregate",
        "real_fits",
        "check_models",
    ):
        for job in job_blocks(paper_dry_run, rule):
            assert int(job["resources"]["gpu"]) == 0, (rule, job)


def test_device_cpu_releases_the_gpu(tmp_path, paper, snakemake, job_blocks):
    """generation.device=cpu: the same models ask for no GPU (they would run on CPU)."""
    cfg = yaml.safe_load(paper.read_text())
    cfg["generation"]["device"] = "cpu"
    cfg["datasets"] = ["cirrhosis"]
    cfg["models"] = ["gpt2", "zephyr-7b-beta"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "c.yaml"), "--cores", "8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    generate = job_blocks(proc.stdout, "generate_model")
    assert len(generate) == 2
    assert all(int(j["resources"]["gpu"]) == 0 for j in generate)


def test_load_once_false_is_one_job_per_cell(tmp_path, paper, snakemake, job_counts):
    cfg = yaml.safe_load(paper.read_text())
    cfg["generation"]["load_once"] = False
    cfg["datasets"] = ["cirrhosis"]
    cfg["models"] = ["gpt2"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "c.yaml"), "--cores", "8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert counts["generate"] == len(PAPER_PROMPTS) and "generate_model" not in counts
    assert counts["evaluate"] == len(PAPER_PROMPTS) and "evaluate_model" not in counts


BASE = {"datasets": ["cirrhosis"], "models": ["gpt2"], "prompts": ["SEEDEx"]}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"models": ["gpt2", "gpt-5-turbo"]}, "models[1]"),
        ({"n_records": "many"}, "n_records"),
        ({"generation": {"temprature": 0.5}}, "temprature"),
        ({"repeats": 0}, "repeats"),
        ({"datasets": ["cirrhosis", "heart"]}, "datasets[1]"),
        ({"prompts": ["SEEDEx", "seedex"]}, "prompts[1]"),
    ],
    ids=[
        "unknown-model",
        "wrong-type",
        "unknown-key",
        "out-of-range",
        "unknown-dataset",
        "bad-prompt",
    ],
)
def test_bad_config_fails_with_one_clear_line(tmp_path, snakemake, change, field):
    cfg = {**BASE, **change}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("synllm:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert field in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_bad_profile_value_fails_with_one_clear_line(tmp_path, snakemake, root):
    """A profile is read by Snakemake's own parser: a bad value names the option."""
    prof = tmp_path / "prof"
    prof.mkdir()
    text = (root / "profiles" / "slurm" / "config.yaml").read_text()
    (prof / "config.yaml").write_text(re.sub(r"(?m)^retries: .*$", "retries: twice", text))
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(BASE))
    proc = snakemake(
        tmp_path, "-n", "--workflow-profile", str(prof), "--configfile", str(tmp_path / "ok.yaml")
    )
    assert proc.returncode != 0
    err = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(err) == 1 and "--retries" in err[0] and "twice" in err[0], proc.stderr[-2000:]


def test_slurm_profile_is_valid_and_routes_gpu_jobs(tmp_path, snakemake, root):
    """profiles/slurm parses (dry run with the slurm executor settings) and its partition
    file sends GPU jobs to a partition with GPUs and CPU jobs elsewhere."""
    from snakemake_executor_plugin_slurm.partitions import read_partition_file

    prof = root / "profiles" / "slurm"
    settings = yaml.safe_load((prof / "config.yaml").read_text())
    assert settings["executor"] == "slurm"
    parts = {
        p.name: p.limits for p in read_partition_file(prof / settings["slurm-partition-config"])
    }
    assert any(lim.max_gpu >= 1 for lim in parts.values())
    assert any(lim.max_gpu == 0 for lim in parts.values())
    registry = load_registry(root / "config" / "models.yaml")
    biggest = max(s.mem_mb for s in registry.models.values() if s.gpu)
    retries = int(settings["retries"])
    assert max(lim.max_mem_mb for lim in parts.values() if lim.max_gpu) >= biggest * (retries + 1)
    cfg = {**BASE, "models": ["gpt2"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(
        tmp_path, "-n", "--workflow-profile", str(prof), "--configfile", str(tmp_path / "c.yaml")
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gpu=1" in proc.stdout

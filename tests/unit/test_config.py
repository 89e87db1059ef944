"""Config validation: defaults, and one clear line naming the field for every mistake."""

import copy

import pytest
import yaml

from synllm.config import check_config, grid, n_records, validate_schema
from synllm.errors import ConfigError
from synllm.registry import load_registry


@pytest.fixture(scope="module")
def default(root):
    return yaml.safe_load((root / "config/config.yaml").read_text())


@pytest.fixture
def cfg(default):
    """``cfg(**changes)``: a deep copy of config/config.yaml with top-level keys replaced."""

    def make(**changes):
        c = copy.deepcopy(default)
        c.update(changes)
        return c

    return make


def test_default_config_is_valid_and_grid_counts(cfg, root):
    c = check_config(cfg())
    reg = load_registry(root / c["model_registry"])
    cells = grid(c, reg)
    llm = [x for x in cells if x.prompt != "none"]
    base = [x for x in cells if x.prompt == "none"]
    assert len(llm) == 3 * 4  # 3 datasets x 4 prompts on the embedded model
    assert len(base) == 3 * 3  # 3 baselines per dataset, no prompt
    assert {x.model for x in base} == {"holdout", "marginals", "copula"}


def test_defaults_are_filled_in():
    c = validate_schema({"datasets": ["stroke"], "models": ["holdout"], "prompts": ["SEEDEx"]})
    assert c["seed"] == 42 and c["repeats"] == 1 and c["holdout_fraction"] == 0.2
    assert c["generation"]["temperature"] == 0.7 and c["generation"]["top_p"] == 0.9
    assert c["generation"]["batch_size"] == 20
    assert c["validation"]["clinical_rules"] == "reject"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"prompts": ["SEEDEx", "FOO"]}, "config field 'prompts[1]': 'FOO' is not one of"),
        (
            {"datasets": ["diabetes", "diabetis"]},
            "config field 'datasets[1]': unknown dataset 'diabetis'",
        ),
        ({"models": ["smollm2-135m", "gpt-5"]}, "config field 'models[1]': unknown model 'gpt-5'"),
        ({"repeats": "two"}, "config field 'repeats': 'two' is not of type 'integer'"),
        ({"holdout_fraction": 1.5}, "config field 'holdout_fraction'"),
        ({"seeed": 1}, "config: unknown key(s) ['seeed']"),
        ({"generation": {"temperature": "hot"}}, "config field 'generation.temperature'"),
        ({"generation": {"backend_override": "replay"}}, "config field 'generation.replay_dir'"),
        ({"n_records": {"diabetes": 5}}, "config field 'n_records': no value for dataset(s)"),
    ],
)
def test_errors_name_the_field_in_one_line(cfg, change, expected):
    with pytest.raises(ConfigError) as err:
        check_config(cfg(**change))
    msg = str(err.value)
    assert expected in msg, msg
    assert "\n" not in msg


def test_missing_required_key(cfg):
    c = cfg()
    del c["models"]
    with pytest.raises(ConfigError, match="'models' is a required property"):
        check_config(c)


def test_n_records_per_dataset(cfg):
    c = check_config(cfg(n_records={"diabetes": 7, "stroke": 8, "cirrhosis": 9}))
    assert n_records(c, "stroke") == 8


def test_cell_seed_scheme():
    from synllm.names import cell_seed

    assert [cell_seed(42, r) for r in (1, 2, "3")] == [42, 1042, 2042]


def test_job_resources_of_a_generate_job(root):
    """The scheduler resources a generate rule declares come from the registry entry."""
    reg = load_registry(root / "config" / "models.yaml")
    gpu_model = reg.get("mistral-7b-instruct-v0.2")
    r = gpu_model.job_resources(attempt=2, cells=4)
    assert r == {
        "threads": gpu_model.threads,
        "gpu": 1,
        "mem_mb": 2 * gpu_model.mem_mb,
        "runtime": 8 * gpu_model.runtime,
    }
    assert gpu_model.job_resources(device="cpu")["gpu"] == 0
    # a replayed cell reads a file; a baseline keeps its own needs under the replay override
    assert gpu_model.job_resources("replay") == {
        "threads": 1,
        "gpu": 0,
        "mem_mb": 1000,
        "runtime": 5,
    }
    assert gpu_model.effective_backend("replay") == "replay"
    assert reg.get("holdout").effective_backend("replay") == "baseline"
    assert reg.get("smollm2-135m").job_resources()["gpu"] == 0


def test_paper_config_is_the_papers_grid(root):
    """config/paper.yaml: the paper's 20 models x 3 datasets x 4 prompts and its settings (its
    dry run through the Snakefile: tests/workflow/test_dry_run.py)."""
    config = yaml.safe_load((root / "config" / "paper.yaml").read_text())
    registry = load_registry(root / config["model_registry"])
    assert config["datasets"] == ["diabetes", "stroke", "cirrhosis"]
    assert tuple(config["prompts"]) == ("SEEDEx", "FEATDESC", "STATGUIDE", "CLINRULE")
    assert len(config["models"]) == 20 == len(set(config["models"]))
    # every model is a paper model (has a paper_name), runs on the GPU in 4-bit
    for slug in config["models"]:
        spec = registry.get(slug)
        assert spec.backend == "transformers" and spec.paper_name, slug
        assert spec.gpu == 1 and spec.quantization in ("nf4", "gptq"), slug
    # the paper's models that have published results (../shared/paper: Tables III and V)
    paper_names = {registry.get(s).paper_name for s in config["models"]}
    shared = root.parent / "shared" / "paper"
    if (shared / "table5_ml_utility_diabetes.csv").is_file():
        import pandas as pd

        # models.csv = Table III plus the base LLaMA 2 13B of the authors' outputs, added last
        table3 = set(pd.read_csv(shared / "models.csv")["paper_name"]) - {"LLaMA 2 13B"}
        table5 = set(pd.read_csv(shared / "table5_ml_utility_diabetes.csv")["model"])
        assert paper_names == table3 & table5
    gen = config["generation"]
    assert (gen["temperature"], gen["top_p"], gen["batch_size"]) == (0.7, 0.9, 20)
    assert gen["constrained"] is False and gen["device"] == "auto"
    assert config["repeats"] == 1 and config["n_records"] == 1000

import json
import os
import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

from snakemake.utils import validate


envvars:
    "PATH",


BASE = Path(workflow.basedir)
sys.path.insert(0, str(BASE / "src"))
# jobs call the `synllm` CLI installed next to the Python that runs Snakemake
os.environ["PATH"] = (
    os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
)

from synllm import BASELINE_PROMPT, EXTRA_PROMPT_STYLES, PROMPT_STYLES, names
from synllm.aggregate import outputs as aggregate_outputs
from synllm.config import check_config, grid, n_records, resolve_path
from synllm.errors import SynllmError
from synllm.fetch import hub_models
from synllm.generate.base_lm import base_model_folder
from synllm.registry import load_registry
from synllm.sweeps import (
    base_dataset,
    parse_variant,
    points_json,
    sweep_cells,
    sweep_points,
    variant_datasets,
)

try:
    check_config(config, base=BASE)
except SynllmError as err:
    sys.exit(f"synllm: {err}")
validate(config, schema="../schemas/config.schema.yaml")

RESULTS = "results"
CARDS_DIR = resolve_path(config["cards_dir"], BASE)
DATA_DIR = resolve_path(config["data_dir"], BASE)
PROMPTS_DIR = resolve_path(config["prompts_dir"], BASE)
REGISTRY_FILE = resolve_path(config["model_registry"], BASE)
REGISTRY = load_registry(REGISTRY_FILE)
CELLS = grid(config, REGISTRY)
GEN = config["generation"]
# like data_dir: relative to the workflow, whatever --directory the run writes to
if GEN.get("replay_dir"):
    GEN["replay_dir"] = str(resolve_path(GEN["replay_dir"], BASE))
PEER_BUDGET = config["peers"]["budget"]
ANONYMETER = config["anonymeter"]
# pinned environments of tools whose pins clash with ours (rule build_env; synllm.envs)
ENVS_DIR = BASE / "envs"
# sweeps (config section `sweeps`): variant datasets <dataset>~f<k> / <dataset>~n<N>
try:
    SWEEP_POINTS = sweep_points(config, CARDS_DIR)
except SynllmError as err:
    sys.exit(f"synllm: {err}")
SWEEP_CELLS = {
    axis: sweep_cells(config, REGISTRY, points) for axis, points in SWEEP_POINTS.items()
}
VARIANTS = variant_datasets(SWEEP_POINTS)


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in config["datasets"] + VARIANTS),
    model="[A-Za-z0-9._-]+",
    prompt="|".join(PROMPT_STYLES + EXTRA_PROMPT_STYLES + (BASELINE_PROMPT,)),
    rep=r"\d+",


def base_card_file(dataset):
    return str(CARDS_DIR / f"{dataset}.yaml")


def dataset_card(dataset):
    """The shipped card; a sweep variant's card is derived by rule sweep_card."""
    if parse_variant(dataset) is not None:
        return f"{RESULTS}/cards/{dataset}.yaml"
    return base_card_file(dataset)


def card_file(wildcards):
    return dataset_card(wildcards.dataset)


def data_file(wildcards):
    from synllm.cards import load_card
    from synllm.split import find_file

    base = base_dataset(wildcards.dataset)  # variants are split by rule sweep_card
    try:
        return str(find_file(load_card(base_card_file(base)), DATA_DIR))
    except SynllmError as err:
        sys.exit(f"synllm: {err}")


def split_file(part):
    return f"{RESULTS}/data/{{dataset}}/{part}.parquet"


def model_spec(wildcards):
    return REGISTRY.get(wildcards.model)


def effective_backend(wildcards):
    return model_spec(wildcards).effective_backend(GEN.get("backend_override"))


def job_resources(wildcards, attempt=1, cells=1):
    """Scheduler resources of a generate job (synllm.registry.ModelSpec.job_resources)."""
    return model_spec(wildcards).job_resources(
        GEN.get("backend_override"), GEN.get("device", "auto"), attempt, cells
    )


def uses_gpu(wildcards):
    return job_resources(wildcards)["gpu"] == 1


# generate jobs read Hugging Face models from the local cache only (synllm fetch-models
# fills it where there is network); export HF_HUB_OFFLINE=0 to let jobs download
os.environ.setdefault("HF_HUB_OFFLINE", "1")
HUB_MODELS = (
    []
    if GEN.get("backend_override")
    else [
        spec.slug
        for spec in hub_models(
            list(
                dict.fromkeys(config["models"] + (config["sweeps"].get("models") or []))
            ),
            REGISTRY,
        )
    ]
)
MODELS_READY = f"{RESULTS}/models/ready.txt"

# models whose prompt cells of a (dataset, model, repeat) run as one job per step (rules
# generate_model, validate_model, evaluate_model): transformers (one load), replayed models
PER_MODEL_JOBS = [
    m
    for m in config["models"]
    if REGISTRY.get(m).one_job_per_model(
        GEN.get("backend_override"), GEN.get("load_once", True)
    )
]


def alternation(values):
    """Regex matching exactly ``values`` (one that matches nothing when empty)."""
    return "|".join(re.escape(v) for v in values) if values else "(?!x)x"


def generate_model_inputs(wildcards):
    """Inputs of the generate_model jobs: every cell's prompt, card, splits, registry."""
    return {
        "card": card_file(wildcards),
        "train": split_file("train").format(dataset=wildcards.dataset),
        "holdout": split_file("reference").format(dataset=wildcards.dataset),
        "registry": str(REGISTRY_FILE),
        **({"models_ready": MODELS_READY} if wildcards.model in HUB_MODELS else {}),
        "prompts": [
            f"{RESULTS}/prompts/{wildcards.dataset}/{p}.json" for p in config["prompts"]
        ],
    }


def generate_inputs(wildcards):
    inputs = {
        "card": card_file(wildcards),
        "train": split_file("train").format(dataset=wildcards.dataset),
        # baselines sample real rows from the reference part, never from the evaluation holdout
        "holdout": split_file("reference").format(dataset=wildcards.dataset),
        "registry": str(REGISTRY_FILE),
    }
    if wildcards.model in HUB_MODELS:
        inputs["models_ready"] = MODELS_READY
    if wildcards.prompt != BASELINE_PROMPT:
        inputs["prompt"] = (
            f"{RESULTS}/prompts/{wildcards.dataset}/{wildcards.prompt}.json"
        )
    if model_spec(wildcards).backend == "peer":
        inputs["peer_model"] = peer_model_file(wildcards)
        inputs.update(peer_env(wildcards))
    return inputs


def peer_env(wildcards):
    """The stamp of a peer's own environment (registry ``env``) and GReaT's base model folder
    (``base_model``: rule base_lm's for a registry slug), else nothing."""
    spec = model_spec(wildcards)
    inputs = {"env": env_stamp(spec.env)} if spec.env else {}
    if spec.base_model:
        inputs["base_model"] = base_model_folder(spec, REGISTRY, RESULTS)
    return inputs


def base_model_arg(wildcards, input):
    if "base_model" not in input.keys():
        return ""
    return f"--base-model {shlex.quote(input.base_model)}"


def peer_model_file(wildcards):
    """Fitted model a peer cell samples; a sample-size variant reuses its base dataset's."""
    dataset = wildcards.dataset
    variant = parse_variant(dataset)
    if variant is not None and variant.axis == "sample_size":
        dataset = variant.base
    return f"{RESULTS}/peers/{dataset}/{wildcards.model}/r{wildcards.rep}/model.pkl"


def peer_arg(wildcards, input):
    if "peer_model" not in input.keys():
        return ""
    return f"--peer-model {shlex.quote(input.peer_model)}"


def cell_file(step, ext, wildcards):
    """``results/<step>/<dataset>/<model>/<prompt>/r<rep>.<ext>`` of one cell."""
    w = wildcards
    return f"{RESULTS}/{step}/{w.dataset}/{w.model}/{w.prompt}/r{w.rep}.{ext}"


def per_model_outputs(step, ext):
    """The per-cell files a per-model job writes, one per prompt, in config order."""
    return [
        f"{RESULTS}/{step}/{{dataset}}/{{model}}/{p}/r{{rep}}.{ext}"
        for p in config["prompts"]
    ]


def per_model_inputs(cell_inputs, wildcards):
    """A per-model job's inputs from a cell's: each prompt cell's inputs, one list per name in
    config order (a file every cell shares stays one file)."""
    merged = {}
    for prompt in config["prompts"]:
        cell = SimpleNamespace(
            dataset=wildcards.dataset,
            model=wildcards.model,
            prompt=prompt,
            rep=wildcards.rep,
        )
        for name, path in cell_inputs(cell).items():
            merged.setdefault(name, []).append(path)
    return {k: v[0] if len(set(v)) == 1 else v for k, v in merged.items()}


def per_model(cell_inputs):
    """Input function of a per-model rule (see per_model_inputs)."""
    return lambda wildcards: per_model_inputs(cell_inputs, wildcards)


def quoted(files):
    """Shell words of one file, or of one file per cell (per-model rules)."""
    return " ".join(
        shlex.quote(f) for f in ([files] if isinstance(files, str) else files)
    )


def validate_inputs(wildcards):
    """Raw output, card, train split, and the prompt (its echoed rows are not records)."""
    inputs = {
        "raw": cell_file("raw", "txt", wildcards),
        "card": card_file(wildcards),
        "train": split_file("train").format(dataset=wildcards.dataset),
    }
    if wildcards.prompt != BASELINE_PROMPT:
        inputs["prompt"] = (
            f"{RESULTS}/prompts/{wildcards.dataset}/{wildcards.prompt}.json"
        )
    return inputs


PROTOCOL = config["evaluation"].get("protocol", "project")


def protocol_arg(wildcards):
    """validate: the paper protocol parses as the authors did (their model directory: Age cap)."""
    if PROTOCOL != "paper":
        return ""
    name = model_spec(wildcards).replay_name or wildcards.model
    return f"--protocol paper --source-model {shlex.quote(name)}"


def paper_evaluate_inputs(wildcards):
    """evaluate under the paper protocol: the raw output and the full real table."""
    if PROTOCOL != "paper":
        return {}
    return {"raw": cell_file("raw", "txt", wildcards), "real": data_file(wildcards)}


def paper_evaluate_args(wildcards, input):
    if PROTOCOL != "paper":
        return ""
    from synllm.protocol import age_capped

    cap = age_capped(wildcards.dataset, model_spec(wildcards).replay_name)
    return f"--raw {quoted(input.raw)} --real-table {quoted(input.real)}" + (
        " --age-cap" if cap else ""
    )


def prompt_arg(wildcards, input):
    return f"--prompt {quoted(input.prompt)}" if "prompt" in input.keys() else ""


def evaluate_prompt(wildcards):
    """The cell's prompt JSON (its real example rows are the seed-row attack's members)."""
    if wildcards.prompt == BASELINE_PROMPT:
        return {}
    return {"prompt": f"{RESULTS}/prompts/{wildcards.dataset}/{wildcards.prompt}.json"}


def evaluate_inputs(wildcards):
    """Validated table and report, card, splits, real-data fits, prompt, paper inputs."""
    return {
        "synthetic": cell_file("synthetic", "csv", wildcards),
        "report": cell_file("validation", "json", wildcards),
        "card": card_file(wildcards),
        "train": split_file("train").format(dataset=wildcards.dataset),
        "holdout": split_file("holdout").format(dataset=wildcards.dataset),
        "real_fits": f"{RESULTS}/real_fits/{wildcards.dataset}/r{wildcards.rep}.pkl",
        **evaluate_prompt(wildcards),
        **paper_evaluate_inputs(wildcards),
        **(
            {"anonymeter": cell_file("anonymeter", "json", wildcards)}
            if ANONYMETER["enabled"]
            else {}
        ),
    }


def anonymeter_arg(wildcards, input):
    if "anonymeter" not in input.keys():
        return ""
    return f"--anonymeter {quoted(input.anonymeter)}"


def env_stamp(name):
    return f"{RESULTS}/envs/{name}.json"


def prompt_json_arg(wildcards, input):
    return f"--prompt-json {quoted(input.prompt)}" if "prompt" in input.keys() else ""


def json_arg(section):
    return shlex.quote(json.dumps(config[section], sort_keys=True))


def cell_seed(wildcards):
    return names.cell_seed(config["seed"], wildcards.rep)


def cell_files(pattern):
    return [
        pattern.format(dataset=c.dataset, model=c.model, prompt=c.prompt, rep=c.rep)
        for c in CELLS
    ]


AGG = {
    part: [f"{RESULTS}/{p}" for p in paths]
    for part, paths in aggregate_outputs(config["datasets"], PROTOCOL).items()
}
# report captions of figures whose file stem differs from the caption's (per-dataset figures,
# and the leaderboard figure beside the leaderboard table's caption)
FIGURE_CAPTIONS = {
    "leaderboard": "leaderboard_figure",
    **{f"harmonic_heatmap_{d}": "harmonic_heatmap" for d in config["datasets"]},
    **{
        f"distributions_{d}_{w}": "distributions"
        for d in config["datasets"]
        for w in ("best", "worst")
    },
}


def figure_caption(path):
    """The caption file of a report figure (workflow/report/<name>.rst), None without one."""
    stem = Path(path).stem
    rst = BASE / "workflow" / "report" / f"{FIGURE_CAPTIONS.get(stem, stem)}.rst"
    return f"../report/{rst.name}" if rst.is_file() else None


def sweep_base_inputs(wildcards):
    base = parse_variant(wildcards.dataset).base
    return {
        "card": base_card_file(base),
        **{
            part: split_file(part).format(dataset=base)
            for part in ("train", "holdout", "reference")
        },
    }


def sweep_points_arg(wildcards):
    points = SWEEP_POINTS.get(wildcards.axis, [])
    cards = {p.dataset: dataset_card(p.dataset) for p in points}
    return shlex.quote(points_json(wildcards.axis, points, cards))


def sweep_metrics(wildcards):
    return [
        f"{RESULTS}/metrics/{c.path}.json" for c in SWEEP_CELLS.get(wildcards.axis, [])
    ]


def sweep_cards(wildcards):
    return sorted(
        {dataset_card(p.dataset) for p in SWEEP_POINTS.get(wildcards.axis, [])}
    )


def sweep_outputs(axis):
    """Sweep table and one figure per dataset of one axis (rule sweep_plots)."""
    return {
        "csv": f"{RESULTS}/tables/sweep_{axis}.csv",
        "figures": [
            f"{RESULTS}/figures/sweep_{axis}_{d}.png"
            for d in dict.fromkeys(p.base for p in SWEEP_POINTS[axis])
        ],
    }


def get_final_output():
    sweeps = [
        f
        for axis in SWEEP_POINTS
        for f in [sweep_outputs(axis)["csv"]] + sweep_outputs(axis)["figures"]
    ]
    return AGG["tables"] + AGG["extra"] + AGG["figures"] + sweeps

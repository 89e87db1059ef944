rule generate:
    input:
        unpack(generate_inputs),
    output:
        raw=f"{RESULTS}/raw/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.txt",
        meta=f"{RESULTS}/raw/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.meta.json",
    log:
        f"{RESULTS}/logs/generate/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.tsv"
    priority: 10
    conda:
        "../../envs/generate.yaml"
    threads: lambda wc: job_resources(wc)["threads"]
    resources:
        gpu=lambda wc: job_resources(wc)["gpu"],
        mem_mb=lambda wc, attempt: job_resources(wc, attempt)["mem_mb"],
        runtime=lambda wc, attempt: job_resources(wc, attempt)["runtime"],
        attempt=lambda wc, attempt: attempt,
    params:
        prompt=prompt_arg,
        peer=peer_arg,
        n=lambda wc: n_records(config, wc.dataset),
        seed=cell_seed,
        settings=json_arg("generation"),
    shell:
        "synllm generate --model {wildcards.model} --registry {input.registry:q} {params.prompt}"
        " --card {input.card:q} --train {input.train:q} --holdout {input.holdout:q}"
        " --n-records {params.n} --seed {params.seed} --settings {params.settings}"
        " --attempt {resources.attempt} {params.peer}"
        " --out-raw {output.raw:q} --out-meta {output.meta:q} > {log:q} 2>&1"


# One job and one model load for the cells of every prompt of a (dataset, model, repeat):
# models of PER_MODEL_JOBS (transformers, replayed outputs), base datasets; docs/architecture.md.
rule generate_model:
    input:
        unpack(generate_model_inputs),
    output:
        raw=[
            f"{RESULTS}/raw/{{dataset}}/{{model}}/{p}/r{{rep}}.txt"
            for p in config["prompts"]
        ],
        meta=[
            f"{RESULTS}/raw/{{dataset}}/{{model}}/{p}/r{{rep}}.meta.json"
            for p in config["prompts"]
        ],
    log:
        f"{RESULTS}/logs/generate_model/{{dataset}}/{{model}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate_model/{{dataset}}/{{model}}/r{{rep}}.tsv"
    wildcard_constraints:
        model=alternation(PER_MODEL_JOBS),
        dataset=alternation(config["datasets"]),
    priority: 10
    conda:
        "../../envs/generate.yaml"
    threads: lambda wc: job_resources(wc)["threads"]
    resources:
        gpu=lambda wc: job_resources(wc)["gpu"],
        mem_mb=lambda wc, attempt: job_resources(wc, attempt)["mem_mb"],
        runtime=lambda wc, attempt: job_resources(
            wc, attempt, cells=len(config["prompts"])
        )["runtime"],
        attempt=lambda wc, attempt: attempt,
    params:
        n=lambda wc: n_records(config, wc.dataset),
        seed=cell_seed,
        settings=json_arg("generation"),
        resume=f"{RESULTS}/raw/.resume/{{dataset}}/{{model}}/r{{rep}}",
    shell:
        "synllm generate --model {wildcards.model} --registry {input.registry:q}"
        " --prompt {input.prompts:q} --card {input.card:q} --train {input.train:q}"
        " --holdout {input.holdout:q} --n-records {params.n} --seed {params.seed}"
        " --settings {params.settings} --attempt {resources.attempt}"
        " --out-raw {output.raw:q} --out-meta {output.meta:q}"
        " --resume-dir {params.resume:q} > {log:q} 2>&1"


ruleorder: generate_model > generate


# Every Hugging Face model of the run is in the local cache before a generate job starts:
# offline (the default for jobs) it only looks, with network it downloads what is missing.
rule check_models:
    input:
        registry=str(REGISTRY_FILE),
    output:
        MODELS_READY,
    log:
        f"{RESULTS}/logs/check_models.log",
    localrule: True
    conda:
        "../../envs/generate.yaml"
    params:
        models=" ".join(HUB_MODELS),
    shell:
        "synllm fetch-models --registry {input.registry:q} --models {params.models}"
        " --out {output:q} > {log:q} 2>&1"


# Target of its own, never part of the default run: `snakemake fetch_models` on a machine
# with network downloads every Hugging Face model of the config into the HF cache.
rule fetch_models:
    input:
        registry=str(REGISTRY_FILE),
    output:
        f"{RESULTS}/models/fetched.txt",
    log:
        f"{RESULTS}/logs/fetch_models.log",
    localrule: True
    conda:
        "../../envs/generate.yaml"
    params:
        models=" ".join(HUB_MODELS),
    shell:
        "HF_HUB_OFFLINE=0 synllm fetch-models --registry {input.registry:q}"
        " --models {params.models} --out {output:q} > {log:q} 2>&1"

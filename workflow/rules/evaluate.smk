rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=f"{RESULTS}/metrics/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.json",
        fairness=f"{RESULTS}/fairness/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.csv",
    log:
        f"{RESULTS}/logs/evaluate/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        seed=cell_seed,
        settings=json_arg("evaluation"),
        prompt=prompt_json_arg,
        paper=paper_evaluate_args,
        anonymeter=anonymeter_arg,
    shell:
        "synllm evaluate --card {input.card:q} --synthetic {input.synthetic:q}"
        " --train {input.train:q} --holdout {input.holdout:q} --validation {input.report:q}"
        " {params.prompt}"
        " --seed {params.seed} --settings {params.settings} --out {output.metrics:q}"
        " --out-fairness {output.fairness:q} --real-fits {input.real_fits:q} {params.paper}"
        " {params.anonymeter}"
        " > {log:q} 2>&1"


# The prompt cells of a (dataset, model, repeat) in one job and one Python start-up (models
# of PER_MODEL_JOBS: transformers, replayed outputs); same files and metrics as rule evaluate.
rule evaluate_model:
    input:
        unpack(per_model(evaluate_inputs)),
    output:
        metrics=per_model_outputs("metrics", "json"),
        fairness=per_model_outputs("fairness", "csv"),
    log:
        f"{RESULTS}/logs/evaluate_model/{{dataset}}/{{model}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_model/{{dataset}}/{{model}}/r{{rep}}.tsv"
    wildcard_constraints:
        model=alternation(PER_MODEL_JOBS),
        dataset=alternation(config["datasets"]),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30 * len(config["prompts"]),
    params:
        seed=cell_seed,
        settings=json_arg("evaluation"),
        prompt=prompt_json_arg,
        paper=paper_evaluate_args,
        anonymeter=anonymeter_arg,
    shell:
        "synllm evaluate --card {input.card:q} --synthetic {input.synthetic:q}"
        " --train {input.train:q} --holdout {input.holdout:q} --validation {input.report:q}"
        " {params.prompt}"
        " --seed {params.seed} --settings {params.settings} --out {output.metrics:q}"
        " --out-fairness {output.fairness:q} --real-fits {input.real_fits:q} {params.paper}"
        " {params.anonymeter}"
        " > {log:q} 2>&1"


ruleorder: evaluate_model > evaluate


rule real_fits:
    input:
        card=card_file,
        train=rules.split.output.train,
        holdout=rules.split.output.holdout,
    output:
        f"{RESULTS}/real_fits/{{dataset}}/r{{rep}}.pkl",
    log:
        f"{RESULTS}/logs/real_fits/{{dataset}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/real_fits/{{dataset}}/r{{rep}}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        seed=cell_seed,
        settings=json_arg("evaluation"),
    shell:
        "synllm real-fits --card {input.card:q} --train {input.train:q}"
        " --holdout {input.holdout:q} --seed {params.seed} --settings {params.settings}"
        " --out {output:q} > {log:q} 2>&1"

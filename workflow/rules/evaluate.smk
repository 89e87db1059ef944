rule evaluate:
    input:
        unpack(evaluate_extra_inputs),
        synthetic=rules.validate.output.csv,
        report=rules.validate.output.report,
        card=card_file,
        train=rules.split.output.train,
        holdout=rules.split.output.holdout,
        real_fits=f"{RESULTS}/real_fits/{{dataset}}/r{{rep}}.pkl",
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
    shell:
        "synllm evaluate --card {input.card:q} --synthetic {input.synthetic:q}"
        " --train {input.train:q} --holdout {input.holdout:q} --validation {input.report:q}"
        " {params.prompt}"
        " --seed {params.seed} --settings {params.settings} --out {output.metrics:q}"
        " --out-fairness {output.fairness:q} --real-fits {input.real_fits:q} {params.paper}"
        " > {log:q} 2>&1"


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

rule evaluate:
    input:
        unpack(paper_evaluate_inputs),
        synthetic=rules.validate.output.csv,
        report=rules.validate.output.report,
        card=card_file,
        train=rules.split.output.train,
        holdout=rules.split.output.holdout,
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
        paper=paper_evaluate_args,
    shell:
        "synllm evaluate --card {input.card:q} --synthetic {input.synthetic:q}"
        " --train {input.train:q} --holdout {input.holdout:q} --validation {input.report:q}"
        " --seed {params.seed} --settings {params.settings} --out {output.metrics:q}"
        " --out-fairness {output.fairness:q} {params.paper} > {log:q} 2>&1"

rule validate:
    input:
        unpack(validate_inputs),
    output:
        csv=f"{RESULTS}/synthetic/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.csv",
        report=f"{RESULTS}/validation/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.json",
    log:
        f"{RESULTS}/logs/validate/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/validate/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.tsv"
    conda:
        "../../envs/core.yaml"
    params:
        prompt=prompt_arg,
        rules=config["validation"]["clinical_rules"],
        n=lambda wc: n_records(config, wc.dataset),
        protocol=protocol_arg,
    shell:
        "synllm validate --card {input.card:q} --raw {input.raw:q} {params.prompt}"
        " {params.protocol}"
        " --train {input.train:q} --clinical-rules {params.rules} --n-records {params.n}"
        " --out-csv {output.csv:q} --out-report {output.report:q} > {log:q} 2>&1"


# The prompt cells of a (dataset, model, repeat) in one job (PER_MODEL_JOBS; see evaluate_model).
rule validate_model:
    input:
        unpack(per_model(validate_inputs)),
    output:
        csv=per_model_outputs("synthetic", "csv"),
        report=per_model_outputs("validation", "json"),
    log:
        f"{RESULTS}/logs/validate_model/{{dataset}}/{{model}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/validate_model/{{dataset}}/{{model}}/r{{rep}}.tsv"
    wildcard_constraints:
        model=alternation(PER_MODEL_JOBS),
        dataset=alternation(config["datasets"]),
    conda:
        "../../envs/core.yaml"
    params:
        prompt=prompt_arg,
        rules=config["validation"]["clinical_rules"],
        n=lambda wc: n_records(config, wc.dataset),
        protocol=protocol_arg,
    shell:
        "synllm validate --card {input.card:q} --raw {input.raw:q} {params.prompt}"
        " {params.protocol}"
        " --train {input.train:q} --clinical-rules {params.rules} --n-records {params.n}"
        " --out-csv {output.csv:q} --out-report {output.report:q} > {log:q} 2>&1"


ruleorder: validate_model > validate

rule split:
    input:
        card=card_file,
        data=data_file,
    output:
        train=f"{RESULTS}/data/{{dataset}}/train.parquet",
        holdout=f"{RESULTS}/data/{{dataset}}/holdout.parquet",
        reference=f"{RESULTS}/data/{{dataset}}/reference.parquet",
    log:
        f"{RESULTS}/logs/split/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/split/{{dataset}}.tsv"
    # upstream of the generate jobs, like rule prompt
    priority: 10
    conda:
        "../../envs/core.yaml"
    params:
        data_dir=str(DATA_DIR),
        fraction=config["holdout_fraction"],
        ref_fraction=config["reference_fraction"],
        seed=config["seed"],
        verify="" if config["verify_checksums"] else "--no-verify",
    shell:
        "synllm split --card {input.card:q} --data-dir {params.data_dir:q}"
        " --holdout-fraction {params.fraction} --seed {params.seed} {params.verify}"
        " --reference-fraction {params.ref_fraction} --reference {output.reference:q}"
        " --train {output.train:q} --holdout {output.holdout:q} > {log:q} 2>&1"


rule profile:
    input:
        card=card_file,
        train=rules.split.output.train,
    output:
        f"{RESULTS}/profile/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/profile/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/profile/{{dataset}}.tsv"
    # upstream of the generate jobs, like rule prompt
    priority: 10
    conda:
        "../../envs/core.yaml"
    params:
        min_count=config["profile"]["min_category_count"],
        corr=config["profile"]["corr_threshold"],
    shell:
        "synllm profile --card {input.card:q} --train {input.train:q} --out {output:q}"
        " --min-category-count {params.min_count} --corr-threshold {params.corr} > {log:q} 2>&1"

# Pinned environments of tools whose pins clash with ours (envs/<env>.txt; synllm.envs): built
# once into a folder outside results/ named by the requirements' hash, reused while they do not
# change; the stamp below is what the jobs that use one take as input. On the head node: it
# needs the package index, which compute nodes may not reach.
rule build_env:
    input:
        ENVS_DIR / "{env}.txt",
    output:
        f"{RESULTS}/envs/{{env}}.json",
    log:
        f"{RESULTS}/logs/build_env/{{env}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_env/{{env}}.tsv"
    localrule: True
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        runtime=60,
    params:
        envs_dir=lambda wc, input: Path(input[0]).parent,
    shell:
        "synllm envs build {wildcards.env} --envs-dir {params.envs_dir:q} --stamp {output:q}"
        " > {log:q} 2>&1"


# Anonymeter's attacks on one cell (train = the patients it attacks, holdout = the control);
# evaluate carries the result into the cell's metrics file (privacy.anonymeter).
rule anonymeter:
    input:
        synthetic=f"{RESULTS}/synthetic/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.csv",
        card=card_file,
        train=split_file("train"),
        holdout=split_file("holdout"),
        env=env_stamp("anonymeter"),
    output:
        f"{RESULTS}/anonymeter/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.json",
    log:
        f"{RESULTS}/logs/anonymeter/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/anonymeter/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        seed=cell_seed,
        n_attacks=ANONYMETER["n_attacks"],
    shell:
        "synllm anonymeter --card {input.card:q} --synthetic {input.synthetic:q}"
        " --train {input.train:q} --holdout {input.holdout:q} --seed {params.seed}"
        " --n-attacks {params.n_attacks} --env-stamp {input.env:q} --out {output:q}"
        " > {log:q} 2>&1"

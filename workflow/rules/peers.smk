# Peer generators (backend peer): one fitted model per dataset x generator x rep, reused by
# every cell that samples from it (sample-size sweep variants sample the base dataset's model).
rule train_peer:
    input:
        unpack(peer_env),
        card=card_file,
        train=split_file("train"),
        registry=str(REGISTRY_FILE),
    output:
        model=f"{RESULTS}/peers/{{dataset}}/{{model}}/r{{rep}}/model.pkl",
        info=f"{RESULTS}/peers/{{dataset}}/{{model}}/r{{rep}}/train.json",
    log:
        f"{RESULTS}/logs/train_peer/{{dataset}}/{{model}}/r{{rep}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_peer/{{dataset}}/{{model}}/r{{rep}}.tsv"
    priority: 20
    conda:
        "../../envs/peers.yaml"
    threads: lambda wc: model_spec(wc).threads
    resources:
        gpu=lambda wc: 1 if PEER_BUDGET == "gpu" else 0,
        mem_mb=lambda wc, attempt: model_spec(wc).mem_mb * attempt,
        runtime=lambda wc, attempt: model_spec(wc).runtime * attempt,
    params:
        seed=cell_seed,
        budget=PEER_BUDGET,
        base=base_model_arg,
    shell:
        "synllm train-peer --model {wildcards.model} --registry {input.registry:q}"
        " --card {input.card:q} --train {input.train:q} --seed {params.seed}"
        " --budget {params.budget} --threads {threads} {params.base}"
        " --out-model {output.model:q} --out-info {output.info:q} > {log:q} 2>&1"


# GReaT's base model (registry base_model naming a registry slug): its GGUF as a transformers
# model folder, written once and shared by every dataset's training (synllm.generate.base_lm).
rule base_lm:
    input:
        registry=str(REGISTRY_FILE),
    output:
        directory(f"{RESULTS}/base_lm/{{base}}"),
    log:
        f"{RESULTS}/logs/base_lm/{{base}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/base_lm/{{base}}.tsv"
    conda:
        "../../envs/peers.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "synllm base-lm --model {wildcards.base} --registry {input.registry:q} --out {output:q}"
        " > {log:q} 2>&1"

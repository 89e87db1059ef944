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
    # replay reads a text file: no model, so none of the registry's threads/memory/runtime
    threads: lambda wc: 1 if effective_backend(wc) == "replay" else model_spec(wc).threads
    resources:
        gpu=lambda wc: 1 if uses_gpu(wc) else 0,
        mem_mb=lambda wc, attempt: (
            1000 if effective_backend(wc) == "replay" else model_spec(wc).mem_mb
        )
        * attempt,
        runtime=lambda wc, attempt: (
            5 if effective_backend(wc) == "replay" else model_spec(wc).runtime
        )
        * attempt,
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

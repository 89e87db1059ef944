rule prompt:
    input:
        card=card_file,
        profile=rules.profile.output[0],
        train=rules.split.output.train,
        templates=str(PROMPTS_DIR),
    output:
        json=f"{RESULTS}/prompts/{{dataset}}/{{prompt}}.json",
        txt=f"{RESULTS}/prompts/{{dataset}}/{{prompt}}.txt",
    log:
        f"{RESULTS}/logs/prompt/{{dataset}}/{{prompt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prompt/{{dataset}}/{{prompt}}.tsv"
    # inputs of the generate jobs (priority 10): at 0 Snakemake ran evaluates first and left
    # one LLM cell to run alone at the end of the grid
    priority: 10
    conda:
        "../../envs/core.yaml"
    params:
        k=GEN["batch_size"],
        n_seed=config["prompt"]["n_seed_rows"],
        seed=config["seed"],
        # replayed outputs answered the authors' prompts: our sampled rows were never shown
        replayed="--replayed" if GEN.get("backend_override") == "replay" else "",
    shell:
        "synllm prompt --card {input.card:q} --profile {input.profile:q} --train {input.train:q}"
        " --style {wildcards.prompt} --batch-records {params.k} --n-seed-rows {params.n_seed}"
        " --seed {params.seed} --templates {input.templates:q} {params.replayed}"
        " --out-json {output.json:q} --out-txt {output.txt:q} > {log:q} 2>&1"

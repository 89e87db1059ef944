rule aggregate:
    input:
        metrics=cell_files(
            f"{RESULTS}/metrics/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.json"
        ),
        meta=cell_files(
            f"{RESULTS}/raw/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.meta.json"
        ),
        validation=cell_files(
            f"{RESULTS}/validation/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.json"
        ),
        synthetic=cell_files(
            f"{RESULTS}/synthetic/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.csv"
        ),
        fairness=cell_files(
            f"{RESULTS}/fairness/{{dataset}}/{{model}}/{{prompt}}/r{{rep}}.csv"
        ),
        train=expand(
            f"{RESULTS}/data/{{dataset}}/train.parquet", dataset=config["datasets"]
        ),
    output:
        tables=[
            report(
                f,
                caption=f"../report/{Path(f).stem}.rst",
                category="Tables",
            )
            for f in AGG["tables"]
        ],
        extra=[report(f, category="Tables") for f in AGG["extra"]],
        figures=[
            report(f, caption=figure_caption(f), category="Figures")
            for f in AGG["figures"]
        ],
        lists=multiext(
            f"{RESULTS}/tables/inputs",
            ".metrics.txt",
            ".meta.txt",
            ".validation.txt",
            ".fairness.txt",
        ),
    log:
        f"{RESULTS}/logs/aggregate/aggregate.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate/aggregate.tsv"
    conda:
        "../../envs/core.yaml"
    # the figures are drawn in parallel processes; nothing else is left to run by then
    threads: 2
    params:
        cards_dir=str(CARDS_DIR),
        paper_dir=str(BASE / "resources" / "paper"),
        registry=str(REGISTRY_FILE),
        normalisation=config["scores"]["normalisation"],
        # results/ (the parent of the tables folder): synthetic/, data/, figures/ live there
        results=lambda wc, output: os.path.dirname(os.path.dirname(output.lists[0])),
        protocol=f"--protocol {PROTOCOL}",
    shell:
        "(printf '%s\\n' {input.metrics:q} > {output.lists[0]:q}"
        " && printf '%s\\n' {input.meta:q} > {output.lists[1]:q}"
        " && printf '%s\\n' {input.validation:q} > {output.lists[2]:q}"
        " && printf '%s\\n' {input.fairness:q} > {output.lists[3]:q}"
        " && synllm aggregate --metrics-list {output.lists[0]:q} --meta-list {output.lists[1]:q}"
        " --validation-list {output.lists[2]:q} --fairness-list {output.lists[3]:q}"
        " --cards-dir {params.cards_dir:q}"
        " --registry {params.registry:q} --paper-dir {params.paper_dir:q} {params.protocol}"
        " --normalisation {params.normalisation}"
        " --synthetic-dir {params.results}/synthetic --train-dir {params.results}/data"
        " --out-dir {params.results}/tables --figures-dir {params.results}/figures"
        " --workers {threads})"
        " > {log:q} 2>&1"

# Sweeps (config section `sweeps`): feature count and sample size as axes of the grid.
# Variant datasets <dataset>~f<k> / <dataset>~n<N> get a derived card and split here; the
# other rules run on them unchanged. Logic: src/synllm/sweeps.py.


# a variant's split comes from its base split, never from the raw table
ruleorder: sweep_card > split


rule sweep_card:
    input:
        unpack(sweep_base_inputs),
    output:
        card=f"{RESULTS}/cards/{{dataset}}.yaml",
        train=f"{RESULTS}/data/{{dataset}}/train.parquet",
        holdout=f"{RESULTS}/data/{{dataset}}/holdout.parquet",
        reference=f"{RESULTS}/data/{{dataset}}/reference.parquet",
    log:
        f"{RESULTS}/logs/sweep_card/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweep_card/{{dataset}}.tsv"
    wildcard_constraints:
        dataset="|".join(re.escape(v) for v in VARIANTS) or "(?!)",
    conda:
        "../../envs/core.yaml"
    params:
        seed=config["seed"],
    shell:
        "synllm sweep-card --card {input.card:q} --variant {wildcards.dataset:q}"
        " --seed {params.seed} --train {input.train:q} --holdout {input.holdout:q}"
        " --reference {input.reference:q} --out-card {output.card:q}"
        " --out-train {output.train:q} --out-holdout {output.holdout:q}"
        " --out-reference {output.reference:q} > {log:q} 2>&1"


rule sweep_plots:
    input:
        metrics=sweep_metrics,
        cards=sweep_cards,
    output:
        csv=report(
            f"{RESULTS}/tables/sweep_{{axis}}.csv",
            caption="../report/sweep.rst",
            category="Sweeps",
        ),
        figures=[
            report(
                f"{RESULTS}/figures/sweep_{{axis}}_{d}.png",
                caption="../report/sweep.rst",
                category="Sweeps",
            )
            for d in config["datasets"]
        ],
        inputs=f"{RESULTS}/tables/sweep_{{axis}}.inputs.txt",
    log:
        f"{RESULTS}/logs/sweep_plots/{{axis}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweep_plots/{{axis}}.tsv"
    wildcard_constraints:
        axis="features|sample_size",
    conda:
        "../../envs/core.yaml"
    params:
        points=sweep_points_arg,
        figures_dir=lambda wc, output: os.path.dirname(output.figures[0]),
    shell:
        "(printf '%s\\n' {input.metrics:q} > {output.inputs:q}"
        " && synllm sweep-plots --points {params.points} --metrics-list {output.inputs:q}"
        " --out-csv {output.csv:q} --figures-dir {params.figures_dir:q}) > {log:q} 2>&1"

# synllm: LLMs as generators of synthetic clinical tabular data (SynLLM grid).
# Usage: snakemake --cores 2            (default grid, embedded CPU model)
#        snakemake --cores 8 --resources gpu=1 --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


if not config:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# the report opens on the leaderboard (workflow/report/workflow.rst includes it)
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/prompt.smk"
include: "workflow/rules/peers.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/envs.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/sweep.smk"


rule all:
    default_target: True
    input:
        get_final_output(),

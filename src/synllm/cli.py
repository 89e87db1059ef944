"""``synllm`` command line: one sub-command per workflow step.

Each sub-command lives in its own module and is imported lazily, so ``synllm validate``
never pays for importing torch. A :class:`~synllm.errors.SynllmError` becomes one line on
stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import sys

# sub-command -> (module, help); "module:function" when the entry point is not ``cli``
COMMANDS: dict[str, tuple[str, str]] = {
    "card": (
        "synllm.carddraft",
        "draft a dataset card from a table: synllm card draft DATA.csv --target COL",
    ),
    "split": ("synllm.split", "verify a dataset and write its stratified train/holdout split"),
    "profile": ("synllm.profile", "schema + statistics of a train split, as JSON"),
    "prompt": ("synllm.prompts", "render one prompt style for one dataset"),
    "generate": ("synllm.generate.cli", "run one model on one prompt, write raw text + meta"),
    "train-peer": (
        "synllm.generate.peers:cli_train",
        "fit one peer synthesizer (CTGAN, TVAE, GReaT, ...) on a train split",
    ),
    "base-lm": (
        "synllm.generate.base_lm",
        "write a registry model's GGUF as a transformers model folder (GReaT's base)",
    ),
    "validate": ("synllm.validate", "parse raw model output into typed records + report"),
    "evaluate": ("synllm.evaluate", "score one synthetic table against the real data"),
    "anonymeter": (
        "synllm.attacks",
        "Anonymeter's singling-out, linkability, inference risks of one cell (own env)",
    ),
    "envs": ("synllm.envs", "build the pinned environments of envs/<name>.txt"),
    "real-fits": ("synllm.evaluate:cli_real_fits", "fits on real data shared by a dataset's cells"),
    "aggregate": ("synllm.aggregate.cli", "build Tables IV-VI, figures and score definitions"),
    "fetch-models": ("synllm.fetch", "download a config's Hugging Face models into the HF cache"),
    "check-config": ("synllm.config", "validate a workflow config file and print the grid size"),
    "sweep-card": (
        "synllm.sweeps.card",
        "card and split of one sweep variant (features / sample size)",
    ),
    "sweep-plots": ("synllm.sweeps.plots", "quality and utility vs a sweep axis: CSV and figures"),
}


def _usage() -> str:
    lines = ["usage: synllm <command> [options]", "", "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from synllm.errors import SynllmError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from synllm import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"synllm: error: unknown command {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    modname, _, func = COMMANDS[name][0].partition(":")
    entry = getattr(importlib.import_module(modname), func or "cli")
    try:
        return int(entry(rest) or 0)
    except SynllmError as err:
        print(f"synllm {name}: error: {err}", file=sys.stderr)
        return 2

"""``synllm aggregate``: all cells' metrics -> the paper's Tables IV, V, VI, figures and the
comparison with the published Table IV. The files it writes are declared once, in
:func:`synllm.aggregate.outputs`; scoring rules: :mod:`synllm.aggregate.scores` (also written
to ``score_definitions.md``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from synllm.aggregate import (
    figures,
    leaderboard,
    paper,
    ranking,
    render,
    reproduction,
    scores,
    tables,
    uncertainty,
)
from synllm.aggregate.load import (
    KEY,
    META_FIELDS,
    VALIDATION_FIELDS,
    gather_paths,
    load_fairness,
    load_metrics,
    load_side_files,
)
from synllm.errors import SynllmError
from synllm.protocol import PROTOCOLS

CLASSIFIERS = ("mean", "xgboost", "random_forest", "decision_tree")


def _write_table(out_dir: Path, stem: str, frame: pd.DataFrame, layout: render.Layout) -> None:
    frame.to_csv(out_dir / f"{stem}.csv", index=False)
    (out_dir / f"{stem}.md").write_text(render.to_markdown(layout))
    (out_dir / f"{stem}.tex").write_text(render.to_latex(layout))


def _write_leaderboard(out_dir: Path, board: dict, names: dict[str, str]) -> None:
    """``leaderboard.{csv,md,tex}``: the overall ranking, then the per-dataset scores."""
    parts = leaderboard.layouts(board, names)
    leaderboard.frame(board).to_csv(out_dir / "leaderboard.csv", index=False)
    (out_dir / "leaderboard.md").write_text("\n".join(render.to_markdown(t) for t in parts))
    (out_dir / "leaderboard.tex").write_text("\n".join(render.to_latex(t) for t in parts))


def _write_report_page(
    out_dir: Path, figures_dir: Path | None, board: dict, names: dict[str, str], facts: str
) -> None:
    """``leaderboard_report.rst``, the report's landing page (after the figures exist;
    ``figures_dir`` None: without figures)."""
    if figures_dir is None:
        shown = []
    else:
        shown = [
            (
                figures_dir / "leaderboard.png",
                f"Leaderboard. {facts} Left: Harmonic (2QP / (Q + P)) of each entry per dataset with "
                "its 95% interval; right: mean rank over the (dataset, repeat) blocks, the bar at the "
                "top is the Nemenyi critical difference.",
            ),
            (
                figures_dir / "quality_vs_privacy.png",
                f"Quality vs privacy per dataset. {facts} Marker = generator kind, colour = "
                "generator; LLM points are named by prompt style, every other point by generator.",
            ),
        ]
    text = leaderboard.report_rst(leaderboard.layouts(board, names), shown, facts)
    (out_dir / "leaderboard_report.rst").write_text(text)


def _distribution_figure(
    cell: pd.DataFrame,
    dataset: str,
    which: str,
    cards_dir,
    synthetic_dir,
    train_dir,
    fig_dir: Path,
) -> Path:
    """The ``which`` ("best" / "worst") cell by Harmonic (one repeat) of ``dataset``: real vs
    synthetic overlays, or a figure saying why there are none."""
    from synllm.cards import find_card
    from synllm.split import read_split

    ok = cell[(cell["dataset"] == dataset) & cell["harmonic"].notna()].sort_values(KEY)
    path = fig_dir / f"distributions_{dataset}_{which}.png"
    title = f"Real vs synthetic, {dataset}, {which} cell by Harmonic"
    if ok.empty:
        return figures._message(path, title, "no valid cell for this dataset")
    i = ok["harmonic"].idxmax() if which == "best" else ok["harmonic"].idxmin()
    r = ok.loc[i]
    if synthetic_dir is None or train_dir is None:
        return figures._message(path, title, "--synthetic-dir / --train-dir not given")
    spath = Path(synthetic_dir) / dataset / r["model"] / r["prompt"] / f"r{int(r['rep'])}.csv"
    tpath = Path(train_dir) / dataset / "train.parquet"
    missing = [str(p) for p in (spath, tpath) if not p.is_file()]
    if missing:
        print(
            f"synllm aggregate: warning: {', '.join(missing)} not found; {path.name} shows a note",
            file=sys.stderr,
        )
        return figures._message(path, title, "file not found:\n" + "\n".join(missing))
    card = find_card(dataset, cards_dir)
    real = read_split(tpath, card)
    synth = pd.read_csv(spath)
    head = (
        f"{dataset}: {which} cell {r['model']} / {r['prompt']} / r{int(r['rep'])} "
        f"(Harmonic {r['harmonic']:.2f}, Q {r['quality']:.2f}, P {r['privacy']:.2f}; "
        f"{len(synth)} synthetic vs {len(real)} real train rows)"
    )
    return figures.distributions(card, real, synth, head, path)


def _draw(tasks: list[tuple], workers: int) -> list[Path]:
    """Run ``(function, args)`` figure tasks; with ``workers`` > 1 in that many forked
    processes (each figure is its own file and drawing them is most of this step's time)."""
    if workers <= 1 or len(tasks) < 2:
        return [f(*args) for f, args in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx) as pool:
        futures = [pool.submit(f, *args) for f, args in tasks]
        return [fut.result() for fut in futures]


def aggregate(
    metrics_paths: list[Path],
    meta_paths: list[Path],
    validation_paths: list[Path],
    cards_dir: str | Path,
    out_dir: str | Path,
    figures_dir: str | Path,
    paper_dir: str | Path | None = None,
    synthetic_dir: str | Path | None = None,
    train_dir: str | Path | None = None,
    registry: str | Path | None = None,
    classifier: str = "mean",
    datasets: list[str] | None = None,
    make_figures: bool = True,
    fairness_paths: list[Path] | None = None,
    normalisation: str = "run",
    workers: int = 1,
) -> dict[str, pd.DataFrame]:
    """Run the whole aggregation; returns the main frames (for tests and notebooks).

    ``normalisation``: ``run`` (min-max over the run's cells, the paper's) or ``anchored``
    (real holdout = 1, declared worst reference = 0; :mod:`synllm.aggregate.scores`).

    ``fairness_paths``: per-cell fairness CSVs; without them ``table_fairness`` is still
    written, with "–" for every cell.

    ``workers``: processes that draw the figures (the job's threads).
    """
    if not metrics_paths:
        raise SynllmError("aggregate: no metrics files given (--metrics-list / --metrics)")
    if classifier not in CLASSIFIERS:
        raise SynllmError(
            f"--utility-classifier must be one of {list(CLASSIFIERS)}, got {classifier!r}"
        )
    out_dir, figures_dir = Path(out_dir), Path(figures_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures_dir.mkdir(parents=True, exist_ok=True)

    cells, metrics, raw = load_metrics(metrics_paths)
    meta = load_side_files(meta_paths, "raw meta", META_FIELDS)
    validation = load_side_files(validation_paths, "validation report", VALIDATION_FIELDS)
    kinds = scores.model_kinds(cells, meta)
    names = paper.load_paper_names(paper_dir, registry)

    if normalisation == "anchored":
        ok_cells = cells.loc[cells["status"] == "ok", ["dataset", "model"]]
        have = set(map(tuple, ok_cells.to_numpy().tolist()))
        for ds in sorted(set(cells["dataset"])):
            missing = [m for m in scores.ANCHOR_MODELS if (ds, m) not in have]
            if missing:
                raise SynllmError(
                    f"aggregate --normalisation anchored: dataset {ds!r} has no ok cell "
                    f"of the anchor baseline(s) {missing}"
                )
    norm = scores.normalise(metrics, normalisation)
    util = scores.utility_long(metrics, raw)
    util_cells = scores.utility_per_cell(util, classifier)
    cell = scores.cell_scores(cells, norm, util_cells, normalisation)
    cell = cell.merge(cells[KEY + ["n_synthetic", "reason"]], on=KEY, how="left")
    cell = cell.merge(validation, on=KEY, how="left").merge(meta, on=KEY, how="left")
    reps = uncertainty.replicate_long(raw)
    point = cell[KEY + ["quality", "privacy", "harmonic"]]
    if "tstr_auc" in util_cells:
        point = point.merge(util_cells[KEY + ["tstr_auc"]], on=KEY, how="left")
    intervals = uncertainty.cell_intervals(
        uncertainty.replicate_scores(metrics, reps, cells, normalisation), point
    )
    boot = len(intervals) > 0
    if boot:
        cell = cell.merge(intervals, on=KEY, how="left")
    cell.to_csv(out_dir / "cell_scores.csv", index=False)
    summary = scores.summarise_cells(cell)
    # without replicates the summary file keeps its old columns (interval columns come after)
    if not boot:
        summary.to_csv(out_dir / "scores_summary.csv", index=False)
    tstr = util_cells[KEY + ["tstr_auc"]] if "tstr_auc" in util_cells else util_cells[KEY]
    summary = uncertainty.summary_intervals(summary, cell, intervals, tstr)
    if boot:
        summary.to_csv(out_dir / "scores_summary.csv", index=False)

    t4, l4 = tables.table4(summary, kinds, names, normalisation)
    _write_table(out_dir, "table4_quality_privacy", t4, l4)
    t5, l5 = tables.table5(
        scores.utility_by_model(util_cells),
        kinds,
        names,
        classifier,
        scores.reference_utility(util, classifier),
    )
    _write_table(out_dir, "table5_ml_utility", t5, l5)
    eff = scores.efficiency_table(cell, meta, kinds, validation)
    t6, l6 = tables.table6(eff, names)
    _write_table(out_dir, "table6_efficiency", t6, l6)
    tp, lp = tables.table_privacy(metrics, raw, summary, kinds, names)
    _write_table(out_dir, "table_privacy", tp, lp)
    fair = load_fairness(list(fairness_paths or []))
    failed_cells = set(map(tuple, cells.loc[cells["status"] != "ok", KEY].to_numpy().tolist()))
    tf, lf = tables.table_fairness(fair, summary, kinds, names, failed_cells)
    _write_table(out_dir, "table_fairness", tf, lf)

    ti, li = tables.table_intervals(summary, kinds, names)
    _write_table(out_dir, "table_intervals", ti, li)
    rank, rank_res, _ = ranking.ranking_table(summary, kinds)
    tr, lr = tables.table_ranking(rank, rank_res, kinds, names)
    _write_table(out_dir, "table_ranking", tr, lr)
    board = leaderboard.build(cell, summary, kinds)
    _write_leaderboard(out_dir, board, names)

    defs = tables.score_definitions(metrics)
    defs.to_csv(out_dir / "score_definitions.csv", index=False)
    (out_dir / "score_definitions.md").write_text(
        tables.definitions_markdown(defs, scores.__doc__, classifier)
    )

    cmp = pd.DataFrame(columns=["dataset", "prompt", "n", "rho", "p", "models"])
    if paper_dir is not None:
        published = paper.load_paper_table4(paper_dir)
        # the printed "Harmonic" is (Q + P) / 2: compare like with like
        qp = summary.assign(mean_qp=(summary["quality_mean"] + summary["privacy_mean"]) / 2)
        cmp = paper.compare_harmonic(qp, published, names, value="mean_qp")
    cmp.to_csv(out_dir / "paper_comparison.csv", index=False, na_rep="n/a")
    (out_dir / "paper_comparison.md").write_text(paper.comparison_markdown(cmp))

    if make_figures:
        all_ds = sorted(set(cells["dataset"]) | set(datasets or []))
        tasks: list[tuple] = []
        for ds in all_ds:  # the distribution figures first: the slowest to draw
            for which in ("best", "worst"):
                args = (cell, ds, which, cards_dir, synthetic_dir, train_dir, figures_dir)
                tasks.append((_distribution_figure, args))
        for ds in all_ds:
            path = figures_dir / f"harmonic_heatmap_{ds}.png"
            tasks.append((figures.harmonic_heatmap, (summary, ds, kinds, path)))
        tasks += [
            (figures.quality_vs_privacy, (summary, kinds, figures_dir / "quality_vs_privacy.png")),
            (figures.efficiency_bars, (eff, figures_dir / "efficiency.png")),
            (figures.leaderboard, (board, figures_dir / "leaderboard.png", names)),
        ]
        cd_names = {
            e: leaderboard.display_entry(e, k, names)
            for e, k in zip(board["overall"]["entry"], board["overall"]["kind"])
        }
        cd_note = (
            ""
            if board["significance"]["possible"]
            else "too few blocks for any difference to be significant"
        )
        tasks.append(
            (
                ranking.cd_figure,
                (
                    board["test"],
                    figures_dir / "critical_difference.png",
                    "Critical-difference diagram of the leaderboard",
                    "(dataset, repeat) blocks",
                    cd_names,
                    cd_note,
                ),
            )
        )
        _draw(tasks, workers)
    facts = leaderboard.run_facts(cell, kinds)
    _write_report_page(out_dir, figures_dir if make_figures else None, board, names, facts)
    return {
        "cells": cell,
        "summary": summary,
        "table4": t4,
        "table5": t5,
        "table6": t6,
        "definitions": defs,
        "comparison": cmp,
        "metrics": norm,
        "privacy": tp,
        "fairness": tf,
        "intervals": ti,
        "ranking": tr,
        "leaderboard": leaderboard.frame(board),
    }


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm aggregate", description=__doc__.splitlines()[0])
    p.add_argument(
        "--metrics-list",
        action="append",
        default=[],
        help="file listing metrics JSON paths, one per line (repeatable)",
    )
    p.add_argument(
        "--meta-list",
        action="append",
        default=[],
        help="file listing raw meta JSON paths (repeatable)",
    )
    p.add_argument(
        "--validation-list",
        action="append",
        default=[],
        help="file listing validation report paths (repeatable)",
    )
    p.add_argument("--metrics", nargs="*", default=[], help="metrics JSON paths given directly")
    p.add_argument("--meta", nargs="*", default=[], help="raw meta JSON paths given directly")
    p.add_argument(
        "--validation", nargs="*", default=[], help="validation report paths given directly"
    )
    p.add_argument(
        "--fairness-list",
        action="append",
        default=[],
        help="file listing per-cell fairness CSV paths (repeatable)",
    )
    p.add_argument("--fairness", nargs="*", default=[], help="fairness CSV paths given directly")
    p.add_argument(
        "--cards-dir", required=True, help="directory of dataset cards (resources/datasets)"
    )
    p.add_argument("--out-dir", required=True, help="tables directory (results/tables)")
    p.add_argument("--figures-dir", required=True, help="figures directory (results/figures)")
    p.add_argument("--paper-dir", default=None, help="published tables (resources/paper)")
    p.add_argument(
        "--synthetic-dir", default=None, help="results/synthetic, for the distribution figures"
    )
    p.add_argument("--train-dir", default=None, help="results/data, for the distribution figures")
    p.add_argument(
        "--registry",
        default="config/models.yaml",
        help="model registry for paper names (skipped if absent)",
    )
    p.add_argument(
        "--utility-classifier",
        default="mean",
        choices=CLASSIFIERS,
        help="Table V scores: mean over classifiers (default) or one classifier",
    )
    p.add_argument(
        "--datasets",
        nargs="*",
        default=[],
        help="datasets that must get figures even without cells",
    )
    p.add_argument(
        "--normalisation",
        default="run",
        choices=scores.NORMALISATIONS,
        help="run: min-max over the run's cells (default); anchored: holdout = 1, "
        "worst reference = 0",
    )
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--workers", type=int, default=1, help="processes drawing the figures")
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="project",
        help="paper: reproduce Table IV under the authors' protocol (paper_* outputs)",
    )
    a = p.parse_args(argv)
    if a.protocol == "paper":
        if a.paper_dir is None:
            raise SynllmError("aggregate --protocol paper needs --paper-dir")
        res = reproduction.write_outputs(
            gather_paths(a.metrics_list, a.metrics),
            a.out_dir,
            a.figures_dir,
            a.paper_dir,
            paper.load_paper_names(a.paper_dir, a.registry),
            make_figures=not a.no_figures,
        )
        s = res["summary"]
        print(
            f"aggregate (paper protocol): {len(res['reproduction'])} printed cells; quality "
            f"matches {dict(zip(s['dataset'], s['quality_match']))} -> {a.out_dir}"
        )
        return 0
    res = aggregate(
        gather_paths(a.metrics_list, a.metrics),
        gather_paths(a.meta_list, a.meta),
        gather_paths(a.validation_list, a.validation),
        cards_dir=a.cards_dir,
        out_dir=a.out_dir,
        figures_dir=a.figures_dir,
        paper_dir=a.paper_dir,
        synthetic_dir=a.synthetic_dir,
        train_dir=a.train_dir,
        registry=a.registry,
        classifier=a.utility_classifier,
        datasets=a.datasets,
        make_figures=not a.no_figures,
        fairness_paths=gather_paths(a.fairness_list, a.fairness),
        normalisation=a.normalisation,
        workers=a.workers,
    )
    c = res["cells"]
    print(
        f"aggregate: {len(c)} cells ({int((c['status'] == 'ok').sum())} ok) over "
        f"{c['dataset'].nunique()} dataset(s), {c['model'].nunique()} model(s) -> {a.out_dir}, {a.figures_dir}"
    )
    return 0

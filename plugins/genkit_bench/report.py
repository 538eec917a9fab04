"""Presenting results: the terminal table, results.json, report.md and the metric-vs-step plot.

Every figure in the table and the report is ``stats.format_*`` of a number in results.json, so
the three always agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from genkit import files
from genkit.pictures import save_figure
from genkit_bench.stats import format_count, format_number, format_summary, summarize

FLOOR_LABEL = "data (floor)"
ROLE_NOTES = {"teacher": " (teacher)", "reference": " (ref.)", "contender": ""}


def _summary(values: dict[str, Any]) -> str:
    return format_summary(summarize(values["values"]))


def sampling_cell(row: dict[str, Any]) -> str:
    if row["role"] == "teacher":
        return f"Heun {row['steps']} ({row['nfe']})"
    return f"{row['steps']} ({row['nfe']})"


def _sampling_words(role: str, scored: dict[str, Any]) -> str:
    if role == "teacher":
        return f"Heun on {scored['steps']} levels, {scored['nfe']} NFE"
    return "1 step" if scored["steps"] == 1 else f"{scored['steps']} steps"


def levels_sentence(evaluation: dict[str, Any], spec: dict[str, Any]) -> str:
    """Which intermediate noise levels multistep sampling used (k steps: the first k - 1)."""
    levels = evaluation.get("levels") or [evaluation["two_step_sigma"]]
    most = max(spec.get("sampling_steps") or [2])
    if most <= 2:
        return f"2-step sampling uses the intermediate noise level {format_number(levels[0])}."
    shown = ", ".join(format_number(t) for t in levels[: most - 1])
    return f"k-step sampling uses the first k - 1 of the intermediate noise levels {shown}."


def metric_names(results: dict[str, Any]) -> list[str]:
    names = list(results["rows"][0]["metrics"]) if results["rows"] else []
    metric = results["evaluation"]["metric"]
    return [metric] + [n for n in names if n != metric]


def table_columns(results: dict[str, Any]) -> list[str]:
    return (
        ["method", "steps (NFE)"]
        + [f"{name} ↓" for name in metric_names(results)]
        + ["train s", "train s\nincl. teacher", "train NFE", "train NFE\nincl. teacher"]
    )


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """The cells of the results table, as strings; the floor row comes last."""
    rows = []
    for row in results["rows"]:
        has_teacher = row["train_nfe_with_teacher"]["values"] != row["train_nfe"]["values"]
        rows.append(
            [row["label"] + ROLE_NOTES[row["role"]], sampling_cell(row)]
            + [_summary(row["metrics"][name]) for name in metric_names(results)]
            + [
                _summary(row["train_time_s"]),
                _summary(row["train_time_with_teacher_s"]) if has_teacher else "-",
                format_count(row["train_nfe"]["mean"]),
                format_count(row["train_nfe_with_teacher"]["mean"]) if has_teacher else "-",
            ]
        )
    floor = results["floor"]
    if floor:  # a bench without the data-vs-data floor (bench.floor = false) has no such row
        rows.append([FLOOR_LABEL, "-"] + [format_number(floor.get(name)) for name in metric_names(results)] + ["-"] * 4)
    return rows


def rich_table(results: dict[str, Any], width: int | None = None) -> Table:
    """The results table; numeric cells stay on one line when ``width`` allows it."""
    seeds = len(results["seeds"])
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    table = Table(
        title=f"cd-vs-ict, preset {results['preset']}: {spread}, {results['evaluation']['samples']} samples vs held-out data",
        caption=f"budget: {results['budget']['steps']} steps x batch {results['budget']['batch_size']} for every method; "
        "steps (NFE) = sampling steps (network evaluations per sample)",
        box=box.SIMPLE_HEAD,
    )
    rows = table_rows(results)
    columns = table_columns(results)
    natural = sum(max(len(line) for cell in [column, *(r[i] for r in rows)] for line in cell.split("\n")) + 2 for i, column in enumerate(columns)) + 2
    keep_lines = width is None or natural <= width
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < 2 else "right", no_wrap=keep_lines and index >= 2)
    for cells in rows:
        table.add_row(*cells, style="dim" if cells[0] == FLOOR_LABEL else None)
    return table


def markdown_table(results: dict[str, Any]) -> str:
    columns = [c.replace("\n", " ") for c in table_columns(results)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(columns) - 2)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(results)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- files


def write_json(results: dict[str, Any], out: Path) -> Path:
    path = Path(out) / "results.json"
    return files.write_atomic(path, json.dumps(results, indent=2) + "\n")


def plot_curves(results: dict[str, Any], out: Path) -> Path | None:
    """Each metric against training step, one line per run (mean over seeds), floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    if not any(r["curve"] for r in runs):
        return None
    metrics = metric_names(results)
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4), dpi=110, squeeze=False)
    labels = list(dict.fromkeys(r["label"] for r in runs))
    for axis, metric in zip(axes[0], metrics):
        for label in labels:
            curves = [r["curve"] for r in runs if r["label"] == label and r["curve"]]
            if not curves:
                continue
            role = next(r["role"] for r in runs if r["label"] == label)
            steps = [p["step"] for p in curves[0]]
            means = [sum(c[i]["eval"][metric] for c in curves) / len(curves) for i in range(min(len(c) for c in curves))]
            name = f"{label} (Heun)" if role == "teacher" else f"{label} (1 step)"
            axis.plot(steps[: len(means)], means, marker="o", markersize=3, label=name, linestyle="--" if role != "contender" else "-")
        floor = results.get("curve_floor") or results["floor"]
        if metric in floor:
            axis.axhline(floor[metric], color="0.5", linestyle=":", label=f"data vs data ({results['spec']['curve_samples']} points)")
        axis.set_yscale("log")
        axis.set_xlabel("training step")
        axis.set_ylabel(f"{metric} (lower is better)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(
        f"cd-vs-ict, {results['preset']}: metric during training, {results['spec']['curve_samples']} samples, "
        f"mean over {len(results['seeds'])} seed(s)",
        fontsize=9,
    )
    figure.tight_layout()
    path = save_figure(figure, Path(out) / "curves.png")
    plt.close(figure)
    return path


def teacher_cost_sentence(spec: dict[str, Any]) -> str:
    """How the `incl. teacher` columns count, naming the runs trained from a teacher run (CD, a
    plugin's method such as ECT): their teacher's evaluations during training plus its own training."""
    students = [table.get("label") or name for name, table in spec.get("runs", {}).items() if isinstance(table, dict) and table.get("teacher")]
    if students in ([], ["CD"]):  # the built-in presets
        return (
            "CD is shown without and with (`incl. teacher`) its teacher's cost: the teacher's Heun steps during "
            "distillation plus everything the EDM teacher itself spent in training (its training seconds likewise)."
        )
    names = ", ".join(students[:-1]) + f" and {students[-1]}" if len(students) > 1 else students[0]
    return (
        f"{names} {'are' if len(students) > 1 else 'is'} shown without and with (`incl. teacher`) the cost of the teacher run "
        "each starts from: the teacher's network evaluations during training (CD's Heun steps; none for a method that "
        "only takes the teacher's weights) plus everything the teacher run itself spent in training (its training seconds likewise)."
    )


def write_report(results: dict[str, Any], out: Path, curves: Path | None) -> Path:
    spec, budget, evaluation = results["spec"], results["budget"], results["evaluation"]
    seeds = results["seeds"]
    lines = [
        f"# genkit bench cd-vs-ict: {spec['title'] or results['preset']}",
        "",
        f"**Verdict.** {results['verdict']['sentence']}",
        "",
        f"**Budget.** Every method trained for {budget['steps']} steps at batch size {budget['batch_size']} "
        f"({budget['training_samples']} training samples) per seed; seeds {', '.join(map(str, seeds))}. "
        "Training time is wall-clock seconds of the training steps alone; NFE counts network evaluations spent "
        f"in training. {teacher_cost_sentence(spec)}",
        "",
        f"**Scores.** {evaluation['samples']} samples from the EMA weights of each model against "
        f"{evaluation['reference']}; the `data (floor)` row scores a second held-out draw of the same size and is the "
        f"best any model can reach at this sample count. {levels_sentence(evaluation, spec)} "
        + ("Figures are mean ± sample standard deviation over seeds." if len(seeds) > 1 else "One seed, so no spread."),
        "",
        markdown_table(results),
        "",
    ]
    if curves is not None:
        lines += ["## Metric during training", "", f"![metric against training step]({curves.name})", ""]
    lines += [f"## Samples (seed {seeds[0]}; grey: held-out data)", ""]
    for run in results["runs"]:
        if run["seed"] != seeds[0]:
            continue
        pictures = " ".join(f"![{run['label']}, {_sampling_words(run['role'], s)}]({s['picture']})" for s in run["scores"])
        lines += [f"**{run['label']}** ({', '.join(_sampling_words(run['role'], s) for s in run['scores'])}): ", pictures, ""]
    lines += ["", "## Setup", ""]
    lines.append(f"- bench preset `{results['preset']}` ({results['preset_file']}), training preset `{spec['training_preset']}`")
    for note in spec["notes"]:
        lines.append(f"- {note}")
    machine, versions = results["machine"], results["versions"]
    lines.append(
        f"- machine: {machine['platform']}, {machine['cpu_count']} CPU cores, torch threads {machine['torch_threads']}"
        + (f", GPU {machine['cuda']}" if machine["cuda"] else ", no GPU")
    )
    lines.append(f"- versions: genkit {versions['genkit']}, torch {versions['torch']}, python {machine['python']}")
    lines.append(
        f"- wall time {format_number(results['wall_time_s'])} s over every invocation on this folder "
        f"(this one {format_number(results['wall_time_this_invocation_s'])} s); "
        f"training time of all runs {format_number(results['training_time_s'])} s"
    )
    lines.append("- every number above is in results.json")
    path = Path(out) / "report.md"
    return files.write_atomic(path, "\n".join(lines) + "\n")

"""Presenting results: the terminal table, results.json, report.md and the metric-vs-step plot.

Every figure in the table and the report is ``stats.format_*`` of a number in results.json, so
the three always agree.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from genkit import files
from genkit.pictures import save_figure
from genkit_bench.stats import direction_words, format_count, format_number, format_summary, leaders, ordering_phrase, summarize

FLOOR_LABEL = "data (floor)"
UNWRAPPED = 1000  # columns a table printed to a file may take: every cell on one line
ROLE_NOTES = {"teacher": " (teacher)", "reference": " (ref.)", "contender": ""}
NOT_LEARNING_MARK = " †"  # a row no better than a baseline on the verdict's metric: not_learning_sentence says so


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


def not_learning_sentence(results: dict[str, Any]) -> str:
    """The rows marked † named, with the baselines they do not beat ('' when none is marked)."""
    flagged = [r for r in results["rows"] if r.get("no_better_than")]
    if not flagged:
        return ""
    metric = results["evaluation"]["metric"]
    baselines = results.get("baselines", {})
    shown = ", ".join(f"{name} {format_number(baselines[name].get(metric))}" for name in baselines)
    rows = ", ".join(
        f"{r['label']} at {_sampling_words(r['role'], r)}{'' if r.get('primary', True) else ' (fixed)'} ({format_number(r['metrics'][metric]['mean'])})"
        for r in flagged
    )
    return (
        f"† Not learning: on {metric}, {rows} score{'s' if len(flagged) == 1 else ''} no better than a model that learnt only "
        f"the data's first moments ({shown}; every sample the data's mean, or Gaussian noise with its per-dimension mean and "
        "spread): at this budget that model has not started learning, and its figures say nothing about its method."
    )


def levels_cell(row: dict[str, Any]) -> str:
    """The intermediate levels a row sampled with: '-' without any; searched levels per seed
    (the Levels paragraph lists them when seeds differ); '(fixed)' marks the extra row at the
    preset's fixed levels beside the searched ones."""
    per_seed = [tuple(levels) for levels in row.get("levels", [])]
    if not any(per_seed):
        return "-"
    shown = ", ".join(format_number(t) for t in per_seed[0])
    if row.get("levels_from") == "searched":
        return f"{shown} (searched)" if len(set(per_seed)) == 1 else "searched, per seed"
    return shown if row.get("primary", True) else f"{shown} (fixed)"


def levels_sentence(evaluation: dict[str, Any], spec: dict[str, Any]) -> str:
    """Which intermediate noise levels multistep sampling used (k steps: the first k - 1)."""
    levels = evaluation.get("levels") or [evaluation["two_step_sigma"]]
    most = max(spec.get("sampling_steps") or [2])
    if evaluation.get("level_search"):
        fixed = ", ".join(format_number(t) for t in levels[: max(most - 1, 1)])
        return ("Multistep sampling uses each consistency model's own searched levels (the `levels` column, and below); "
                f"the rows marked `(fixed)` score the same models again at the preset's fixed levels {fixed} "
                "(with the default, iCT's CIFAR-10 2-step level), as a run the search leaves out uses them.")
    if most <= 2:
        return f"2-step sampling uses the intermediate noise level {format_number(levels[0])}."
    shown = ", ".join(format_number(t) for t in levels[: most - 1])
    return f"k-step sampling uses the first k - 1 of the intermediate noise levels {shown}."


def metric_names(results: dict[str, Any]) -> list[str]:
    names = list(results["rows"][0]["metrics"]) if results["rows"] else []
    metric = results["evaluation"]["metric"]
    return [metric] + [n for n in names if n != metric]


def higher_is_better(results: dict[str, Any], name: str) -> bool:
    """A metric's direction as results.json records it (older results: every metric a distance)."""
    return results.get("directions", {}).get(name) == "higher"


def arrow(results: dict[str, Any], name: str) -> str:
    return "↑" if higher_is_better(results, name) else "↓"


def table_columns(results: dict[str, Any]) -> list[str]:
    return (
        ["method", "steps (NFE)", "levels"]
        + [f"{name} {arrow(results, name)}" for name in metric_names(results)]
        + ["train s", "train s\nincl. teacher", "train NFE", "train NFE\nincl. teacher"]
    )


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """The cells of the results table, as strings; the floor row comes last."""
    rows = []
    for row in results["rows"]:
        has_teacher = row["train_nfe_with_teacher"]["values"] != row["train_nfe"]["values"]
        rows.append(
            [row["label"] + ROLE_NOTES[row["role"]] + (NOT_LEARNING_MARK if row.get("no_better_than") else ""), sampling_cell(row), levels_cell(row)]
            + [_summary(row["metrics"][name]) for name in metric_names(results)]
            + [
                _summary(row["train_time_s"]),
                _summary(row["train_time_with_teacher_s"]) if has_teacher else "-",
                format_count(row["train_nfe"]["mean"]),
                format_count(row["train_nfe_with_teacher"]["mean"]) if has_teacher else "-",
            ]
        )
    for name, scores in results.get("baselines", {}).items():  # what learning only the data's moments scores
        rows.append([f"{name} (baseline)", "-", "-"] + [format_number(scores.get(metric)) for metric in metric_names(results)] + ["-"] * 4)
    floor = results["floor"]
    if floor:  # a bench without the data-vs-data floor (bench.floor = false) has no such row
        rows.append([FLOOR_LABEL, "-", "-"] + [format_number(floor.get(name)) for name in metric_names(results)] + ["-"] * 4)
    return rows


def natural_width(results: dict[str, Any]) -> int:
    """The table's width with every cell on one line (rich's SIMPLE_HEAD box: 2 columns of padding each)."""
    rows, columns = table_rows(results), table_columns(results)
    return sum(max(len(line) for cell in [column, *(r[i] for r in rows)] for line in cell.split("\n")) + 2 for i, column in enumerate(columns)) + 2


def rich_table(results: dict[str, Any], width: int | None = None) -> Table:
    """The results table; numeric cells stay on one line when ``width`` allows it, else they wrap
    (fold): a number is never cut short with an ellipsis."""
    seeds = len(results["seeds"])
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    table = Table(
        title=f"cd-vs-ict, preset {results['preset']}: {spread}, {results['evaluation']['samples']} samples vs held-out data",
        caption=f"budget: {results['budget']['steps']} steps x batch {results['budget']['batch_size']} for every method; "
        "steps (NFE) = sampling steps (network evaluations per sample); ↓ lower is better, ↑ higher is better",
        box=box.SIMPLE_HEAD,
    )
    keep_lines = width is None or natural_width(results) <= width
    for index, column in enumerate(table_columns(results)):
        no_wrap = width is None or (keep_lines and index >= 3)
        table.add_column(column, justify="left" if index < 3 else "right", no_wrap=no_wrap, overflow="fold")
    for cells in table_rows(results):
        table.add_row(*cells, style="dim" if cells[0] == FLOOR_LABEL else None)
    return table


def print_table(console, results: dict[str, Any]) -> None:
    """The table on a terminal at its width (cells wrap when it is narrow); to a file or a pipe
    (a log: no terminal, rich assumes 80 columns) at the table's own width, every cell whole."""
    if console.is_terminal:
        console.print(rich_table(results, console.width))
    else:  # rendered apart with room to spare (console.print caps any width at the console's), written unwrapped
        wide = Console(file=io.StringIO(), width=UNWRAPPED, color_system=None, force_terminal=False)
        wide.print(rich_table(results, None))
        text = "\n".join(line.rstrip() for line in wide.file.getvalue().splitlines())
        console.print(text, soft_wrap=True, markup=False, highlight=False)


def markdown_table(results: dict[str, Any]) -> str:
    columns = [c.replace("\n", " ") for c in table_columns(results)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(columns) - 3)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(results)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- files


def write_json(results: dict[str, Any], out: Path) -> Path:
    path = Path(out) / "results.json"
    return files.write_atomic(path, json.dumps(results, indent=2) + "\n")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def curve_lines(results: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    """One line per model for the anytime plots, the mean over seeds at each curve point: its
    steps, its training seconds (a student's plus, for one trained from a teacher run, the
    teacher's training seconds: the equal-compute view) and the metric."""
    runs = results["runs"]
    lines = []
    for label in dict.fromkeys(r["label"] for r in runs):
        mine = [r for r in runs if r["label"] == label and r["curve"]]
        if not mine:
            continue
        length = min(len(r["curve"]) for r in mine)
        role = mine[0]["role"]
        teacher_s = _mean([r.get("teacher_elapsed_s", 0.0) for r in mine])
        seconds = None
        if all(p.get("elapsed_s") is not None for r in mine for p in r["curve"][:length]):
            seconds = [_mean([r["curve"][i]["elapsed_s"] for r in mine]) + teacher_s for i in range(length)]
        lines.append(
            {
                "label": label,
                "role": role,
                "name": f"{label} (Heun)" if role == "teacher" else f"{label} (1 step)",
                "steps": [p["step"] for p in mine[0]["curve"][:length]],
                "seconds": seconds,
                "teacher_s": teacher_s,
                "values": [_mean([r["curve"][i]["eval"][metric] for r in mine]) for i in range(length)],
                "ranges": [_range([r["curve"][i]["eval"][metric] for r in mine]) for i in range(length)],  # the seeds' (min, max)
            }
        )
    return lines


def _range(values: list[float]) -> tuple[float, float]:
    return min(values), max(values)


def ordering_over_training(results: dict[str, Any]) -> str:
    """Whether the verdict's two runs keep their order at every curve point, by training step and
    by training seconds (a student's including its teacher's), on the verdict's metric ('' without
    curves for both)."""
    spec, metric = results["spec"], results["evaluation"]["metric"]
    labels = [(spec["runs"].get(name) or {}).get("label") or name for name in spec["compare"]]
    lines = {line["label"]: line for line in curve_lines(results, metric)}
    if not all(label in lines for label in labels):
        return ""
    a, b = (lines[label] for label in labels)
    higher = higher_is_better(results, metric)
    by_steps = ordering_phrase(leaders((a["steps"], a["values"]), (b["steps"], b["values"]), higher), *labels, "step")
    sentence = f"During training ({metric} of 1-step samples at each curve point, mean over seeds): by training step, {by_steps}"
    if a["seconds"] and b["seconds"]:
        points = leaders((a["seconds"], a["values"]), (b["seconds"], b["values"]), higher)
        spans = " and ".join(f"{line['label']} {format_number(line['seconds'][0])}-{format_number(line['seconds'][-1])} s" for line in (a, b))
        by_seconds = ordering_phrase(points, *labels, "second") if points else f"the curves do not overlap ({spans})"
        sentence += f"; at equal training seconds (a student's including its teacher's, linear between points), {by_seconds}"
    return sentence + "."


def plot_curves(results: dict[str, Any], out: Path) -> Path | None:
    """Each metric against training step (top) and against training seconds (bottom: the anytime
    view, where a method that costs more per step shows its cost), one line per run (mean over
    seeds), the data-vs-data floor dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(r["curve"] for r in results["runs"]):
        return None
    metrics = metric_names(results)
    figure, axes = plt.subplots(2, len(metrics), figsize=(5.2 * len(metrics), 7.6), dpi=110, squeeze=False)
    floor = results.get("curve_floor") or results["floor"]
    for column, metric in enumerate(metrics):
        higher = higher_is_better(results, metric)
        lines = curve_lines(results, metric)
        for row, axis in enumerate(axes[:, column]):
            for line in lines:
                x = line["steps"] if row == 0 else line["seconds"]
                if x is None:
                    continue
                name = line["name"] + (f", + teacher's {format_number(line['teacher_s'])} s" if row == 1 and line["teacher_s"] else "")
                drawn = axis.plot(x, line["values"], marker="o", markersize=3, label=name, linestyle="--" if line["role"] != "contender" else "-")
                if len(results["seeds"]) > 1:  # the band: the seeds' range (a log axis has no room for mean - std < 0)
                    low, high = zip(*line["ranges"])
                    axis.fill_between(x, low, high, color=drawn[0].get_color(), alpha=0.18, linewidth=0)
                if row == 1 and line["teacher_s"]:  # the same student on its own seconds: without its teacher's cost
                    own = [seconds - line["teacher_s"] for seconds in x]
                    axis.plot(own, line["values"], linestyle=":", color=drawn[0].get_color(), label=f"{line['name']}, own seconds only")
            if metric in floor:
                axis.axhline(floor[metric], color="0.5", linestyle=":", label=f"data vs data ({results['spec']['curve_samples']} points)")
            if not higher:  # distances span decades; shares (precision, recall) lie in [0, 1]
                axis.set_yscale("log")
            axis.set_xlabel(f"training step (x batch {results['budget']['batch_size']} = training images)" if row == 0 else "training seconds (a student's incl. its teacher's; dotted: without)")
            axis.set_ylabel(f"{metric} ({direction_words(higher)})")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    figure.suptitle(
        f"cd-vs-ict, {results['preset']}: metric during training against steps and against seconds, "
        f"{results['spec']['curve_samples']} samples, mean over {len(results['seeds'])} seed(s)"
        + (" (bands: the seeds' range)" if len(results["seeds"]) > 1 else ""),
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
    over_training = results["verdict"].get("over_training")
    lines = [f"# {report_title(results)}", "", f"**Verdict.** {results['verdict']['sentence']}" + (f" {over_training}" if over_training else ""), ""]
    not_learning = results["verdict"].get("not_learning")
    if not_learning:
        lines += [f"**{not_learning}**", ""]
    changed = budget_change(results)
    if changed:
        lines += [f"**Budget changed from the preset's.** {changed}", ""]
    lines += [
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
    searched = levels_paragraph(results)
    if searched:
        lines += [searched, ""]
    if curves is not None:
        lines += [
            "## Metric during training",
            "",
            "Against training steps (top) and against training seconds (bottom; a student trained from a teacher "
            "run starts at the teacher's training seconds, and dotted on its own seconds alone), the anytime view of "
            "equal compute; with several seeds, the band is their range.",
            "",
            f"![metric against training step and seconds]({curves.name})",
            "",
        ]
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


def report_title(results: dict[str, Any]) -> str:
    """From the budget that ran, not the preset's words about one: 'PRESET: TITLE, 600 steps x
    batch 512, 3 seeds, on NVIDIA H200'."""
    spec, budget, machine = results["spec"], results["budget"], results["machine"]
    seeds = len(results["seeds"])
    where = machine.get("cuda") or f"{machine.get('cpu_count')} CPU cores"
    title = f": {spec['title']}" if spec.get("title") else ""
    return (
        f"genkit bench {results['preset']}{title}, {budget['steps']} steps x batch {budget['batch_size']}, "
        f"{seeds} seed{'s' if seeds > 1 else ''}, on {where}"
    )


def budget_change(results: dict[str, Any]) -> str:
    """A sentence when --set or --seeds changed the preset's budget ('' otherwise): the preset's
    notes were written for its own budget."""
    preset = results.get("preset_budget") or {}
    now = {**results["budget"], "seeds": len(results["seeds"])}
    if not preset or all(preset.get(key) == now[key] for key in ("steps", "batch_size", "seeds")):
        return ""
    return (
        f"The preset sets {preset['steps']} steps x batch {preset['batch_size']}, {preset['seeds']} seed(s); this run "
        f"used {now['steps']} x {now['batch_size']}, {now['seeds']} seed(s). The notes below were written for the "
        "preset's budget."
    )


def levels_paragraph(results: dict[str, Any]) -> str:
    """Each consistency model's searched levels per seed ('' when the bench did not search)."""
    searched = [r for r in results["runs"] if r.get("level_search")]
    if not searched:
        return ""
    first = searched[0]["level_search"]
    parts = []
    for label in dict.fromkeys(r["label"] for r in searched):
        mine = sorted((r for r in searched if r["label"] == label), key=lambda r: r["seed"])
        parts.append(f"{label} " + "; ".join(", ".join(format_number(t) for t in r["level_search"]["levels"]) for r in mine))
    seeds = f" (per seed, seeds {', '.join(map(str, results['seeds']))} in order)" if len(results["seeds"]) > 1 else ""
    return (
        f"**Levels.** Each consistency model samples with its own intermediate levels{seeds}: {'; '.join(parts)}. "
        f"Each was chosen by the greedy level search of Song et al. (2023): a ternary search on ln(sigma), "
        f"{first['iterations']} steps per level, minimising {first['metric']} on {first['samples']} samples whose seeds no "
        f"score uses (the training seed + {first['sample_seed'] - searched[0]['seed']}) against held-out draw "
        f"{first['reference_seed']}, not the table's (an evaluator with training-set statistics uses those for both)."
    )

"""genkit bench: presets, the plan, and the whole bench end to end on a tiny budget."""

import json
import re
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from typer.testing import CliRunner

from genkit import plugins
from genkit.cli.main import build_app
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from genkit_bench import report as bench_report
from genkit_bench import write
from genkit_bench import runner as bench_runner
from genkit_bench import spec as bench_spec

WIDE = {"COLUMNS": "250"}  # one table row per line, so rows can be read back

TINY_BENCH = """
[bench]
title = "tiny"
training_preset = "toy2d"
seeds = 1
steps = 30
batch_size = 64
eval_samples = 300
curve_every = 10
curve_samples = 200
torch_threads = 1
compare = ["ict", "cd"]
notes = ["a test"]
level_search = true
search_samples = 200
search_iterations = 2
seconds_per_step = { edm = 0.002, cd = 0.004, ict = 0.002 }
seconds_per_step_batch = 32
seconds_per_step_on = "a test machine"

[bench.overrides]
network = { width = 32, depth = 1, embedding_dim = 16 }
train = { log_every = 5, checkpoint_every = 10 }
sample = { heun_levels = 6 }

[bench.runs.edm]
method = "edm"
label = "EDM"
role = "teacher"

[bench.runs.cd]
method = "cd"
label = "CD"
teacher = "edm"

[bench.runs.ict]
method = "ict"
label = "iCT"

[bench.runs.ct]
method = "ct"
label = "CT"
role = "reference"
"""


def invoke(*args):
    return CliRunner().invoke(build_app(), [str(a) for a in args], env=WIDE)


@pytest.fixture
def tiny_preset(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_BENCH)
    return path


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]\d+)?")


def numbers_in(cells):
    """Every number of the cells after 'method' and 'steps (NFE)', '-' cells skipped."""
    return [float(n) for cell in cells for n in NUMBER.findall(cell.replace("±", " "))]


def expected_numbers(row):
    """What the table must show for a results.json row, in column order (1 seed: no spread)."""
    values = [row["metrics"]["swd"]["mean"], row["metrics"]["frechet2d"]["mean"], row["train_time_s"]["mean"]]
    with_teacher = row["train_nfe_with_teacher"]["mean"] != row["train_nfe"]["mean"]
    if with_teacher:
        values.append(row["train_time_with_teacher_s"]["mean"])
    values.append(row["train_nfe"]["mean"])
    if with_teacher:
        values.append(row["train_nfe_with_teacher"]["mean"])
    return values


def assert_close_to_printed_precision(shown, expected):
    assert len(shown) == len(expected), (shown, expected)
    for a, b in zip(shown, expected):
        assert a == pytest.approx(b, rel=6e-4, abs=1e-12), (shown, expected)


def check_table_matches(results, lines_of_row):
    """Each row of results.json found in the table by its method, steps and levels cells; the
    numbers after them are its metrics and costs."""
    for row in results["rows"]:
        steps_cell = f"Heun {row['steps']} ({row['nfe']})" if row["role"] == "teacher" else f"{row['steps']} ({row['nfe']})"
        cells = lines_of_row(row["label"], steps_cell, bench_report.levels_cell(row))
        assert_close_to_printed_precision(numbers_in(cells), expected_numbers(row))


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_bench_end_to_end_writes_everything_and_the_table_equals_the_json(tiny_preset, tmp_path):
    out = tmp_path / "out"
    result = invoke("bench", "cd-vs-ict", "--preset", tiny_preset, "--out", out)
    assert result.exit_code == 0, result.output

    for name in ("results.json", "report.md", "curves.png", ".genkit-bench"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results["runs"]] == ["edm", "cd", "ict", "ct"]
    for run in results["runs"]:
        assert RunFolder(out / run["folder"]).has_checkpoint() and run["step"] == 30
        assert [p["step"] for p in run["curve"]] == [10, 20, 30]
        for scored in run["scores"]:
            assert (out / scored["picture"]).is_file()
    pictures = sorted(p.name for p in (out / "pictures").iterdir())
    assert pictures == ["cd-seed0-1nfe.png", "cd-seed0-2nfe-fixed.png", "cd-seed0-2nfe.png", "ct-seed0-1nfe.png",
                        "ct-seed0-2nfe-fixed.png", "ct-seed0-2nfe.png", "edm-seed0-11nfe.png", "ict-seed0-1nfe.png",
                        "ict-seed0-2nfe-fixed.png", "ict-seed0-2nfe.png"]  # fmt: skip

    # every method: 1 and 2 steps at its searched level, then 2 steps again at the preset's fixed
    # level (the paper's 0.821), a row of its own; the teacher at its own NFE (Heun on 6 levels: 11)
    assert [(r["run"], r["steps"], r["nfe"], r["levels_from"], r["primary"]) for r in results["rows"]] == [
        ("edm", 6, 11, None, True),
        ("cd", 1, 1, None, True), ("cd", 2, 2, "searched", True), ("cd", 2, 2, "fixed", False),
        ("ict", 1, 1, None, True), ("ict", 2, 2, "searched", True), ("ict", 2, 2, "fixed", False),
        ("ct", 1, 1, None, True), ("ct", 2, 2, "searched", True), ("ct", 2, 2, "fixed", False),
    ]  # fmt: skip
    fixed = [r for r in results["rows"] if not r["primary"]]
    assert all(r["levels"] == [[0.821]] for r in fixed)
    searched = {r["label"]: r["level_search"]["levels"] for r in results["runs"] if r["level_search"]}
    assert all(r["levels"] == [searched[r["label"]]] for r in results["rows"] if r["levels_from"] == "searched")
    # the verdict compares the searched rows, never the extra fixed-level ones
    assert [(c["steps"], c["a_mean"]) for c in results["verdict"]["comparisons"]] == [
        (r["steps"], r["metrics"]["swd"]["mean"]) for r in results["rows"] if r["run"] == "ict" and r["primary"]
    ]
    # the budget is the same for all; CD's NFE with its teacher's = own + Heun passes + the teacher's training
    samples = 30 * 64
    nfe = {r["name"]: r for r in results["runs"]}
    assert nfe["edm"]["nfe_student"] == samples and nfe["ict"]["nfe_student"] == nfe["ct"]["nfe_student"] == 2 * samples
    assert nfe["cd"]["nfe_student"] == 2 * samples and nfe["cd"]["nfe_teacher_passes"] == 2 * samples
    assert nfe["cd"]["nfe_total"] == 4 * samples + samples
    assert results["budget"] == {"steps": 30, "batch_size": 64, "training_samples": samples}
    assert {"genkit", "torch"} <= set(results["versions"]) and results["machine"]["cpu_count"]
    assert results["seeds"] == [0] and results["spec"]["steps"] == 30

    # the printed table and the report show exactly the numbers of results.json
    output_lines = result.output.splitlines()

    def printed_row(label, steps_cell, levels_cell):
        pattern = rf"\s*{re.escape(label)}(\s+\(\w+\.?\))?( †)?\s+{re.escape(steps_cell)}\s+{re.escape(levels_cell)}\s"
        line = next(line for line in output_lines if re.match(pattern, line))
        return line.split(steps_cell, 1)[1].lstrip()[len(levels_cell):].split("  ")

    check_table_matches(results, printed_row)
    report = (out / "report.md").read_text()

    def report_row(label, steps_cell, levels_cell):
        line = next(line for line in report.splitlines() if line.startswith(f"| {label}") and f"| {steps_cell} | {levels_cell} |" in line)
        return line.split("|")[4:]

    check_table_matches(results, report_row)
    floor_line = next(line for line in output_lines if "data (floor)" in line)
    assert_close_to_printed_precision(numbers_in([floor_line.split("data (floor)")[1]]), [results["floor"]["swd"], results["floor"]["frechet2d"]])
    assert results["verdict"]["sentence"] in report
    assert results["verdict"]["sentence"].split(",")[0] in result.output
    assert "one seed and so no spread" in results["verdict"]["sentence"]
    assert "![metric against training step and seconds](curves.png)" in report and "pictures/ict-seed0-1nfe.png" in report

    # the title says the budget that ran; the cost estimate came before training, labelled so
    assert report.startswith("# genkit bench tiny: tiny, 30 steps x batch 64, 1 seed, on ")
    assert "cost estimate (an estimate from the preset's seconds_per_step, measured on a test machine at batch 32, scaled linearly to batch 64" in " ".join(result.output.split())
    assert "EDM 30 x 0.004 s = 0.12 s, CD 30 x 0.008 s = 0.24 s, iCT 30 x 0.004 s = 0.12 s, CT no hint; 0.48 s per seed for the runs with a hint" in " ".join(result.output.split())
    assert result.output.index("cost estimate") < result.output.index("verdict:")

    # anytime curves: every curve point has its training seconds, rising with the steps
    for run in results["runs"]:
        seconds = [p["elapsed_s"] for p in run["curve"]]
        assert all(s is not None and s > 0 for s in seconds) and seconds == sorted(seconds), run["curve"]
        logged = {r["step"]: r["elapsed_s"] for r in RunFolder(out / run["folder"]).metrics() if "elapsed_s" in r}
        assert seconds == [logged[10], logged[20], logged[30]]  # eval steps are log steps here: exact

    # per-model levels: each consistency model's own, searched off the scoring draw, recorded and used
    for run in results["runs"]:
        search = run["level_search"]
        if run["role"] == "teacher":
            assert search is None
            continue
        assert search["sample_seed"] == 1_000_000 + run["seed"] and search["reference_seed"] == 3 and search["samples"] == 200
        assert len(search["levels"]) == 1 and 0.002 < search["levels"][0] < 80
        assert json.loads((out / run["folder"] / "levels.json").read_text())["searches"][0]["levels"] == search["levels"]
        two = next(s for s in run["scores"] if s["steps"] == 2)
        assert two["levels"] == search["levels"]
        row = next(r for r in results["rows"] if r["run"] == run["name"] and r["steps"] == 2)
        assert row["levels"] == [search["levels"]]
        assert f"{run['label']} {search['levels'][0]:.4g}" in report
    assert "greedy level search of Song et al. (2023)" in report
    assert results["directions"] == {"swd": "lower", "frechet2d": "lower"}

    # rerunning with the same --out trains nothing and gives the same numbers (bench run: the same command)
    checkpoint = out / nfe["ict"]["folder"] / "checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    again = invoke("bench", "run", "--preset", tiny_preset, "--out", out)
    assert again.exit_code == 0, again.output
    assert checkpoint.stat().st_mtime_ns == before
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["rows"] == results["rows"] and rerun["verdict"] == results["verdict"]
    assert rerun["wall_time_s"] == pytest.approx(results["wall_time_s"] + rerun["wall_time_this_invocation_s"], abs=0.01)


@pytest.mark.slow
def test_an_interrupted_run_is_resumed_not_restarted(tiny_preset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    spec = bench_spec.load_spec(str(tiny_preset), ["bench.runs.cd.role=reference", "bench.compare=['ict', 'ct']"])
    spec.run_list = [r for r in spec.run_list if r.name in ("ict", "ct")]  # no teacher needed
    registries = plugins.registries()
    planned = {p.run.name: p for p in bench_runner.plan(spec, out, registries)}
    Trainer(planned["ict"].config, RunFolder(planned["ict"].folder), registries).train(until=10)  # then "killed"

    resumed = []
    real_init = Trainer.__init__

    def spy(self, config, run, registries, resume=False):
        resumed.append((config.method, resume))
        real_init(self, config, run, registries, resume=resume)

    monkeypatch.setattr(Trainer, "__init__", spy)
    import genkit.training.loop

    builds = []
    real_build = genkit.training.loop.build
    monkeypatch.setattr(genkit.training.loop, "build", lambda config, *args: builds.append(config.method) or real_build(config, *args))
    results = bench_runner.run_bench(spec, out, plugins.load())
    assert resumed == [("ict", True), ("ct", False)]
    assert builds == ["ict", "ct"]  # each run built once, by the Trainer that trains it
    assert [r["step"] for r in results["runs"]] == [30, 30]
    steps_logged = [r["step"] for r in RunFolder(planned["ict"].folder).metrics() if "loss" in r]
    assert steps_logged == [5, 10, 15, 20, 25, 30]


def test_rerun_with_another_budget_into_the_same_out_is_refused(tiny_preset, tmp_path):
    spec = bench_spec.load_spec(str(tiny_preset))
    registries = plugins.registries()
    item = next(p for p in bench_runner.plan(spec, tmp_path, registries) if p.run.name == "ict")
    Trainer(item.config, RunFolder(item.folder), registries).train(until=5)
    other = bench_spec.load_spec(str(tiny_preset), ["bench.overrides.train.lr=0.01"])
    changed = next(p for p in bench_runner.plan(other, tmp_path, registries) if p.run.name == "ict")
    with pytest.raises(Exception, match="holds a run with another config .*train.lr"):
        bench_runner.train_run(changed, registries)


# ----------------------------------------------------------------------------- presets and plans


def test_bench_run_takes_any_preset_and_cd_vs_ict_is_it_on_the_default(tiny_preset, tmp_path):
    result = invoke("bench", "run", "--preset", tiny_preset, "--dry-run", "--out", tmp_path / "plan")
    assert result.exit_code == 0, result.output
    assert "plan: genkit bench run --preset tiny" in result.output and "every component is installed" in result.output
    assert not (tmp_path / "plan").exists()
    same = invoke("bench", "cd-vs-ict", "--dry-run", "--out", tmp_path / "plan")
    default = invoke("bench", "run", "--preset", "toy2d", "--dry-run", "--out", tmp_path / "plan")
    assert same.exit_code == default.exit_code == 0, same.output + default.output
    assert same.output.replace("bench cd-vs-ict", "bench run") == default.output
    assert "--preset" in invoke("bench", "run").output  # the preset is not optional


def test_list_shows_the_built_in_presets():
    result = invoke("bench", "--list")
    assert result.exit_code == 0, result.output
    for name in ("toy2d", "cifar10", "imagenet64"):
        assert name in result.output


def test_toy2d_is_the_default_and_its_budget_is_the_same_for_every_method():
    spec = bench_spec.load_spec("toy2d")
    assert [r.method for r in spec.run_list] == ["edm", "cd", "ict", "ct"]
    planned = bench_runner.plan(spec, Path("/tmp/unused"), plugins.registries())
    assert {(p.config.train.steps, p.config.train.batch_size) for p in planned} == {(spec.steps, spec.batch_size)}
    cd = next(p for p in planned if p.run.name == "cd")
    assert cd.config.methods["cd"].teacher.options.run == Path("/tmp/unused/runs/seed0/edm")
    assert {p.config.sample.multistep_sigmas[0] for p in planned} == {spec.two_step_sigma}


@pytest.mark.parametrize("preset, missing", [("cifar10", "CIFAR-10 not found"), ("imagenet64", "ImageNet 64x64 not found")])
def test_paper_presets_validate_their_plan_and_stop_before_training_without_their_data(preset, missing, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    result = invoke("bench", "cd-vs-ict", "--preset", preset, "--dry-run", "--out", tmp_path / "plan")
    assert result.exit_code == 0, result.output
    assert "every component is installed" in result.output
    assert not (tmp_path / "plan").exists()

    result = invoke("bench", "cd-vs-ict", "--preset", preset, "--out", tmp_path / "run")
    assert_one_line_error(result, missing)
    assert not (tmp_path / "run" / "runs").exists()  # nothing was trained


def test_cifar10_plan_carries_the_papers_settings(tmp_path):
    result = invoke("bench", "cd-vs-ict", "--preset", "cifar10", "--dry-run", "--out", tmp_path)
    text = " ".join(result.output.split())
    assert "400000 steps x batch 1024" in text and "2-step level 0.821" in text
    assert "curriculum=doubling(s0=10, s1=1280)" in text and "curriculum=constant(num_levels=18)" in text
    assert re.search(r"curriculum=sqrt\(s0=2, s1=150\),[^:]* mu0=0\.9", text)  # CT's method line
    assert "evaluation EMA 0.99993" in text and "lr 0.0004" in text and "lr 0.0001" in text


def test_overrides_may_not_change_the_budget(tiny_preset):
    with pytest.raises(Exception, match="sets train.steps; the budget is fixed"):
        bench_spec.load_spec(str(tiny_preset), ["bench.runs.ict.overrides.train.steps=99"])
    with pytest.raises(Exception, match="sets train.batch_size"):
        bench_spec.load_spec(str(tiny_preset), ["bench.overrides.train.batch_size=8"])


def test_bad_presets_are_one_line_errors(tiny_preset, tmp_path):
    assert_one_line_error(invoke("bench", "cd-vs-ict", "--preset", "nope"), "unknown bench preset 'nope'", "toy2d")
    assert_one_line_error(invoke("bench", "cd-vs-ict", "--preset", tiny_preset, "--set", "stepz=3"), "unknown key 'bench.stepz'")
    assert_one_line_error(
        invoke("bench", "cd-vs-ict", "--preset", tiny_preset, "--set", "runs.ct.teacher=ict", "--dry-run"), "must have role = \"teacher\""
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_BENCH.replace('[bench.runs.edm]\nmethod = "edm"', '[bench.runs.edm]\nmethod = "edn"'))
    assert_one_line_error(invoke("bench", "cd-vs-ict", "--preset", bad, "--out", tmp_path / "x"), "method 'edn'")
    assert_one_line_error(invoke("bench", "cd-vs-ict", "--preset", tiny_preset, "--seeds", "0"), "--seeds must be at least 1")


def test_paper_budgets_are_validated_and_the_paper_presets_give_every_run_one():
    budgets = {r.name: (r.paper_budget.steps, r.paper_budget.batch_size) for r in bench_spec.load_spec("imagenet64").run_list}
    assert budgets == {"edm": (610352, 4096), "cd": (600000, 2048), "ict": (800000, 4096), "ct": (800000, 2048)}
    assert all(r.paper_budget and r.paper_budget.source for r in bench_spec.load_spec("cifar10").run_list)
    with pytest.raises(Exception, match="paper_budget: needs both steps and batch_size"):
        bench_spec.load_spec("toy2d", ["bench.runs.cd.paper_budget={steps=10}"])
    with pytest.raises(Exception, match="paper_budget.batch_size must be positive"):
        bench_spec.load_spec("toy2d", ["bench.runs.cd.paper_budget={steps=10, batch_size=0}"])
    with pytest.raises(Exception, match="unknown key 'bench.runs.cd.paper_budget.iterations'"):
        bench_spec.load_spec("toy2d", ["bench.runs.cd.paper_budget={iterations=10}"])


def test_report_names_every_run_trained_from_a_teacher():
    from genkit_bench.report import teacher_cost_sentence

    builtin = {"runs": {"edm": {"method": "edm", "role": "teacher"}, "cd": {"method": "cd", "label": "CD", "teacher": "edm"}}}
    assert teacher_cost_sentence(builtin).startswith("CD is shown without and with (`incl. teacher`) its teacher's cost")
    plugin = {"runs": {**builtin["runs"], "ect": {"method": "ect", "label": "ECT", "teacher": "edm"}}}  # a plugin's method
    assert teacher_cost_sentence(plugin).startswith("CD and ECT are shown without and with (`incl. teacher`)")


# ----------------------------------------------------------------------------- the output folder


def test_the_bench_writes_only_into_a_folder_it_marked_as_its_own(tiny_preset, tmp_path):
    user = tmp_path / "user"  # a user's own report and results, not genkit's
    user.mkdir()
    (user / "report.md").write_text("my report\n")
    (user / "results.json").write_text("{}\n")
    result = invoke("bench", "run", "--preset", tiny_preset, "--out", user)
    assert_one_line_error(result, f"--out {user} holds files genkit bench did not write")
    assert (user / "report.md").read_text() == "my report\n" and (user / "results.json").read_text() == "{}\n"
    assert sorted(p.name for p in user.iterdir()) == ["report.md", "results.json"]  # nothing added either

    run = tmp_path / "run"  # a training run's folder: its curves.png must survive
    run.mkdir()
    for name in ("config.toml", "checkpoint.pt", "curves.png"):
        (run / name).write_text(name)
    assert_one_line_error(invoke("bench", "cd-vs-ict", "--preset", tiny_preset, "--out", run), "did not write")
    assert (run / "curves.png").read_text() == "curves.png"

    # a new folder, an empty one, and one the bench wrote before the marker existed are its own
    from genkit_bench.write import MARKER, claim

    claim(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    claim(tmp_path / "empty")
    older = tmp_path / "older"
    (older / "runs" / "seed0" / "ict").mkdir(parents=True)
    (older / "results.json").write_text("{}\n")
    claim(older)
    for folder in ("new", "empty", "older"):
        assert (tmp_path / folder / MARKER).is_file()
    (older / "notes.txt").write_text("mine")
    claim(older)  # marked: the bench's own from now on
    with pytest.raises(Exception, match="did not write"):
        claim(user)
    (tmp_path / "loose" / "runs" / "other").mkdir(parents=True)  # runs/ that is no bench's
    with pytest.raises(Exception, match="did not write"):
        claim(tmp_path / "loose")


def test_the_consistency_family_runs_every_method_at_one_budget_and_the_continuous_ones_sample_their_own_way(tmp_path):
    tiny = ["bench.steps=20", "bench.eval_samples=100", "bench.curve_every=0", "bench.search_samples=100", "bench.search_iterations=2"]
    spec = bench_spec.load_spec("consistency-family", tiny, seeds=1)
    assert [r.method for r in spec.run_list] == ["edm", "cd", "ict", "sct", "meanflow"]
    planned = bench_runner.plan(spec, tmp_path / "out", plugins.registries())
    assert {(p.config.train.steps, p.config.train.batch_size) for p in planned} == {(20, spec.batch_size)}
    assert next(p for p in planned if p.run.method == "meanflow").config.network.options.second_time
    results = bench_runner.run_bench(spec, tmp_path / "out", plugins.load())
    scored = {(run["method"], s["steps"]) for run in results["runs"] for s in run["scores"]}
    assert {("sct", 2), ("meanflow", 2), ("ict", 2)} <= scored  # no levels passed to samplers that take none


# ----------------------------------------------------------------------------- the table and the report


def _summary(*values):
    from genkit_bench.stats import summarize

    return summarize(values).to_dict()


def small_results(directions=None):
    """A results dictionary as the report reads it: fd_fmnist and precision/recall, one seed."""
    def row(label, role, steps, fd, precision, recall):
        return {
            "run": label.lower(), "label": label, "role": role, "steps": steps, "nfe": 35 if role == "teacher" else steps,
            "metrics": {"fd_fmnist": _summary(fd), "pr_fmnist/precision": _summary(precision), "pr_fmnist/recall": _summary(recall)},
            "train_time_s": _summary(20.4), "train_time_with_teacher_s": _summary(20.4),
            "train_nfe": _summary(2.5e8), "train_nfe_with_teacher": _summary(2.5e8),
        }  # fmt: skip

    return {
        "preset": "fmnist", "seeds": [0], "budget": {"steps": 600, "batch_size": 512},
        "evaluation": {"metric": "fd_fmnist", "samples": 10000}, "floor": {"fd_fmnist": 0.2261, "pr_fmnist/precision": 0.9213},
        "directions": directions if directions is not None else {"fd_fmnist": "lower", "pr_fmnist/precision": "higher", "pr_fmnist/recall": "higher"},
        "rows": [row("EDM", "teacher", 18, 15.43, 0.7312, 0.3218), row("iCT", "contender", 1, 30.61, 0.6523, 0.1234)],
    }  # fmt: skip


def test_the_table_printed_to_a_log_or_a_narrow_terminal_cuts_no_number_short():
    import io

    from rich.console import Console

    from genkit_bench.report import print_table, table_rows

    for terminal in (False, True):  # a log (rich assumes 80 columns) and an 80-column terminal
        console = Console(file=io.StringIO(), width=80, force_terminal=terminal, color_system=None)
        print_table(console, small_results())
        text = console.file.getvalue()
        assert "…" not in text, text
        if not terminal:  # whole cells, one row per line
            for cells in table_rows(small_results()):
                assert re.search(r"\s+".join(re.escape(c) for c in cells), text), (cells, text)
            assert "fd_fmnist ↓" in text and "pr_fmnist/precision ↑" in text and "pr_fmnist/recall ↑" in text


def test_arrows_follow_each_metrics_direction():
    from genkit_bench.report import markdown_table

    header = markdown_table(small_results()).splitlines()[0]
    assert "fd_fmnist ↓" in header and "pr_fmnist/precision ↑" in header and "pr_fmnist/recall ↑" in header
    older = markdown_table(small_results(directions={})).splitlines()[0]  # results.json from before directions
    assert "pr_fmnist/precision ↓" in older


def test_evaluators_declare_which_of_their_values_are_higher_is_better():
    from genkit_fid.evaluators import PrecisionRecallFMNIST
    from genkit_fid.fid import PrecisionRecallInception
    from genkit_toy.evaluators import SlicedWasserstein

    from genkit_bench.score import directions

    evaluators = {"pr_fmnist": PrecisionRecallFMNIST.__new__(PrecisionRecallFMNIST), "swd": SlicedWasserstein(None)}
    assert directions(evaluators, ["pr_fmnist/precision", "pr_fmnist/recall", "swd"]) == {
        "pr_fmnist/precision": "higher", "pr_fmnist/recall": "higher", "swd": "lower"
    }  # fmt: skip
    assert PrecisionRecallInception.higher_is_better == {"precision", "recall"}


def test_the_report_title_and_a_changed_budget_come_from_the_budget_that_ran():
    from genkit_bench.report import budget_change, report_title

    results = {
        **small_results(), "spec": {"title": "Fashion-MNIST 32x32 (fd_fmnist)"}, "machine": {"cuda": "NVIDIA H200", "cpu_count": 16},
        "preset_budget": {"steps": 400, "batch_size": 32, "seeds": 1},
    }  # fmt: skip
    assert report_title(results) == "genkit bench fmnist: Fashion-MNIST 32x32 (fd_fmnist), 600 steps x batch 512, 1 seed, on NVIDIA H200"
    assert "The preset sets 400 steps x batch 32, 1 seed(s); this run used 600 x 512, 1 seed(s)" in budget_change(results)
    assert budget_change({**results, "preset_budget": {"steps": 600, "batch_size": 512, "seeds": 1}}) == ""
    for name in bench_spec.preset_names():  # no preset title claims a size: the budget can be --set
        assert "CPU-sized" not in bench_spec.load_spec(name).title


def test_curve_seconds_are_exact_at_logged_steps_and_interpolated_between():
    from genkit_bench.score import elapsed_at

    clock = {50: 5.0, 100: 10.0, 150: 14.0}
    assert elapsed_at(clock, 100) == 10.0 and elapsed_at(clock, 25) == 2.5 and elapsed_at(clock, 125) == 12.0
    assert elapsed_at(clock, 200) is None


def test_fmnist_gpu_preset_is_one_budget_for_every_method_and_sized_to_eight_minutes(tmp_path):
    spec = bench_spec.load_spec("fmnist-gpu")
    assert spec.seeds == 3 and spec.curve_every and spec.level_search and spec.steps % spec.curve_every == 0
    planned = bench_runner.plan(spec, tmp_path, plugins.registries())
    assert {(p.config.train.steps, p.config.train.batch_size) for p in planned} == {(spec.steps, spec.batch_size)}
    assert all(spec.curve_every % p.config.train.log_every == 0 for p in planned)  # curve seconds read at logged steps
    training = spec.seeds * spec.steps * sum(spec.seconds_per_step[r.name] for r in spec.run_list)
    assert training + spec.seeds * (86 + 15) <= 8 * 60  # the preset's sum: training plus sampling and startup per seed
    from genkit_bench.plan import cost_estimate

    assert f"{training:.0f} s of training for 3 seeds" in cost_estimate(spec)


@pytest.mark.parametrize("preset", ["fmnist", "fmnist-gpu"])
def test_fmnist_presets_scale_cts_target_ema_to_the_budget(preset, tmp_path):
    """The paper's mu0 = 0.9 target lags runs of a few hundred steps: CT never started learning."""
    planned = bench_runner.plan(bench_spec.load_spec(preset), tmp_path, plugins.registries())
    ct = next(p for p in planned if p.run.name == "ct")
    assert ct.config.methods["ct"].mu0 == 0.0


def test_a_dry_run_says_not_runnable_when_the_data_is_not_on_disk(tmp_path):
    result = invoke("bench", "run", "--preset", "cifar10", "--dry-run", "--set", f"overrides.data.root='{tmp_path}'")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "not runnable here yet: every component is installed, but the data is not: CIFAR-10 not found" in text
    assert "the plan is runnable" not in text


@pytest.mark.slow
def test_the_gpu_preset_end_to_end_at_a_tiny_scale_has_searched_levels_curves_spread_and_arrows(tmp_path):
    """fmnist-gpu as it is (runs, metrics, level search, 3 steps, curves, 3 seeds cut to 2), only
    smaller: a few steps of a narrow network at batch 4, few samples."""
    out = tmp_path / "out"
    sets = [
        "steps=4", "batch_size=4", "seeds=2", "eval_samples=40", "curve_every=2", "curve_samples=20",
        "search_samples=20", "search_iterations=1", "overrides.network.channels=8", "overrides.sample.batch_size=40",
        "overrides.sample.heun_levels=3", "overrides.train.log_every=2", "overrides.train.checkpoint_every=2",
    ]  # fmt: skip
    result = invoke("bench", "run", "--preset", "fmnist-gpu", "--out", out, *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    consistency = [r for r in results["rows"] if r["role"] != "teacher"]
    # 1, 2 and 3 steps at each model's searched levels (2 per seed at 3 steps), and 2 steps at 0.821 apart
    assert {(r["steps"], r["levels_from"]) for r in consistency} == {(1, None), (2, "searched"), (3, "searched"), (2, "fixed")}
    assert all(len(levels) == 2 for r in consistency if r["steps"] == 3 for levels in r["levels"])
    assert "**Levels.** Each consistency model samples with its own intermediate levels (per seed" in report
    # spread over the two seeds in the table, and a band of it in the curves
    assert all(r["metrics"]["fd_fmnist"]["spread"] is not None for r in results["rows"])
    assert (out / "curves.png").is_file() and "During training (fd_fmnist of 1-step samples" in results["verdict"]["over_training"]
    assert results["verdict"]["over_training"] in report
    # arrows from the evaluators' directions: the distance down, precision and recall up
    assert "fd_fmnist ↓" in report and "pr_fmnist/precision ↑" in report and "pr_fmnist/recall ↑" in report
    assert report.startswith("# genkit bench fmnist-gpu: Fashion-MNIST 32x32 (fd_fmnist), the GPU preset, 4 steps x batch 4, 2 seeds, on ")
    # 4 steps teach nothing: every model no better than a baseline is named so in the report, and marked
    assert set(results["baselines"]) == {"data mean", "matched noise"}
    flagged = [r for r in results["rows"] if r["no_better_than"]]
    assert flagged and "† Not learning: on fd_fmnist, " in report
    assert all(f"| {r['label']}{bench_report.ROLE_NOTES[r['role']]} † | " in report for r in flagged)


def test_a_row_no_better_than_a_baseline_is_marked_not_learning():
    def row(mean):
        return {"metrics": {"fd": {"mean": mean}}}

    trivial = {"data mean": {"fd": 200.0}, "matched noise": {"fd": 300.0}}
    rows = [row(50.0), row(250.0), row(350.0), row(200.00001)]
    write.mark_not_learning(rows, trivial, "fd", higher=False)
    assert [r["no_better_than"] for r in rows] == [[], ["data mean"], ["data mean", "matched noise"], ["data mean"]]  # a tie beats nothing
    rows = [row(0.9), row(0.1)]
    write.mark_not_learning(rows, {"data mean": {"fd": 0.5}}, "fd", higher=True)  # precision-like: higher is better
    assert [r["no_better_than"] for r in rows] == [[], ["data mean"]]

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
    for row in results["rows"]:
        steps_cell = f"Heun {row['steps']} ({row['nfe']})" if row["role"] == "teacher" else f"{row['steps']} ({row['nfe']})"
        cells = lines_of_row(row["label"], steps_cell)
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
    assert pictures == ["cd-seed0-1nfe.png", "cd-seed0-2nfe.png", "ct-seed0-1nfe.png", "ct-seed0-2nfe.png",
                        "edm-seed0-11nfe.png", "ict-seed0-1nfe.png", "ict-seed0-2nfe.png"]  # fmt: skip

    # every method: 1 and 2 steps; the teacher at its own NFE (Heun on 6 levels: 11 evaluations)
    assert [(r["run"], r["steps"], r["nfe"]) for r in results["rows"]] == [
        ("edm", 6, 11), ("cd", 1, 1), ("cd", 2, 2), ("ict", 1, 1), ("ict", 2, 2), ("ct", 1, 1), ("ct", 2, 2)
    ]  # fmt: skip
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

    def printed_row(label, steps_cell):
        line = next(line for line in output_lines if re.match(rf"\s*{re.escape(label)}(\s+\(\w+\.?\))?\s+{re.escape(steps_cell)}\s", line))
        return line.split(steps_cell, 1)[1].split("  ")

    check_table_matches(results, printed_row)
    report = (out / "report.md").read_text()

    def report_row(label, steps_cell):
        line = next(line for line in report.splitlines() if line.startswith(f"| {label}") and f"| {steps_cell} |" in line)
        return line.split("|")[3:]

    check_table_matches(results, report_row)
    floor_line = next(line for line in output_lines if "data (floor)" in line)
    assert_close_to_printed_precision(numbers_in([floor_line.split("data (floor)")[1]]), [results["floor"]["swd"], results["floor"]["frechet2d"]])
    assert results["verdict"]["sentence"] in report
    assert results["verdict"]["sentence"].split(",")[0] in result.output
    assert "one seed and so no spread" in results["verdict"]["sentence"]
    assert "![metric against training step](curves.png)" in report and "pictures/ict-seed0-1nfe.png" in report

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
    spec = bench_spec.load_spec("consistency-family", ["bench.steps=20", "bench.eval_samples=100", "bench.curve_every=0"], seeds=1)
    assert [r.method for r in spec.run_list] == ["edm", "cd", "ict", "sct", "meanflow"]
    planned = bench_runner.plan(spec, tmp_path / "out", plugins.registries())
    assert {(p.config.train.steps, p.config.train.batch_size) for p in planned} == {(20, spec.batch_size)}
    assert next(p for p in planned if p.run.method == "meanflow").config.network.options.second_time
    results = bench_runner.run_bench(spec, tmp_path / "out", plugins.load())
    scored = {(run["method"], s["steps"]) for run in results["runs"] for s in run["scores"]}
    assert {("sct", 2), ("meanflow", 2), ("ict", 2)} <= scored  # no levels passed to samplers that take none

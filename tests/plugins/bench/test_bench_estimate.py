"""genkit bench run --dry-run --estimate: a few steps of each run timed here, scaled to the bench."""

import re
import tempfile
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from test_bench import invoke

from genkit_bench import estimate
from genkit_bench import spec as bench_spec
from genkit_bench.score import ScoringWork, scoring_work

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
SMALL_TOY = [  # the toy2d preset with a budget and scoring small enough to time in a second
    "steps=30", "eval_samples=100", "search_samples=50", "search_iterations=1", "curve_samples=50", "curve_every=10",
]


def sets(assignments):
    return [part for text in assignments for part in ("--set", text)]


@pytest.fixture
def estimate_folders(monkeypatch):
    """The temporary folders the estimate trained in, recorded so a test can see them gone."""
    made = []
    original = tempfile.TemporaryDirectory

    def recorded(*args, **kwargs):
        folder = original(*args, **kwargs)
        made.append(Path(folder.name))
        return folder

    monkeypatch.setattr(tempfile, "TemporaryDirectory", recorded)
    return made


def test_toy2d_estimate_times_every_run_prints_a_total_and_leaves_no_folder(estimate_folders, tmp_path):
    out = tmp_path / "out"
    result = invoke("bench", "run", "--preset", "toy2d", "--dry-run", "--estimate", "--estimate-steps", 1, "--out", out, *sets(SMALL_TOY))
    assert result.exit_code == 0, result.output
    text = result.output
    assert "estimate, measured on this machine (" in text
    for label in ("EDM", "CD", "iCT", "CT"):
        assert re.search(rf"^  {label}: training [\d.e-]+ s/step x 30 steps = ", text, re.M), text
    assert re.search(r"^  whole bench: training .+ \+ scoring .+ per seed, \+ the floor and baselines .+ once: .+ for 1 seed$", text, re.M), text
    assert "not timed" not in text
    assert len(estimate_folders) == 1 and not estimate_folders[0].exists() and not out.exists()


def test_estimate_goes_with_dry_run_in_one_process(monkeypatch):
    assert_one_line_error(invoke("bench", "run", "--preset", "toy2d", "--estimate"), "--estimate goes with --dry-run")
    assert_one_line_error(invoke("bench", "cd-vs-ict", "--estimate"), "--estimate goes with --dry-run")
    assert_one_line_error(invoke("bench", "run", "--preset", "toy2d", "--dry-run", "--estimate-steps", 2), "--estimate-steps goes with --estimate")
    assert_one_line_error(invoke("bench", "run", "--preset", "toy2d", "--dry-run", "--estimate", "--estimate-steps", 0), "at least 1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert_one_line_error(invoke("bench", "run", "--preset", "toy2d", "--dry-run", "--estimate"), "without torchrun")


def test_cifar10_estimate_names_the_missing_data_and_lists_the_papers_budgets(estimate_folders, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    result = invoke("bench", "run", "--preset", "cifar10", "--dry-run", "--estimate", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Traceback" not in text
    for label in ("EDM", "CD", "iCT", "CT"):
        assert re.search(rf"^  {label}: not timed: its data is not on disk: CIFAR-10 not found", text, re.M), text
    assert "whole bench: no estimate (no run could be timed here)" in text
    assert "papers' budgets (steps x batch)" in text
    for budget in ("EDM: 390625 x 512", "CD: 800000 x 512", "iCT: 400000 x 1024", "CT: 800000 x 512"):
        assert f"  {budget} (" in text and "no hours, the run could not be timed here" in text
    assert not any(folder.exists() for folder in estimate_folders) and not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.is_file(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fmnist_gpu_estimate_runs_on_this_cpu_with_a_small_batch(monkeypatch):
    """The issue's acceptance check: the GPU preset's estimate on a CPU, its batches shrunk by --set."""
    monkeypatch.setattr(estimate, "WARMUP_STEPS", 1)  # one warm-up step: a 32x32 U-Net is slow on 2 cores
    small = ["batch_size=4", "overrides.sample.batch_size=4", "curve_samples=16"]  # the metric is timed at the fewest samples scored
    result = invoke("bench", "run", "--preset", "fmnist-gpu", "--dry-run", "--estimate", "--estimate-steps", 1, *sets(small))
    assert result.exit_code == 0, result.output
    spec = bench_spec.load_spec("fmnist-gpu")
    for label in ("EDM", "CD", "iCT", "CT"):
        line = rf"^  {label}: training [\d.e-]+ s/step x {spec.steps} steps = .+ for {spec.seeds} seeds$"
        assert re.search(line, result.output, re.M), result.output
    assert "whole bench: training" in result.output and "not timed" not in result.output


def test_scoring_counts_the_final_scores_the_level_search_and_the_curve_points():
    spec = bench_spec.load_spec("toy2d")  # 20k scored samples, 5k per search point, 12 ternary steps, curves every 1500 of 9000

    class Heun:  # EDM's sampler: 2N - 1 evaluations on N levels, 18 by default
        takes_levels = False
        sampling_evaluations = staticmethod(lambda steps: 2 * (steps or 18) - 1)
        default_sampling_steps = staticmethod(lambda: 18)

    class Consistency:
        takes_levels = True
        sampling_evaluations = staticmethod(lambda steps: steps or 1)
        default_sampling_steps = staticmethod(lambda: 1)

    assert scoring_work(spec, spec.run("edm"), Heun()) == {
        "final": ScoringWork(1, 20000, 20000 * 35), "curves": ScoringWork(6, 10000, 6 * 10000 * 35)
    }
    assert scoring_work(spec, spec.run("ict"), Consistency()) == {
        "final": ScoringWork(3, 20000, 20000 * (1 + 2 + 2)),  # 2 steps again at the fixed level, beside the searched one
        "search": ScoringWork(1 + 25, 5000, 5000 * (1 + 25 * 2), every_metric=False),  # the 1-step point, 2 x 12 + 1 at 2 steps
        "curves": ScoringWork(6, 10000, 6 * 10000),
    }


def test_papers_budgets_scale_the_measured_step_linearly_to_the_papers_batch():
    spec = bench_spec.load_spec("toy2d", ["bench.batch_size=256", "bench.runs.ict.paper_budget={steps=400000, batch_size=1024, source=\"iCT\"}"])
    metric = estimate.MetricTiming(samples=100, every_s=0.5, search_s=0.25)
    timed = estimate.RunTiming(spec.run("ict"), device="a test GPU", step_s=0.009, work={"final": ScoringWork(2, 400, 1)}, metric=metric)
    untimed = estimate.RunTiming(spec.run("cd"), problem="not here")
    lines = estimate.estimate_lines(spec, [timed, untimed])
    assert timed.metric_s == 2 * 0.5 * 400 / 100  # two calls of every metric on 4 x the samples timed
    hours = 400000 * 0.009 * 1024 / 256 / 3600  # 4 hours
    assert f"  iCT: 400000 x 1024 (iCT): {hours:.3g} hours on a test GPU" in lines
    assert any(line.startswith("  whole bench (1 of 2 runs: the others could not be timed)") for line in lines)
    assert "  CD: not timed: not here; the preset gives no seconds_per_step" in lines


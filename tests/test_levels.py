"""Multistep levels: the pure greedy ternary search, --levels as numbers or 'search' (cached in the
run folder), and bench.levels for benches scored at more than two steps."""

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import genkit
from genkit import plugins
from genkit.cli.main import build_app
from genkit.errors import GenkitError
from genkit.evaluation import levels as levels_module
from genkit.evaluation.levels import check_levels, greedy_levels, parse_levels, ternary_search

from conftest import assert_one_line_error, trained_tiny_run
from test_bench import TINY_BENCH

from genkit_bench import runner as bench_runner
from genkit_bench import spec as bench_spec

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def invoke(*args):
    return CliRunner().invoke(build_app(), [str(a) for a in args], env={"COLUMNS": "250"})


# ----------------------------------------------------------------------------- the pure search


def test_ternary_search_finds_the_minimum_on_a_log_scale():
    calls = []

    def objective(tau):
        calls.append(tau)
        return (math.log(tau) - math.log(1.3)) ** 2

    tau, value = ternary_search(objective, SIGMA_MIN, SIGMA_MAX, iterations=20)
    assert tau == pytest.approx(1.3, rel=2e-3) and value < 1e-5
    assert len(calls) == 2 * 20 + 1 and all(SIGMA_MIN < t < SIGMA_MAX for t in calls)
    # 12 iterations (the default) shrink ln(80 / 0.002) = 10.6 to 0.08: the level to within ~4%
    assert ternary_search(objective, SIGMA_MIN, SIGMA_MAX, iterations=12)[0] == pytest.approx(1.3, rel=0.05)


def test_ternary_search_on_a_linear_scale_and_with_non_finite_values():
    tau, _ = ternary_search(lambda t: (t - 2.5) ** 2, 0.0, 10.0, iterations=30, log=False)
    assert tau == pytest.approx(2.5, abs=1e-3)
    # NaN where samples diverge (above 10) loses to every number: the search stays below
    tau, _ = ternary_search(lambda t: math.nan if t > 10 else -t, SIGMA_MIN, SIGMA_MAX, iterations=20)
    assert tau == pytest.approx(10, rel=0.01) and tau <= 10
    with pytest.raises(ValueError, match="low < high"):
        ternary_search(lambda t: t, 2.0, 1.0)
    with pytest.raises(ValueError, match="low > 0"):
        ternary_search(lambda t: t, 0.0, 1.0)


def known_optimum(levels):
    """Best at (1.3, 0.4), one level at a time: the greedy search can find it."""
    targets = [1.3, 0.4, 0.05]
    return sum((math.log(t) - math.log(best)) ** 2 for t, best in zip(levels, targets)) - 0.1 * len(levels)


def test_greedy_levels_finds_a_known_optimum_one_level_at_a_time():
    found = []
    levels, values = greedy_levels(known_optimum, 3, SIGMA_MIN, SIGMA_MAX, iterations=20, on_level=lambda *a: found.append(a))
    assert levels == pytest.approx([1.3, 0.4], rel=5e-3)
    assert values == pytest.approx([-0.1, -0.2], abs=1e-4)
    assert [(i, round(t, 2)) for i, t, _ in found] == [(1, 1.3), (2, 0.4)]
    assert greedy_levels(known_optimum, 1, SIGMA_MIN, SIGMA_MAX)[0] == []

    # a later level is searched below the one before it: with the first fixed at 0.5, the second
    # cannot reach 1.3 or above; continuing from fixed levels searches only the new ones
    calls = []

    def counted(levels):
        calls.append(list(levels))
        return known_optimum(levels)

    levels, values = greedy_levels(counted, 4, SIGMA_MIN, SIGMA_MAX, iterations=10, fixed=[1.3, 0.4])
    assert levels[:2] == [1.3, 0.4] and levels[2] == pytest.approx(0.05, rel=0.05) and values[:2] == [None, None]
    assert len(calls) == 21 and all(c[:2] == [1.3, 0.4] and c[2] < 0.4 for c in calls)


def test_explicit_levels_are_checked():
    assert check_levels([1.3, 0.4], SIGMA_MIN, SIGMA_MAX, steps=3) == [1.3, 0.4]
    assert parse_levels("1.3,0.4") == [1.3, 0.4] and parse_levels(" Search ") == "search"
    for levels, steps, message in [
        ([0.4, 1.3], None, "must descend"),
        ([0.4, 0.4], None, "must descend"),
        ([100.0, 0.4], None, "between noise.sigma_min and noise.sigma_max"),
        ([0.4, 0.001], None, "between noise.sigma_min"),
        ([math.nan], None, "between noise.sigma_min"),
        ([1.3, 0.4], 4, "4-step sampling takes 3 intermediate level(s), got 2"),
        ([1.3, 0.4], 2, "2-step sampling takes 1"),
        ([], None, "at least one"),
    ]:
        with pytest.raises(GenkitError, match=None) as error:
            check_levels(levels, SIGMA_MIN, SIGMA_MAX, steps)
        assert message in str(error.value)
    with pytest.raises(GenkitError, match="`levels` takes descending numbers"):
        parse_levels("1.3;0.4")


# ----------------------------------------------------------------------------- on a trained run


def train_tiny(tmp_path_factory, method: str, steps: int):
    """A run of the tiny toy2d config in a folder of its own."""
    return trained_tiny_run(plugins.registries(), tmp_path_factory.mktemp("levels") / method, method, steps)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """iCT on toy2d, 20 steps of the tiny config (the same for every test of this module)."""
    return train_tiny(tmp_path_factory, "ict", 20)


@pytest.fixture(scope="module")
def edm_run(tmp_path_factory):
    return train_tiny(tmp_path_factory, "edm", 3)


def test_levels_give_the_samples_of_multistep_sigmas_set_to_them(toy_run, tmp_path):
    result = invoke("sample", toy_run, "--steps", "3", "--levels", "1.3,0.4", "--num", "100", "--no-evaluate", "--out", tmp_path / "a.npz")
    assert result.exit_code == 0, result.output
    saved = np.load(tmp_path / "a.npz")
    assert int(saved["steps"]) == 3 and int(saved["evaluations"]) == 3 and saved["levels"].tolist() == [1.3, 0.4]

    model = genkit.load(toy_run)
    method = model.trained.built.method
    default = model.sample(100, steps=2)
    method.sample_config.multistep_sigmas = [1.3, 0.4]
    expected = model.sample(100, steps=3)
    np.testing.assert_array_equal(saved["samples"], expected.numpy())
    # --steps may be left out (len(levels) + 1); the API gives the same; other levels, other samples
    again = invoke("sample", toy_run, "--levels", "1.3,0.4", "--num", "100", "--no-evaluate", "--out", tmp_path / "b.npz")
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(np.load(tmp_path / "b.npz")["samples"], expected.numpy())
    method.sample_config.multistep_sigmas = [0.821]
    assert torch.equal(model.sample(100, levels=[1.3, 0.4]), expected)
    assert not torch.equal(model.sample(100, levels=[0.5]), default)
    assert set(model.evaluate(num=100, levels=[1.3, 0.4])) == {"swd", "frechet2d"}
    # the default file name says which levels made the samples
    named = invoke("sample", toy_run, "--levels", "1.3,0.4", "--num", "20", "--no-evaluate")
    assert named.exit_code == 0 and (toy_run / "samples" / "3step-levels1.3-0.4-seed0.npz").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--levels", "0.4,1.3"], "levels must descend"),
        (["--levels", "100,0.4"], "between noise.sigma_min and noise.sigma_max (0.002, 80.0), got 100"),
        (["--levels", "1.3,0.001"], "got 0.001"),
        (["--steps", "4", "--levels", "1.3,0.4"], "4-step sampling takes 3 intermediate level(s), got 2"),
        (["--steps", "1", "--levels", "1.3"], "1-step sampling takes 0"),
        (["--levels", "a,b"], "--levels takes descending numbers"),
        (["--levels", "search"], "give --steps 2 or more"),
        (["--steps", "2", "--levels", "search", "--metric", "nope"], "--metric 'nope' is not one of this run's evaluators (swd, frechet2d)"),
        (["--steps", "2", "--levels", "search", "--search-samples", "1"], "--search-samples must be at least 2"),
        (["--steps", "2", "--metric", "swd"], "add --levels search"),
    ],
)
def test_bad_levels_are_one_line_errors(toy_run, args, message):
    assert_one_line_error(invoke("sample", toy_run, "--num", "10", "--no-evaluate", *args), message)


def test_edm_takes_no_levels(edm_run):
    message = "levels apply to consistency sampling; method 'edm' samples with EDM's Heun sampler, whose steps count its noise levels"
    assert_one_line_error(invoke("sample", edm_run, "--levels", "1.3,0.4", "--num", "10"), message)
    assert_one_line_error(invoke("sample", edm_run, "--steps", "3", "--levels", "search", "--num", "10"), message)
    with pytest.raises(GenkitError, match=message):
        genkit.load(edm_run).sample(10, levels=[1.0])


def test_search_without_an_evaluator_is_a_one_line_error(toy_run, monkeypatch):
    monkeypatch.setattr(levels_module, "build_evaluators", lambda built: {})
    assert_one_line_error(
        invoke("sample", toy_run, "--steps", "2", "--levels", "search", "--num", "10", "--no-evaluate"), "this run has no evaluator"
    )


def test_search_finds_descending_levels_caches_them_and_reuses_them(toy_run, monkeypatch):
    calls = []
    real = levels_module.levels_objective

    def counting(model, evaluator, num, *seed):
        objective = real(model, evaluator, num, *seed)

        def counted(levels):
            calls.append(list(levels))
            return objective(levels)

        return counted

    monkeypatch.setattr(levels_module, "levels_objective", counting)
    cache = toy_run / "levels.json"
    cache.unlink(missing_ok=True)
    flags = ["--search-samples", "300", "--search-iterations", "4", "--num", "50", "--no-evaluate"]

    first = invoke("sample", toy_run, "--steps", "3", "--levels", "search", *flags)
    assert first.exit_code == 0, first.output
    assert len(calls) == 1 + 2 * (2 * 4 + 1)  # the 1-step score, then 9 per level
    entry = json.loads(cache.read_text())["searches"][0]
    levels = entry["levels"]
    assert len(levels) == 2 and SIGMA_MAX > levels[0] > levels[1] > SIGMA_MIN
    assert entry["settings"]["checkpoint_step"] == 20 and entry["settings"]["metric"] == "swd" and entry["settings"]["scale"] == "log"
    assert len(entry["values"]) == 2 and all(v > 0 for v in entry["values"])
    assert f"level 1: {levels[0]:.6g}" in first.output and f"level 2: {levels[1]:.6g}" in first.output
    assert "3 steps: swd" in first.output
    samples = np.load(toy_run / "samples" / f"3step-levels{levels[0]:.4g}-{levels[1]:.4g}-seed0.npz")
    assert samples["levels"].tolist() == levels

    # the same search again: read, not searched; fewer steps use its first levels
    calls.clear()
    second = invoke("sample", toy_run, "--steps", "3", "--levels", "search", *flags)
    assert second.exit_code == 0, second.output
    assert calls == [] and "read from" in second.output and f"level 2: {levels[1]:.6g}" in second.output
    assert invoke("sample", toy_run, "--steps", "2", "--levels", "search", *flags).exit_code == 0 and calls == []

    # more steps continue the cached search: only the new level is searched, below the last
    third = invoke("sample", toy_run, "--steps", "4", "--levels", "search", *flags)
    assert third.exit_code == 0, third.output
    assert len(calls) == 2 * 4 + 1 and all(c[:2] == levels and c[2] < levels[1] for c in calls)
    searches = json.loads(cache.read_text())["searches"]
    assert len(searches) == 1 and searches[0]["levels"][:2] == levels and len(searches[0]["levels"]) == 3

    # other settings: a search of their own, kept beside the first
    calls.clear()
    other = invoke("sample", toy_run, "--steps", "2", "--levels", "search", "--metric", "frechet2d", *flags)
    assert other.exit_code == 0, other.output
    assert len(calls) == 1 + 2 * 4 + 1 and len(json.loads(cache.read_text())["searches"]) == 2


# ----------------------------------------------------------------------------- the bench


def tiny_bench(tmp_path, *assignments):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_BENCH)
    spec = bench_spec.load_spec(str(path), ["bench.runs.cd.role=reference", "bench.compare=['ict', 'ct']", "bench.level_search=false", *assignments])
    spec.run_list = [r for r in spec.run_list if r.name in ("ict", "ct")]  # no teacher needed
    return spec


def test_bench_levels_replace_two_step_sigma(tmp_path):
    spec = tiny_bench(tmp_path)
    assert spec.levels == [0.821] and spec.two_step_sigma == 0.821  # the default
    spec = tiny_bench(tmp_path, "bench.two_step_sigma=1.5", "bench.runs.ct.two_step_sigma=1.9")
    assert spec.levels == [1.5] and spec.run_levels(spec.run("ct")) == [1.9] and spec.run_levels(spec.run("ict")) == [1.5]
    for preset in ("toy2d", "cifar10", "imagenet64"):
        loaded = bench_spec.load_spec(preset)
        assert loaded.sampling_steps == [1, 2] and len(loaded.levels) == 1 and loaded.two_step_sigma == loaded.levels[0]
    imagenet = bench_spec.load_spec("imagenet64")
    assert [imagenet.run_levels(imagenet.run(n)) for n in ("cd", "ict", "ct")] == [[1.382], [1.526], [1.913]]

    for assignments, message in [
        (["bench.sampling_steps=[1, 2, 3]"], "bench.sampling_steps asks 3 steps, which take 2 levels; bench.levels gives 1"),
        (["bench.sampling_steps=[1, 2, 3]", "bench.levels=[0.8, 0.2]", "bench.runs.ct.two_step_sigma=1.9"], "bench.runs.ct.two_step_sigma gives 1"),
        (["bench.levels=[0.2, 0.8]"], "bench.levels must descend"),
        (["bench.runs.ict.levels=[0.5, 0.5]"], "bench.runs.ict.levels must descend"),
        (["bench.levels=[0.8]", "bench.two_step_sigma=0.8"], "sets both levels and two_step_sigma"),
        (["bench.sampling_steps=[0, 1]"], "bench.sampling_steps must list different step counts of 1 or more"),
        (["bench.sampling_steps=[2, 2]"], "bench.sampling_steps must list different"),
    ]:
        with pytest.raises(GenkitError) as error:
            tiny_bench(tmp_path, *assignments)
        assert message in str(error.value)


def test_a_bench_scores_three_steps_with_its_levels(tmp_path):
    out = tmp_path / "out"
    spec = tiny_bench(tmp_path, "bench.sampling_steps=[1, 2]", "bench.levels=[0.821, 0.2]", "bench.curve_every=0")
    registries = plugins.registries()
    planned = bench_runner.plan(spec, out, registries)
    assert {tuple(p.config.sample.multistep_sigmas) for p in planned} == {(0.821,)}  # 2 steps: as before levels
    first = bench_runner.run_bench(spec, out, plugins.load())
    assert [(r["run"], r["steps"]) for r in first["rows"]] == [("ict", 1), ("ict", 2), ("ct", 1), ("ct", 2)]

    # the same folder asked for 3 steps: nothing is trained again, the 3-step scores are added
    spec = tiny_bench(tmp_path, "bench.sampling_steps=[1, 2, 3]", "bench.levels=[0.821, 0.2]", "bench.curve_every=0")
    planned = {p.run.name: p for p in bench_runner.plan(spec, out, registries)}
    assert planned["ict"].config.sample.multistep_sigmas == [0.821, 0.2]
    checkpoint = planned["ict"].folder / "checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    results = bench_runner.run_bench(spec, out, plugins.load())
    assert checkpoint.stat().st_mtime_ns == before
    assert [(r["run"], r["steps"], r["nfe"]) for r in results["rows"]] == [
        ("ict", 1, 1), ("ict", 2, 2), ("ict", 3, 3), ("ct", 1, 1), ("ct", 2, 2), ("ct", 3, 3)
    ]  # fmt: skip
    assert results["evaluation"]["levels"] == [0.821, 0.2] and results["evaluation"]["two_step_sigma"] == 0.821
    assert [c["steps"] for c in results["verdict"]["comparisons"]] == [1, 2, 3] and "at 3 steps" in results["verdict"]["sentence"]
    by_steps = {s["steps"]: s for s in next(r for r in results["runs"] if r["name"] == "ict")["scores"]}
    assert by_steps[1]["scores"] == first["runs"][0]["scores"][0]["scores"]  # unchanged where nothing changed
    assert (out / by_steps[3]["picture"]).is_file()

    # the 3-step score is that of samples through the levels 0.821 and 0.2
    model = genkit.load(planned["ict"].folder)
    assert model.config.sample.multistep_sigmas == [0.821, 0.2]
    from genkit.evaluation import build_evaluators, reference_data, score

    samples = model.sample(spec.eval_samples, steps=3, seed=0, levels=[0.821, 0.2])
    expected = score(samples, reference_data(model.trained.built.dataset, spec.eval_samples), build_evaluators(model.trained.built))
    assert by_steps[3]["scores"] == pytest.approx(expected)

    from genkit_bench import report

    report.write_report(results, out, None)
    assert "first k - 1 of the intermediate noise levels 0.821, 0.2" in (out / "report.md").read_text()

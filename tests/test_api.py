"""The Python API: the example in docs/api.md runs as written."""

import re
from pathlib import Path

import pytest

import genkit
from genkit.errors import GenkitError

DOC = Path(__file__).parent.parent / "docs" / "api.md"


def test_the_documented_example_runs(tmp_path, monkeypatch):
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})
    assert (tmp_path / "runs" / "api-example" / "checkpoint.pt").is_file()
    assert genkit.load(tmp_path / "runs" / "api-example").step == 400


def test_train_refuses_a_folder_that_holds_a_run_and_bad_keys(tmp_path):
    genkit.train("toy2d", out=tmp_path / "run", steps=4, network__width=16, network__depth=1, train__batch_size=32)
    with pytest.raises(GenkitError, match="already holds a run"):
        genkit.train("toy2d", out=tmp_path / "run", steps=4)
    with pytest.raises(GenkitError, match=r"unknown key 'train.learning_rate' \(genkit.train\(train__learning_rate=...\)\)"):
        genkit.train("toy2d", out=tmp_path / "other", train__learning_rate=1e-3)


def test_evaluate_scores_against_held_out_data_and_adds_the_floor(tmp_path):
    from genkit.evaluation import build_evaluators, data_floor, reference_data, score

    model = genkit.train("toy2d", out=tmp_path / "run", steps=4, network__width=16, network__depth=1, train__batch_size=32)
    scores = model.evaluate(num=300, steps=1, floor=True)
    built = model.trained.built
    evaluators = build_evaluators(built)
    expected = score(model.sample(300, steps=1), reference_data(built.dataset, 300), evaluators)
    floor = data_floor(built.dataset, evaluators, 300)
    assert scores == pytest.approx({**expected, **{f"{name}/floor": value for name, value in floor.items()}})
    assert model.evaluate(num=300, steps=1) == pytest.approx(expected)

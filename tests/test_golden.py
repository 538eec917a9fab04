"""Every built-in method's default recipe trains to the reference weights of
tests/data/golden/make.py (whose docstring says when they were written and why)."""

import sys
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "data" / "golden"
sys.path.insert(0, str(GOLDEN))
from make import golden_weights  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return golden_weights(tmp_path_factory.mktemp("golden"), cd_teacher_flag="methods.cd.teacher.run")


@pytest.mark.parametrize("method", ["edm", "ict", "ct", "cd"])
def test_default_recipe_gives_the_reference_weights(trained, method):
    reference = torch.load(GOLDEN / f"{method}.pt", weights_only=True)
    for part in ("model", "ema"):
        assert reference[part].keys() == trained[method][part].keys()
        for key, expected in reference[part].items():
            # bit-identical on the machine that wrote the reference; another CPU may round differently
            torch.testing.assert_close(trained[method][part][key], expected, rtol=1e-5, atol=1e-6, msg=f"{part}.{key}")

"""Spec section 6: every iCT formula, pinned with values computed here independently."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from genkit.errors import GenkitError
from genkit.maths import karras_sigmas
from genkit.methods.consistency import draw_indices, inverse_gap_weighting
from genkit_consistency.curricula import DoublingCurriculum
from genkit_consistency.schedules import LognormalIndices
from genkit_losses.metrics import PseudoHuber, pseudo_huber

from conftest import build_for_training


def doubling(s0, s1, total):
    return DoublingCurriculum(DoublingCurriculum.Config(s0, s1), SimpleNamespace(total_steps=total))


@pytest.mark.parametrize(
    "step, expected",
    [(0, 11), (49_999, 11), (50_000, 21), (100_000, 41), (150_000, 81), (300_000, 641), (350_000, 1281), (400_000, 1281)],
)
def test_doubling_curriculum_on_cifar10_settings(step, expected):
    # K = 400k, s0 = 10, s1 = 1280: K' = floor(400k / (log2(128) + 1)) = 50k.
    assert doubling(10, 1280, 400_000).num_levels(step) == expected


def test_doubling_curriculum_when_s1_over_s0_is_not_a_power_of_two():
    # s1 / s0 = 15: K' = floor(1000 / (log2(15) + 1)) = floor(1000 / 4.9069) = 203
    curriculum = doubling(10, 150, 1000)
    assert curriculum.stage_length == 203
    assert [curriculum.num_levels(k) for k in (0, 202, 203, 406, 609, 812, 999)] == [11, 11, 21, 41, 81, 151, 151]


def test_doubling_curriculum_stage_length_is_at_least_one_on_short_runs():
    curriculum = doubling(10, 1280, 3)  # K / 8 rounds down to 0
    assert curriculum.stage_length == 1
    assert [curriculum.num_levels(k) for k in range(9)] == [11, 21, 41, 81, 161, 321, 641, 1281, 1281]


def test_doubling_curriculum_rejects_nonsense():
    with pytest.raises(ValueError, match=r"s1 \(5\) must not be smaller than s0 \(10\)"):
        doubling(10, 5, 100)
    with pytest.raises(GenkitError, match="K"):
        doubling(10, 1280, 0)


def test_lognormal_index_probabilities_match_erf_formula():
    sigmas = karras_sigmas(11)
    p = LognormalIndices().index_probabilities(sigmas)

    def cdf(s):
        return math.erf((math.log(s) + 1.1) / (math.sqrt(2) * 2.0))

    raw = [cdf(sigmas[i + 1].item()) - cdf(sigmas[i].item()) for i in range(10)]
    expected = torch.tensor([r / sum(raw) for r in raw], dtype=torch.float64)
    assert len(p) == 10
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(p, expected)
    assert torch.all(p > 0)


def test_drawn_indices_follow_the_probabilities():
    p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    torch.manual_seed(0)
    counts = torch.bincount(draw_indices(p, 20_000), minlength=3).double() / 20_000
    torch.testing.assert_close(counts, p, atol=0.015, rtol=0)


def test_pseudo_huber_hand_computed_case():
    a = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    b = torch.zeros(2, 2)
    # ||a - b|| = 5 and 0, c = 0.1: sqrt(25 + 0.01) - 0.1 and sqrt(0.01) - 0.1 = 0
    torch.testing.assert_close(pseudo_huber(a, b, 0.1), torch.tensor([math.sqrt(25.01) - 0.1, 0.0]))


def test_pseudo_huber_is_over_the_whole_vector_with_c_from_dimension():
    metric = PseudoHuber()
    a, b = torch.ones(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    c = 0.00054 * math.sqrt(3072)
    assert c == pytest.approx(0.0299, abs=1e-4)
    assert metric(a, b).item() == pytest.approx(math.sqrt(3072 + c**2) - c, rel=1e-6)
    per_element_mean = math.sqrt(1 + c**2) - c  # the known bug
    assert metric(a, b).item() != pytest.approx(per_element_mean, rel=1e-3)


def test_inverse_gap_weighting():
    hi, lo = torch.tensor([0.5, 10.0]), torch.tensor([0.25, 8.0])
    torch.testing.assert_close(inverse_gap_weighting(hi, lo), torch.tensor([4.0, 0.5]))


class DropoutRecorder(nn.Module):
    """Records the dropout mask of every call; the output depends on it."""

    def __init__(self):
        super().__init__()
        self.dropout = nn.Dropout(0.5)
        self.masks = []

    def forward(self, x, c_noise):
        mask = self.dropout(torch.ones_like(x))
        self.masks.append(mask.clone())
        return x * mask


def test_ict_teacher_is_the_student_under_stopgrad_with_shared_dropout(tiny_config, registries):
    built = build_for_training(tiny_config("ict"), registries)
    method = built.method
    method.model.net = DropoutRecorder()
    method.model.train()
    assert method.target is None  # no EMA teacher
    x = torch.randn(16, 2)
    loss, logs = method.loss(x, step=1)
    student_mask, teacher_mask = method.model.net.masks
    assert torch.equal(student_mask, teacher_mask)
    assert 0 < student_mask.mean() < 1  # dropout really was active
    assert torch.isfinite(loss)
    assert logs["num_levels"] == 11


def test_ict_loss_equals_hand_assembled_loss(tiny_config, registries):
    built = build_for_training(tiny_config("ict", steps=400), registries)
    method = built.method
    x = torch.randn(32, 2)
    torch.manual_seed(5)
    loss, logs = method.loss(x, step=123)

    torch.manual_seed(5)
    n = method.curriculum.num_levels(123)
    sigmas = karras_sigmas(n)
    index = draw_indices(LognormalIndices().index_probabilities(sigmas), 32)
    hi, lo = sigmas[index + 1].float(), sigmas[index].float()
    z = torch.randn_like(x)
    with torch.no_grad():
        student = method.model(x + hi[:, None] * z, hi)
        teacher = method.model(x + lo[:, None] * z, lo)
    c = 0.00054 * math.sqrt(2)
    distance = ((student - teacher).pow(2).sum(1) + c**2).sqrt() - c
    expected = (distance / (hi - lo)).mean()
    assert n == logs["num_levels"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_ict_gradient_flows_only_through_the_student(tiny_config, registries):
    method = build_for_training(tiny_config("ict"), registries).method
    x = torch.randn(8, 2)
    torch.manual_seed(1)
    method.loss(x, step=1)[0].backward()
    grads = [p.grad.clone() for p in method.model.parameters()]

    method.zero_grad()
    torch.manual_seed(1)
    sigmas = karras_sigmas(method.curriculum.num_levels(1))
    index = draw_indices(LognormalIndices().index_probabilities(sigmas), 8)
    hi, lo = sigmas[index + 1].float(), sigmas[index].float()
    z = torch.randn_like(x)
    student = method.model(x + hi[:, None] * z, hi)
    teacher = method.model(x + lo[:, None] * z, lo).detach()
    c = 0.00054 * math.sqrt(2)
    (((((student - teacher) ** 2).sum(1) + c**2).sqrt() - c) / (hi - lo)).mean().backward()
    for got, expected in zip(grads, (p.grad for p in method.model.parameters())):
        torch.testing.assert_close(got, expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_shared_dropout_masks_on_cuda(tiny_config, registries):
    # dropout on the GPU draws from the CUDA generator: the replay must restore that one too
    built = build_for_training(tiny_config("ict", extra=["train.device='cuda'"]), registries)
    method = built.method
    method.model.net = DropoutRecorder().cuda()
    method.model.train()
    method.loss(torch.randn(16, 2, device="cuda"), step=0)
    student_mask, teacher_mask = method.model.net.masks
    assert student_mask.is_cuda and torch.equal(student_mask, teacher_mask)

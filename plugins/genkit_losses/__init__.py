"""Built-in metrics d(a, b) between batches, one value per sample."""

from genkit.hookspecs import hookimpl
from genkit_losses.lpips_metric import LPIPS
from genkit_losses.metrics import L1, L2, PseudoHuber


@hookimpl
def register_losses(register):
    register("l2", L2)
    register("l1", L1)
    register("pseudo-huber", PseudoHuber)
    register("lpips", LPIPS)

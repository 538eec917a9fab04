"""Sample-quality evaluators in learned feature spaces: FID through clean-fid, and an offline
Fashion-MNIST Frechet distance with precision and recall in a small classifier's features."""

from genkit.hookspecs import hookimpl
from genkit_fid.evaluators import FrechetFMNIST, PrecisionRecallFMNIST
from genkit_fid.fid import FID, PrecisionRecallInception


@hookimpl
def register_evaluators(register):
    register("fid", FID)
    register("pr_inception", PrecisionRecallInception)
    register("fd_fmnist", FrechetFMNIST)
    register("pr_fmnist", PrecisionRecallFMNIST)

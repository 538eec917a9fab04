"""Training loggers, chosen by ``train.loggers``: TensorBoard event files in RUN/tensorboard, and
Weights & Biases runs (the optional ``wandb`` package)."""

from genkit.hookspecs import hookimpl
from genkit_loggers.tensorboard import TensorBoard
from genkit_loggers.wandb_logger import WandB


@hookimpl
def register_loggers(register):
    register("tensorboard", TensorBoard)
    register("wandb", WandB)

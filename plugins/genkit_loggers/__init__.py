"""Training loggers, chosen by ``train.loggers``: TensorBoard event files in RUN/tensorboard."""

from genkit.hookspecs import hookimpl
from genkit_loggers.tensorboard import TensorBoard


@hookimpl
def register_loggers(register):
    register("tensorboard", TensorBoard)

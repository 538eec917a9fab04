"""Zero-shot editing with a trained consistency model (Song et al. 2023, Algorithm 4): inpaint,
colorize, superres, stroke, interpolate and denoise, as registered editing tasks, the command
``genkit edit RUN --task ...`` and the function :func:`edit`.

    import genkit, genkit_edit
    result = genkit_edit.edit(genkit.load("runs/ict-fmnist"), "inpaint", "pictures/", mask_name="left-half")
    result.save("edits/")
"""

from genkit.hookspecs import hookimpl
from genkit.kinds import Kind

from genkit_edit.api import EditResult, edit
from genkit_edit.tasks import TASKS, EditTask

__all__ = ["EditResult", "EditTask", "edit"]

# The kind this plugin owns: other plugins add editing tasks through ``register_edit_tasks``.
genkit_kinds = (
    Kind(
        "edit_tasks", "editing task",
        "Zero-shot editing tasks: which part of the data is known and how it is put back after each "
        "denoising step of the multistep sampler (Song et al. 2023, Algorithm 4). Each follows "
        "``genkit_edit.EditTask``.",
    ),
)


@hookimpl
def register_edit_tasks(register):
    for name, factory in TASKS.items():
        register(name, factory)


@hookimpl
def register_commands(cli):
    from genkit_edit.cli import edit_command

    cli.command("edit")(edit_command)

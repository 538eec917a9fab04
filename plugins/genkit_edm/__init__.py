"""EDM (Karras et al., 2022): the diffusion teacher, its Heun sampler, and the Heun teacher for CD."""

from genkit.hookspecs import hookimpl
from genkit_edm.method import EDM
from genkit_edm.teacher import EDMHeunTeacher


@hookimpl
def register_methods(register):
    register("edm", EDM)


@hookimpl
def register_teachers(register):
    register("edm-heun", EDMHeunTeacher)

"""Parts that consistency methods share: curricula, index schedules and the data teacher."""

from genkit.hookspecs import hookimpl
from genkit_consistency.curricula import ConstantCurriculum, DoublingCurriculum, SquareRootCurriculum
from genkit_consistency.schedules import LognormalIndices, UniformIndices
from genkit_consistency.teachers import DataTeacher


@hookimpl
def register_curricula(register):
    register("constant", ConstantCurriculum)
    register("sqrt", SquareRootCurriculum)
    register("doubling", DoublingCurriculum)


@hookimpl
def register_noise_schedules(register):
    register("uniform", UniformIndices)
    register("lognormal", LognormalIndices)


@hookimpl
def register_teachers(register):
    register("data", DataTeacher)

"""A student that starts from a trained teacher's weights (CD, Song et al. 2023; ECT, Geng et al.
2024): the same network, checked before copying. Public: a method plugin passes its
``TrainedTeacher`` (``genkit.components``) to :func:`initialise_from_teacher`."""

from __future__ import annotations

from torch import nn

from genkit.errors import GenkitError


def initialise_from_teacher(student: nn.Module, teacher, networks, student_network=None) -> None:
    """Copy the teacher's raw network weights into the student's; a different network is an error.

    ``student_network`` is this run's network Component; its options must equal the teacher's
    but for dropout (settings such as a Fourier scale live in buffers the weights overwrite).
    """
    source = teacher.network
    network = teacher.network_config
    settings = ", ".join(f"network.{k}={v}" for k, v in vars(network.options or {}).items())
    hint = f"use the teacher's network settings ({settings})" if settings else "use the teacher's network settings"
    if student_network is not None:
        difference = option_difference(network, student_network)
        if difference:
            raise GenkitError(f"this run's network does not match the teacher's ({difference}); {hint}")
    if type(student) is not type(source):
        mine = [entry.name for entry in networks if entry.factory is type(student)]
        raise GenkitError(
            f"the teacher's network is '{network.name}', this run's is "
            f"'{mine[0] if mine else type(student).__name__}'; the student starts from the teacher's weights: {hint}"
        )
    difference = architecture_difference(source, student)
    if difference:
        raise GenkitError(f"this run's network does not match the teacher's ({difference}); {hint}")
    student.load_state_dict(source.state_dict())


def architecture_difference(reference: nn.Module, other: nn.Module) -> str:
    """'' when both modules have the same parameters, buffers and hyperparameters, else the first
    difference. Dropout rates may differ (CD on CIFAR-10 distils a dropout-0.13 teacher with 0, ECT
    tunes it with 0.2)."""
    theirs, mine = reference.state_dict(), other.state_dict()
    for key in sorted(theirs.keys() | mine.keys()):
        if key not in theirs or key not in mine:
            return f"parameter '{key}' exists in only one of them"
        if theirs[key].shape != mine[key].shape:
            return f"'{key}' has shape {tuple(theirs[key].shape)} in the teacher, {tuple(mine[key].shape)} here"
    reference_modules, other_modules = dict(reference.named_modules()), dict(other.named_modules())
    for name, module in reference_modules.items():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            continue
        a, b = _hyperparameters(module), _hyperparameters(other_modules.get(name))
        if a != b:
            key = next(k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))
            where = f"{name}.{key}" if name else key
            return f"'{where}' is {a.get(key)!r} in the teacher, {b.get(key)!r} here"
    return ""


def _hyperparameters(module: nn.Module | None) -> dict:
    if module is None:
        return {"type": None}
    plain = (bool, int, float, str, tuple)
    values = {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training" and isinstance(v, plain)}
    return {"type": type(module).__name__, **values}


def option_difference(teacher_network, student_network) -> str:
    """'' when the two network Components agree on name and every option but dropout."""
    if teacher_network.name != student_network.name:
        return f"network '{student_network.name}' here, '{teacher_network.name}' in the teacher"
    theirs, mine = vars(teacher_network.options or {}), vars(student_network.options or {})
    for key in sorted(theirs.keys() | mine.keys()):
        if key != "dropout" and theirs.get(key) != mine.get(key):
            return f"network.{key} is {theirs.get(key)!r} in the teacher, {mine.get(key)!r} here"
    return ""

"""Teachers give the target point x_hat_n on the trajectory through x_{n+1}."""

from genkit.maths import as_column


class DataTeacher:
    """Consistency training: x_hat_n = x + sigma_n z with the same z as x_{n+1} (no network)."""

    evaluations_per_sample = 0

    def __init__(self, options=None, ctx=None):
        pass

    def target_point(self, x, z, x_hi, sigma_hi, sigma_lo, labels=None):
        return x + as_column(sigma_lo, x) * z

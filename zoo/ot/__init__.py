"""Optimal-transport numerics shared by the zoo (POT-style: small modules, the mathematics in docstrings).

Cost conventions are stated in each function's docstring: ``|x − y|²`` (the zoo's default for W2²) or the
papers' ``½|x − y|²``. Names are imported lazily (``zoo.ot.fit_w2`` imports ``zoo.ot.w2`` on first access).
"""

import importlib

_LAZY = {
    # ICNN / W2 (Makkuva et al., Taghvaei & Jalali, Korotin et al.)
    "ICNN": "zoo.ot.icnn",
    "bures_w2": "zoo.ot.w2",
    "gaussian_map": "zoo.ot.w2",
    "fit_w2": "zoo.ot.w2",
    "pushforward_error": "zoo.ot.w2",
    # semi-discrete OT (AE-OT)
    "semi_discrete_ot": "zoo.ot.semidiscrete",
    "power_diagram": "zoo.ot.power_diagram",
    "cell_masses_exact": "zoo.ot.power_diagram",
    "SemiDiscreteOT": "zoo.ot.semidiscrete",
    "extended_map": "zoo.ot.extended_map",
    # kernels, energy / MMD distances and sliced Wasserstein (dual-metric-flow GAN)
    "energy_distance": "zoo.ot.kernels",
    "gaussian_mmd2": "zoo.ot.kernels",
    "witness": "zoo.ot.kernels",
    "witness_grad": "zoo.ot.kernels",
    "random_projections": "zoo.ot.kernels",
    "sliced_w2_squared": "zoo.ot.kernels",
    "sliced_potential_grad": "zoo.ot.kernels",
    # congested transport (Milne & Nachman reading of WGAN-GP)
    "solve_congested": "zoo.ot.congested",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.ot' has no attribute {name!r}")

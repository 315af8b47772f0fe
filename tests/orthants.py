"""Exact orthant references shared by the tests of the importance samplers."""

import math

import numpy as np


def ar1_log_orthant(m, rho, grid=4000, top=9.0):
    """ln Pr[g_1 > 0, ..., g_m > 0] for the stationary AR(1) g_t = rho g_t-1 + sqrt(1 - rho^2) e_t, by the
    transfer-operator recursion of the truncated densities on a grid (trapezoid rule): an exact
    reference independent of the sampler, with strong sequential dependence."""
    x = np.linspace(0.0, top, grid)
    w = np.full(grid, x[1] - x[0])
    w[[0, -1]] *= 0.5
    s2 = 1.0 - rho * rho
    kernel = np.exp(-0.5 * (x[:, None] - rho * x[None, :]) ** 2 / s2) / math.sqrt(2 * math.pi * s2)
    density, log_total = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), 0.0
    for _ in range(m - 1):
        density = kernel @ (w * density)
        scale = density.max()
        density, log_total = density / scale, log_total + math.log(scale)
    return log_total + math.log(w @ density)

"""Step 7: the weighted fit of ``exp(-a d^2)`` to each correlation curve, all curves at once."""

from __future__ import annotations

import numpy as np

from ._glcm import DISTANCES

DECAY = 0.5
"""The fit weights are ``exp(-DECAY * d)``."""

A0 = 0.005
"""The starting value of ``a``."""


def fit_exp_decay(
    curves: np.ndarray,
    distances: np.ndarray = DISTANCES,
    *,
    a0: float = A0,
    decay: float = DECAY,
    max_iter: int = 200,
) -> np.ndarray:
    """Fit ``exp(-a d^2)`` to each curve by weighted least squares.

    For each curve ``c`` this minimizes ``sum_d (w_d * (c_d - exp(-a d^2)))^2``
    with ``w_d = exp(-decay * d)``, starting from ``a = a0``: the fit the
    published method makes with ``lmfit`` (Levenberg-Marquardt). Here all
    curves are solved together by safeguarded Newton iterations on the single
    parameter (Gauss-Newton where the Hessian is not positive, step halving
    until the objective decreases), run until the objective stops decreasing.

    Parameters
    ----------
    curves : array-like of shape (n_curves, n_distances) or (n_distances,)
    distances : array-like of shape (n_distances,), default=DISTANCES
    a0 : float, default=0.005
    decay : float, default=0.5
    max_iter : int, default=200

    Returns
    -------
    a : ndarray of shape (n_curves,) or a 0-d array for a single curve

    Examples
    --------
    >>> d = np.arange(10.0)
    >>> float(fit_exp_decay(np.exp(-0.03 * d**2), d).round(12))
    0.03
    """
    curves = np.asarray(curves, dtype=np.float64)
    single = curves.ndim == 1
    curves = np.atleast_2d(curves)
    d2 = np.asarray(distances, dtype=np.float64) ** 2
    w2 = np.exp(-2.0 * decay * np.asarray(distances, dtype=np.float64))
    d4w2 = w2 * d2 * d2

    def objective(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(-a[:, None] * d2)
        r = curves - e
        return np.sum(w2 * r * r, axis=1), e

    a = np.full(curves.shape[0], float(a0))
    with np.errstate(over="ignore", invalid="ignore"):
        value, e = objective(a)
        active = np.isfinite(value)
        for _ in range(max_iter):
            if not active.any():
                break
            gradient = np.sum(w2 * d2 * e * (curves - e), axis=1)
            newton = np.sum(d4w2 * e * (2.0 * e - curves), axis=1)
            gauss_newton = np.sum(d4w2 * e * e, axis=1)
            curvature = np.where(newton > 0, newton, gauss_newton)
            step = np.zeros_like(a)
            movable = active & (curvature > 0)
            step[movable] = -gradient[movable] / curvature[movable]
            # Newton converges quadratically: after a step this small, a is at machine precision.
            done = active & (np.abs(step) <= 1e-10 * np.abs(a))
            a[done] += step[done]
            active &= ~done
            scale = np.ones_like(a)
            pending = active.copy()
            previous = value.copy()
            for _ in range(30):
                trial_value, trial_e = objective(a + scale * step)
                accepted = pending & (trial_value < value)
                a[accepted] += scale[accepted] * step[accepted]
                value[accepted] = trial_value[accepted]
                e[accepted] = trial_e[accepted]
                pending &= ~accepted
                if not pending.any():
                    break
                scale[pending] *= 0.5
            # No decrease at all, or one at rounding level: a is at the minimum.
            active &= ~pending & (previous - value > 1e-14 * previous)
    return a[0] if single else a


def decay_residuals(
    curves: np.ndarray,
    distances: np.ndarray = DISTANCES,
    *,
    a0: float = A0,
    decay: float = DECAY,
) -> np.ndarray:
    """Each curve minus its fitted ``exp(-a d^2)`` (see :func:`fit_exp_decay`).

    Parameters
    ----------
    curves : array-like of shape (n_curves, n_distances)
    distances : array-like of shape (n_distances,), default=DISTANCES
    a0 : float, default=0.005
    decay : float, default=0.5

    Returns
    -------
    residuals : ndarray of shape (n_curves, n_distances)

    Examples
    --------
    >>> d = np.arange(10.0)
    >>> float(np.abs(decay_residuals([np.exp(-0.03 * d**2)], d)).max()) < 1e-12
    True
    """
    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    distances = np.asarray(distances, dtype=np.float64)
    a = fit_exp_decay(curves, distances, a0=a0, decay=decay)
    return curves - np.exp(-a[:, None] * distances**2)

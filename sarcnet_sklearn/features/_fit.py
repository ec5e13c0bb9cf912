"""Step 9: the weighted fit of ``exp(-a d^2)`` to each correlation curve, as lmfit makes it.

The published method fits each curve with ``lmfit.Model(...).fit(...)``, whose
default method is ``scipy.optimize.leastsq`` (MINPACK's ``lmdif``) with lmfit's
settings: forward-difference Jacobian with ``epsfcn=1e-10``, ``ftol = xtol =
1.5e-8``, ``gtol=0``, ``factor=100``. That fit stops where those tolerances
say, which on real curves is up to ~1e-4 (relative) away from the exact least-
squares optimum, so an exact solver would not give the published numbers.
:func:`fit_exp_decay` therefore replays ``lmdif`` itself, step for step, for
this one-parameter problem, on all curves at once.
"""

from __future__ import annotations

import math

import numpy as np

from ._glcm import DISTANCES

DECAY = 0.5
"""The fit weights are ``exp(-DECAY * d)``."""

A0 = 0.005
"""The starting value of ``a``."""

_EPSFCN = 1e-10
_FTOL = _XTOL = 1.5e-8
_FACTOR = 100.0
_EPSMCH = np.finfo(np.float64).eps
_DWARF = np.finfo(np.float64).tiny


def fit_exp_decay(
    curves: np.ndarray,
    distances: np.ndarray = DISTANCES,
    *,
    a0: float = A0,
    decay: float = DECAY,
    max_iter: int = 200,
) -> np.ndarray:
    """Fit ``exp(-a d^2)`` to each curve by weighted least squares, as lmfit does.

    For each curve ``c`` this minimizes ``sum_d (w_d * (c_d - exp(-a d^2)))^2``
    with ``w_d = exp(-decay * d)`` from ``a = a0`` with the Levenberg-Marquardt
    iterations and stopping rules of MINPACK's ``lmdif`` under lmfit's default
    settings, so that ``a`` is the one ``lmfit.Model(...).fit(...)`` returns
    (not the exact optimum, from which lmfit's tolerances stop short).

    Parameters
    ----------
    curves : array-like of shape (n_curves, n_distances) or (n_distances,)
    distances : array-like of shape (n_distances,), default=DISTANCES
    a0 : float, default=0.005
    decay : float, default=0.5
    max_iter : int, default=200
        Most Levenberg-Marquardt steps per curve.

    Returns
    -------
    a : ndarray of shape (n_curves,) or a 0-d array for a single curve

    Examples
    --------
    >>> d = np.arange(10.0)
    >>> float(fit_exp_decay(np.exp(-0.03 * d**2), d).round(9))
    0.03
    """
    curves = np.asarray(curves, dtype=np.float64)
    single = curves.ndim == 1
    curves = np.atleast_2d(curves)
    distances = np.asarray(distances, dtype=np.float64)
    d2 = distances**2
    weights = np.exp(-decay * distances)

    def residuals(curves: np.ndarray, a: np.ndarray) -> np.ndarray:
        return (curves - np.exp(-a[:, None] * d2)) * weights

    eps = math.sqrt(max(_EPSFCN, _EPSMCH))
    a = np.full(curves.shape[0], float(a0))
    # The curves still iterating: their rows and, per curve, MINPACK's scalars.
    index = list(range(curves.shape[0]))
    x = a.tolist()
    fvec = residuals(curves, a)
    fnorm = _norm(fvec).tolist()
    n = len(x)
    par, diag, delta, xnorm = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
    first = [True] * n  # no successful step yet (MINPACK's iter == 1)
    with np.errstate(all="ignore"):
        for iteration in range(max_iter + 1):
            # fdjac2, then qrfac of the single column and Q^T fvec. Recomputed on every pass:
            # after an unsuccessful step x has not moved and the Jacobian is the same.
            xa = np.array(x)
            h = eps * np.abs(xa)
            h[h == 0] = eps
            fjac = (residuals(curves, xa + h) - fvec) / h[:, None]
            acnorms = _norm(fjac).tolist()
            jf = np.einsum("ij,ij->i", fjac, fvec).tolist()
            j0, f0 = fjac[:, 0].tolist(), fvec[:, 0].tolist()
            trial, r, pnorm = x[:], [0.0] * n, [0.0] * n
            finished = [iteration == max_iter] * n
            tiny_gradient = [False] * n
            for k in range(n):
                acnorm = acnorms[k]
                ajnorm = -acnorm if j0[k] < 0 else acnorm
                if ajnorm == 0:
                    qtf = f0[k]
                else:  # Householder vector v = fjac / ajnorm + e_0
                    v0 = j0[k] / ajnorm + 1.0
                    qtf = f0[k] + v0 * (-(jf[k] / ajnorm + f0[k]) / v0)
                r[k] = -ajnorm
                if iteration == 0:
                    diag[k] = acnorm if acnorm != 0 else 1.0
                    xnorm[k] = abs(diag[k] * x[k])
                    delta[k] = _FACTOR * xnorm[k] if xnorm[k] != 0 else _FACTOR
                gnorm = (
                    abs(r[k] * (qtf / fnorm[k]) / acnorm) if fnorm[k] != 0 and acnorm != 0 else 0.0
                )
                diag[k] = max(diag[k], acnorm)
                tiny_gradient[k] = gnorm <= _EPSMCH
                if finished[k] or gnorm <= 0.0:  # gtol = 0
                    finished[k] = True
                    continue
                par[k], step = _lm_step(r[k], diag[k], qtf, delta[k], par[k])
                step = -step
                trial[k] = x[k] + step
                pnorm[k] = abs(diag[k] * step)
                if first[k]:
                    delta[k] = min(delta[k], pnorm[k])
            trial_fvec = residuals(curves, np.array(trial))
            fnorm1s = _norm(trial_fvec).tolist()
            success = [False] * n
            for k in range(n):
                if finished[k]:
                    continue
                fnorm1, step = fnorm1s[k], trial[k] - x[k]
                actred = 1 - (fnorm1 / fnorm[k]) ** 2 if 0.1 * fnorm1 < fnorm[k] else -1.0
                temp1 = abs(r[k] * step) / fnorm[k]
                temp2 = math.sqrt(par[k]) * pnorm[k] / fnorm[k]
                prered = temp1**2 + temp2**2 / 0.5
                dirder = -(temp1**2 + temp2**2)
                ratio = actred / prered if prered != 0 else 0.0
                if ratio <= 0.25:
                    temp = 0.5 if actred >= 0 else 0.5 * dirder / (dirder + 0.5 * actred)
                    if 0.1 * fnorm1 >= fnorm[k] or temp < 0.1:
                        temp = 0.1
                    delta[k] = temp * min(delta[k], pnorm[k] / 0.1)
                    par[k] = par[k] / temp
                elif par[k] == 0 or ratio >= 0.75:
                    delta[k] = pnorm[k] / 0.5
                    par[k] = 0.5 * par[k]
                if ratio >= 1e-4:
                    success[k] = True
                    x[k] = trial[k]
                    xnorm[k] = abs(diag[k] * x[k])
                    fnorm[k] = fnorm1
                    first[k] = False
                finished[k] = (
                    (0.5 * ratio <= 1 and abs(actred) <= _FTOL and prered <= _FTOL)
                    or delta[k] <= _XTOL * xnorm[k]
                    or (0.5 * ratio <= 1 and abs(actred) <= _EPSMCH and prered <= _EPSMCH)
                    or delta[k] <= _EPSMCH * xnorm[k]
                    or tiny_gradient[k]
                )
            if any(success):
                fvec = np.where(np.array(success)[:, None], trial_fvec, fvec)
            if any(finished):
                keep = [k for k in range(n) if not finished[k]]
                for k in range(n):
                    if finished[k]:
                        a[index[k]] = x[k]
                if not keep:
                    break
                curves, fvec = curves[keep], fvec[keep]
                index, x, fnorm, par, diag, delta, xnorm, first = (
                    [values[k] for k in keep]
                    for values in (index, x, fnorm, par, diag, delta, xnorm, first)
                )
                n = len(keep)
    return a[0] if single else a


def _norm(rows: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", rows, rows))


def _lm_step(r: float, diag: float, qtf: float, delta: float, par: float) -> tuple[float, float]:
    """MINPACK's ``lmpar`` (with ``qrsolv``) for one parameter: the LM parameter and step."""
    x = qtf / r if r != 0 else 0.0
    dxnorm = abs(diag * x)
    fp = dxnorm - delta
    if fp <= 0.1 * delta:
        return 0.0, x  # the Gauss-Newton step is inside the trust region
    if r != 0:
        temp = abs(diag * (diag * x / dxnorm) / r)
        parl = ((fp / delta) / temp) / temp
    else:
        parl = 0.0
    gnorm = abs(r * qtf / diag)
    paru = gnorm / delta
    if paru == 0:
        paru = _DWARF / min(delta, 0.1)
    par = min(max(par, parl), paru)
    if par == 0:
        par = gnorm / dxnorm
    for iteration in range(1, 11):
        if par == 0:
            par = max(_DWARF, 0.001 * paru)
        s = math.sqrt(par) * diag
        # One Givens rotation folds sqrt(par) * diag into r.
        if abs(r) < abs(s):
            cotan = r / s
            sin = 0.5 / math.sqrt(0.25 + 0.25 * cotan**2)
            cos = sin * cotan
        else:
            tan = s / r
            cos = 0.5 / math.sqrt(0.25 + 0.25 * tan**2)
            sin = cos * tan
        sdiag = cos * r + sin * s
        x = (cos * qtf) / sdiag
        dxnorm = abs(diag * x)
        previous_fp, fp = fp, dxnorm - delta
        if (
            abs(fp) <= 0.1 * delta
            or (parl == 0 and fp <= previous_fp and previous_fp < 0)
            or iteration == 10
        ):
            break
        temp = abs(diag * (diag * x / dxnorm) / sdiag)
        parc = ((fp / delta) / temp) / temp
        if fp > 0:
            parl = max(parl, par)
        if fp < 0:
            paru = min(paru, par)
        par = max(parl, par + parc)
    return par, x


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
    >>> float(np.abs(decay_residuals([np.exp(-0.03 * d**2)], d)).max()) < 1e-8
    True
    """
    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    distances = np.asarray(distances, dtype=np.float64)
    a = fit_exp_decay(curves, distances, a0=a0, decay=decay)
    return curves - np.exp(-a[:, None] * distances**2)

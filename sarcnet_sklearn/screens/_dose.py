"""Dose-response: a four-parameter logistic fit per compound, EC50 with a bootstrap interval."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

MIN_DOSES = 4
"""Distinct doses (the control's 0 included) a four-parameter fit needs."""


def logistic4(dose, bottom: float, top: float, ec50: float, hill: float):
    """The four-parameter logistic (Hill) curve: ``bottom`` at dose 0, ``top`` at high doses,
    half-way at ``ec50``.

    Examples
    --------
    >>> float(logistic4(1.0, 2.0, 4.0, 1.0, 1.0)), float(logistic4(0.0, 2.0, 4.0, 1.0, 1.0))
    (3.0, 2.0)
    """
    dose = np.asarray(dose, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ratio = np.where(dose > 0, (np.maximum(dose, 0) / ec50) ** hill, 0.0)
        fraction = np.where(np.isinf(ratio), 1.0, ratio / (1 + ratio))
    return bottom + (top - bottom) * fraction


@dataclass
class DoseFit:
    """A fitted dose-response curve (NaN parameters and a ``message`` when there is none)."""

    bottom: float = np.nan
    top: float = np.nan
    ec50: float = np.nan
    hill: float = np.nan
    ec50_low: float = np.nan
    ec50_high: float = np.nan
    n_doses: int = 0
    message: str = ""

    @property
    def converged(self) -> bool:
        return bool(np.isfinite(self.ec50))


def fit_dose_response(
    doses,
    responses,
    *,
    n_boot: int = 200,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = None,
) -> DoseFit:
    """Fit :func:`logistic4` to one response per well, with a bootstrap interval of the EC50.

    The fit (``scipy.optimize.curve_fit``, log10 EC50 and the Hill slope
    bounded) is refused, with the reason in ``message``, when there are fewer
    than :data:`MIN_DOSES` distinct doses, when it does not converge, or when
    the EC50 lies outside the tested doses (the curve never reaches its half
    way there). The interval: percentiles of the EC50 over fits to wells
    resampled within each dose; a resample whose fit fails is counted in
    ``message``.

    Parameters
    ----------
    doses : array-like of shape (n_wells,)
        Non-negative doses (0: the control).
    responses : array-like of shape (n_wells,)
        E.g. each well's mean score.
    n_boot : int, default=200
        Bootstrap resamples for the EC50 interval (0: none).
    confidence : float, default=0.95
    random_state : int, Generator or None

    Returns
    -------
    DoseFit

    Examples
    --------
    >>> import numpy as np
    >>> doses = np.repeat([0.0, 0.01, 0.1, 1, 10, 100], 3)
    >>> rng = np.random.default_rng(0)
    >>> wells = logistic4(doses, 3.0, 3.6, 1.0, 1.0) + rng.normal(0, 0.03, len(doses))
    >>> fit = fit_dose_response(doses, wells, n_boot=50, random_state=0)
    >>> bool(0.3 < fit.ec50 < 3), bool(fit.ec50_low < fit.ec50 < fit.ec50_high)
    (True, True)
    >>> fit_dose_response([0, 1, 2], [3.0, 3.1, 3.2]).message
    'needs at least 4 distinct doses, has 3'
    """
    doses = np.asarray(doses, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.float64)
    keep = np.isfinite(doses) & np.isfinite(responses)
    doses, responses = doses[keep], responses[keep]
    if np.any(doses < 0):
        raise ValueError(f"doses must not be negative, got {doses.min():g}")
    levels = np.unique(doses)
    fit = DoseFit(n_doses=len(levels))
    if len(levels) < MIN_DOSES:
        fit.message = f"needs at least {MIN_DOSES} distinct doses, has {len(levels)}"
        return fit
    tested = (levels[levels > 0].min(), levels.max())
    parameters, reason = _fit(doses, responses, tested, check_response=True)
    if parameters is None:
        fit.message = reason
        return fit
    fit.bottom, fit.top, fit.ec50, fit.hill = parameters
    if n_boot > 0:
        rng = np.random.default_rng(random_state)
        by_level = [np.flatnonzero(doses == level) for level in levels]
        ec50s = []
        for _ in range(n_boot):
            rows = np.concatenate([rng.choice(members, len(members)) for members in by_level])
            refit, _ = _fit(doses[rows], responses[rows], tested, start=parameters)
            if refit is not None:
                ec50s.append(refit[2])
        failed = n_boot - len(ec50s)
        if len(ec50s) >= 0.8 * n_boot:
            tail = (1 - confidence) / 2 * 100
            fit.ec50_low, fit.ec50_high = (float(10 ** v) for v in
                                           np.percentile(np.log10(ec50s), [tail, 100 - tail]))
        if failed:
            fit.message = (f"{failed} of {n_boot} bootstrap fits failed"
                           + ("" if len(ec50s) >= 0.8 * n_boot else ": no EC50 interval"))
    return fit


def _fit(doses, responses, tested, start=None, check_response=False) -> tuple[tuple | None, str]:
    """(bottom, top, ec50, hill) or (None, why not); with ``check_response``, a fit whose
    top and bottom are less than two standard errors apart is refused too."""
    from scipy.optimize import OptimizeWarning, curve_fit

    low, high = np.log10(tested[0]), np.log10(tested[1])

    def curve(dose, bottom, top, log_ec50, hill):
        return logistic4(dose, bottom, top, 10.0 ** log_ec50, hill)

    if start is None:
        ordered = np.argsort(doses, kind="stable")
        first, last = responses[ordered[:2]].mean(), responses[ordered[-2:]].mean()
        start = (first, last, (low + high) / 2, 1.0)
    else:
        start = (start[0], start[1], np.log10(start[2]), start[3])
    bounds = ([-np.inf, -np.inf, low - 3, 0.1], [np.inf, np.inf, high + 3, 10.0])
    start = np.clip(start, [b + 1e-9 for b in bounds[0]], [b - 1e-9 for b in bounds[1]])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            values, covariance = curve_fit(curve, doses, responses, p0=start, bounds=bounds,
                                           maxfev=5000)
    except (RuntimeError, ValueError) as exc:
        return None, f"the fit did not converge ({exc})"
    bottom, top, log_ec50, hill = (float(v) for v in values)
    if not np.all(np.isfinite(covariance)):
        return None, ("the fit did not converge: its parameters are not determined by the "
                      "data (no clear response to the dose?)")
    amplitude_se = np.sqrt(max(0.0, covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]))
    if check_response and abs(top - bottom) < 2 * amplitude_se:
        return None, (f"the fit did not converge to a response: top minus bottom "
                      f"({top - bottom:.3g}) is within two standard errors "
                      f"({amplitude_se:.2g}) of zero (no clear response to the dose)")
    if not low <= log_ec50 <= high:
        return None, (f"the fit did not converge to an EC50 inside the tested doses "
                      f"({tested[0]:g}-{tested[1]:g}): the response does not reach half way "
                      "between its bottom and top there")
    return (bottom, top, float(10 ** log_ec50), hill), ""

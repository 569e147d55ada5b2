"""Katib's ``bayesianoptimization`` on numpy and scipy: a Gaussian-process sampler for Optuna.

Katib runs this algorithm with scikit-optimize, and Optuna's GPSampler needs torch (several
GB when a resolver picks it). Both were measured against this sampler (``benchmarks/quality.py``,
results in ``benchmarks/RESULTS.md``): scikit-optimize 0.10.2 still installs beside today's
numpy and scikit-learn, but one stateless call of 4 at 100 trials takes it 2.3 to 4.5 s on 2
cores (0.1 s here); this sampler is within noise of GPSampler's quality, without torch.

The model is the one Optuna's GPSampler fits, written with numpy and scipy: a Matérn-5/2
kernel with one length scale per parameter (a categorical parameter counts only whether two
values differ), GPSampler's priors on the kernel's parameters, fitted by maximum a posteriori
with L-BFGS-B on the exact gradient. Inputs are scaled to [0, 1] (log-scaled where the
parameter is), objective values standardised. The acquisition follows Katib's settings as
scikit-optimize defines them:

- ``acq_func``: ``EI`` (as log expected improvement, which stays informative far from the
  best), ``PI``, ``LCB`` (mean less 1.96 standard deviations), or ``gp_hedge``: scikit-optimize's
  portfolio of the three, drawn by a softmax of their gains. A gain is the model's mean at
  the point each function proposed, summed over past trials, so the three proposals are
  stored on the trial (the history carries them; the sampler keeps nothing between calls).
- ``acq_optimizer``: ``sampling`` takes the best of 10,000 random points; ``lbfgs`` (and
  ``auto``) refines the best of 2,048 random points and the best trial with L-BFGS-B.
- ``n_initial_points``: random trials before the model is used, counting running ones (as
  scikit-optimize counts asked points), and at least two finished.

Running trials are pending points: each takes the best value so far (scikit-optimize's
``cl_min`` constant liar, the strategy Katib's service asks for), with the kernel fitted on
finished trials alone, so a batch spreads out.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from hpo_kfp.algorithms import GP_ACQUISITION_FUNCTIONS, GP_ACQUISITION_OPTIMIZERS
from hpo_kfp.compat import set_trial_system_attr

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["GaussianProcessSampler"]

_PORTFOLIO = ("EI", "PI", "LCB")
_HEDGE_ATTR = "hpo_kfp:gp_hedge"
_MIN_NOISE = 1e-6
_KAPPA = 1.96
_PI_MARGIN = 0.01
"""scikit-optimize's ``xi`` for PI, here in standardised units (without it PI only exploits)."""
_SAMPLES = {"sampling": 10_000, "lbfgs": 2048}
_LOCAL_STARTS = 5
_FD_STEP = 1e-6


class GaussianProcessSampler(BaseSampler):
    """Bayesian optimisation with a Gaussian process, for one objective.

    Args:
        seed: Seeds the random start-up trials, the candidates and ``gp_hedge``'s draw.
        n_startup_trials: Random trials before the model is used (Katib's
            ``n_initial_points``, default 10).
        acq_func: One of :data:`~hpo_kfp.algorithms.GP_ACQUISITION_FUNCTIONS`.
        acq_optimizer: One of :data:`~hpo_kfp.algorithms.GP_ACQUISITION_OPTIMIZERS`.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 10,
        acq_func: str = "EI",
        acq_optimizer: str = "auto",
    ) -> None:
        if acq_func not in GP_ACQUISITION_FUNCTIONS or acq_optimizer not in GP_ACQUISITION_OPTIMIZERS:
            raise ValueError(f"unknown acq_func {acq_func!r} or acq_optimizer {acq_optimizer!r}")
        self._rng = np.random.default_rng(seed)
        self._independent = RandomSampler(seed=seed)
        self._intersection = IntersectionSearchSpace()
        self._n_startup = n_startup_trials
        self._acq_func = acq_func
        self._samples = _SAMPLES["sampling" if acq_optimizer == "sampling" else "lbfgs"]
        self._refine = acq_optimizer != "sampling"
        self._fitted: tuple[tuple[int, ...], _Model] | None = None

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._independent.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {name: d for name, d in self._intersection.calculate(study).items() if not d.single()}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        # Many small matrix products: BLAS threads only contend (twice as slow on 2 busy cores).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._sample_relative(study, trial, search_space)

    def _sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space or len(study.directions) > 1:
            return {}
        names = search_space.keys()
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        placed = [t for t in trials if names <= t.params.keys()]
        finished = [t for t in placed if t.state == TrialState.COMPLETE]
        if len(placed) < self._n_startup or len(finished) < 2:
            return {}
        encoding = _Encoding(search_space)
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        model = self._model(encoding, finished, sign)
        pending = [t for t in placed if t.state == TrialState.RUNNING]
        if pending:
            model = model.with_lies(encoding.encode([t.params for t in pending]))
        if self._acq_func != "gp_hedge":
            return encoding.decode(self._maximise(model, encoding, self._acq_func))
        proposals = [self._maximise(model, encoding, name) for name in _PORTFOLIO]
        chosen = proposals[self._hedge_choice(model, encoding, finished)]
        set_trial_system_attr(study, trial, _HEDGE_ATTR, json.dumps([p.tolist() for p in proposals]))
        return encoding.decode(chosen)

    def _model(self, encoding: _Encoding, finished: list[FrozenTrial], sign: float) -> _Model:
        # One fit per set of finished trials: a call asking for several trials fits once.
        key = tuple(t.number for t in finished)
        if self._fitted is None or self._fitted[0] != key:
            values = sign * np.array([t.value for t in finished], dtype=float)
            self._fitted = (
                key,
                _fit(encoding.encode([t.params for t in finished]), values, encoding.categorical),
            )
        return self._fitted[1]

    def _hedge_choice(self, model: _Model, encoding: _Encoding, finished: list[FrozenTrial]) -> int:
        # scikit-optimize: gains -= the model's mean at each function's last proposal; softmax(gains).
        stored = [json.loads(t.system_attrs[_HEDGE_ATTR]) for t in finished if _HEDGE_ATTR in t.system_attrs]
        # A proposal made under another search space has another shape: it cannot be scored.
        shape = (len(_PORTFOLIO), encoding.width)
        points = [np.array(p, dtype=float) for p in stored if np.shape(p) == shape]
        gains = np.zeros(len(_PORTFOLIO))
        if points:
            means = model.predict(np.vstack(points))[0]
            gains -= means.reshape(len(points), len(_PORTFOLIO)).sum(axis=0)
        weights = np.exp(gains - gains.max())
        return int(self._rng.choice(len(_PORTFOLIO), p=weights / weights.sum()))

    def _maximise(self, model: _Model, encoding: _Encoding, acquisition: str) -> np.ndarray:
        candidates = np.vstack([encoding.random(self._rng, self._samples), model.best_point])
        scores = _score(model, candidates, acquisition)
        best = int(np.argmax(scores))
        if not self._refine or not encoding.numeric.any():
            return np.asarray(candidates[best])
        import scipy.optimize

        starts = candidates[np.argsort(scores)[-_LOCAL_STARTS:]]
        chosen, chosen_score = candidates[best], scores[best]
        free = encoding.numeric
        for start in starts:

            def negative(x: np.ndarray, start: np.ndarray = start) -> tuple[float, np.ndarray]:
                return _negative_with_gradient(model, acquisition, start, free, x)

            result = scipy.optimize.minimize(
                negative,
                start[free],
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * int(free.sum()),
                options={"maxiter": 200},
            )
            if -result.fun > chosen_score:
                chosen = start.copy()
                chosen[free] = np.clip(result.x, 0.0, 1.0)
                chosen_score = -result.fun
        return np.asarray(chosen)


# --------------------------------------------------------------------------- the search space


@dataclass(frozen=True)
class _Column:
    name: str
    distribution: BaseDistribution
    low: float
    """Of the scaled axis: a step grid is indexed, half a step beyond each end."""
    high: float
    log: bool
    step: float | None
    count: int
    """Choices of a categorical parameter (0 for a numeric one)."""


class _Encoding:
    """Parameters as one row of [0, 1] numbers (a categorical one as its choice's index)."""

    def __init__(self, search_space: dict[str, BaseDistribution]) -> None:
        self.columns = [_column(name, d) for name, d in search_space.items()]
        self.width = len(self.columns)
        self.categorical = np.array([c.count > 0 for c in self.columns])
        self.numeric = ~self.categorical

    def encode(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        return np.array([[_encode(c, row[c.name]) for c in self.columns] for row in rows], dtype=float)

    def decode(self, point: np.ndarray) -> dict[str, Any]:
        return {c.name: _decode(c, float(x)) for c, x in zip(self.columns, point, strict=True)}

    def random(self, rng: np.random.Generator, count: int) -> np.ndarray:
        points = rng.random((count, self.width))
        for index, column in enumerate(self.columns):
            if column.count:
                points[:, index] = rng.integers(column.count, size=count)
        return points


def _column(name: str, distribution: BaseDistribution) -> _Column:
    if isinstance(distribution, CategoricalDistribution):
        return _Column(name, distribution, 0.0, 0.0, False, None, len(distribution.choices))
    low, high = float(distribution.low), float(distribution.high)  # type: ignore[attr-defined]
    log = bool(distribution.log)  # type: ignore[attr-defined]
    step = distribution.step  # type: ignore[attr-defined]
    if isinstance(distribution, FloatDistribution) and step is None:
        return _Column(
            name, distribution, math.log(low) if log else low, math.log(high) if log else high, log, None, 0
        )
    if log:  # an int on a log scale (Optuna allows no step with log)
        return _Column(name, distribution, math.log(low - 0.5), math.log(high + 0.5), True, 1.0, 0)
    steps = round((high - low) / step)
    return _Column(name, distribution, -0.5, steps + 0.5, False, float(step), 0)


def _encode(column: _Column, value: Any) -> float:
    if column.count:
        return float(column.distribution.to_internal_repr(value))
    number = float(value)
    if column.log:
        number = math.log(number)
    elif column.step is not None:
        number = (number - float(column.distribution.low)) / column.step  # type: ignore[attr-defined]
    return (number - column.low) / (column.high - column.low)


def _decode(column: _Column, x: float) -> Any:
    distribution: Any = column.distribution
    if column.count:
        return distribution.to_external_repr(min(int(x), column.count - 1))
    number = column.low + min(max(x, 0.0), 1.0) * (column.high - column.low)
    if column.log:
        number = math.exp(number)
    elif column.step is not None:
        number = distribution.low + round(number) * column.step
    if isinstance(distribution, FloatDistribution):
        return min(max(number, distribution.low), distribution.high)
    return int(min(max(round(number), distribution.low), distribution.high))


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class _Model:
    """A fitted Gaussian process over encoded points, in standardised objective units."""

    inputs: np.ndarray
    y: np.ndarray
    categorical: np.ndarray
    isl: np.ndarray
    """Inverse squared length scales."""
    scale: float
    noise: float
    chol: np.ndarray
    chol_inverse: np.ndarray
    """The inverse of :attr:`chol`: a variance is then one matrix product."""
    alpha: np.ndarray
    best_value: float
    best_point: np.ndarray

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (without the noise) at ``points``."""
        cross = self.scale * _matern(_distance(points, self.inputs, self.categorical) @ self.isl)
        mean = cross @ self.alpha
        solved = self.chol_inverse @ cross.T
        variance = np.maximum(self.scale - np.einsum("ij,ij->j", solved, solved), 1e-12)
        return mean, np.sqrt(variance)

    def with_lies(self, pending: np.ndarray) -> _Model:
        """The same kernel with ``pending`` points observed at the best value so far."""
        inputs = np.vstack([self.inputs, pending])
        y = np.concatenate([self.y, np.full(len(pending), self.best_value)])
        chol, chol_inverse, alpha = _factor(inputs, y, self.categorical, self.isl, self.scale, self.noise)
        return replace(self, inputs=inputs, y=y, chol=chol, chol_inverse=chol_inverse, alpha=alpha)


def _distance(a: np.ndarray, b: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Per-dimension squared distances, shape (len(a), len(b), dimensions)."""
    difference = a[:, None, :] - b[None, :, :]
    squared = difference * difference
    if categorical.any():
        squared[..., categorical] = (squared[..., categorical] > 0).astype(float)
    return np.asarray(squared)


def _matern(r2: np.ndarray) -> np.ndarray:
    root = np.sqrt(5.0 * r2)
    return (1.0 + root + (5.0 / 3.0) * r2) * np.exp(-root)


def _factor(
    inputs: np.ndarray, y: np.ndarray, categorical: np.ndarray, isl: np.ndarray, scale: float, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import scipy.linalg

    covariance = scale * _matern(_distance(inputs, inputs, categorical) @ isl) + noise * np.eye(len(inputs))
    chol = scipy.linalg.cholesky(covariance, lower=True, check_finite=False)
    chol_inverse = scipy.linalg.solve_triangular(chol, np.eye(len(inputs)), lower=True, check_finite=False)
    return chol, chol_inverse, scipy.linalg.cho_solve((chol, True), y, check_finite=False)


def _fit(inputs: np.ndarray, values: np.ndarray, categorical: np.ndarray) -> _Model:
    """Fits the kernel's parameters by maximum a posteriori, with GPSampler's priors."""
    import scipy.linalg
    import scipy.optimize

    spread = values.std()
    y = (values - values.mean()) / (spread if spread > 0 else 1.0)
    dimensions = inputs.shape[1]
    distance = _distance(inputs, inputs, categorical)
    identity = np.eye(len(inputs))

    def negative_posterior(theta: np.ndarray) -> tuple[float, np.ndarray]:
        isl, scale = np.exp(theta[:dimensions]), math.exp(theta[dimensions])
        extra_noise = math.exp(theta[dimensions + 1])
        noise = _MIN_NOISE + extra_noise
        r2 = distance @ isl
        root = np.sqrt(5.0 * r2)
        decay = np.exp(-root)
        kernel = scale * (1.0 + root + (5.0 / 3.0) * r2) * decay
        try:
            chol = scipy.linalg.cholesky(kernel + noise * identity, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return math.inf, np.zeros_like(theta)
        alpha = scipy.linalg.cho_solve((chol, True), y, check_finite=False)
        inverse = scipy.linalg.cho_solve((chol, True), identity, check_finite=False)
        likelihood = -0.5 * float(y @ alpha) - float(np.log(np.diag(chol)).sum())
        prior = -float((0.1 / isl + 0.1 * isl).sum()) + (math.log(scale) - scale)
        prior += 0.1 * math.log(noise) - 30.0 * noise
        # d(log likelihood)/dθ = ½ tr((ααᵀ - K⁻¹) dK/dθ); the Matérn's derivative in r².
        weight = np.outer(alpha, alpha) - inverse
        slope = scale * (-5.0 / 6.0) * (1.0 + root) * decay
        gradient = np.empty_like(theta)
        gradient[:dimensions] = 0.5 * np.einsum("jk,jki->i", weight * slope, distance) * isl
        gradient[:dimensions] += 0.1 / isl - 0.1 * isl
        gradient[dimensions] = 0.5 * float((weight * kernel).sum()) + 1.0 - scale
        gradient[dimensions + 1] = (0.5 * float(np.trace(weight)) + 0.1 / noise - 30.0) * extra_noise
        return -(likelihood + prior), -gradient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy.optimize.minimize(
            negative_posterior,
            np.zeros(dimensions + 2),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-12.0, 12.0)] * dimensions + [(-12.0, 8.0), (-25.0, 2.0)],
            options={"gtol": 1e-2},
        )
    theta = result.x if math.isfinite(result.fun) else np.zeros(dimensions + 2)
    isl, scale = np.exp(theta[:dimensions]), math.exp(theta[dimensions])
    noise = _MIN_NOISE + math.exp(theta[dimensions + 1])
    chol, chol_inverse, alpha = _factor(inputs, y, categorical, isl, scale, noise)
    best = int(np.argmin(y))
    return _Model(
        inputs, y, categorical, isl, scale, noise, chol, chol_inverse, alpha, float(y[best]), inputs[best]
    )


# --------------------------------------------------------------------------- acquisition


def _score(model: _Model, points: np.ndarray, acquisition: str) -> np.ndarray:
    """The acquisition function at ``points``: larger is better."""
    import scipy.special

    mean, deviation = model.predict(points)
    if acquisition == "LCB":
        return -(mean - _KAPPA * deviation)
    if acquisition == "PI":
        return scipy.special.log_ndtr((model.best_value - mean - _PI_MARGIN) / deviation)  # type: ignore[no-any-return]
    return np.asarray(np.log(deviation) + _log_h((model.best_value - mean) / deviation))


def _log_h(z: np.ndarray) -> np.ndarray:
    """log(φ(z) + zΦ(z)), stable for very negative z (the log of expected improvement at unit deviation)."""
    import scipy.special

    log_phi = -0.5 * z * z - 0.5 * math.log(2.0 * math.pi)
    # φ(z) + zΦ(z) = φ(z)(1 + z·Φ(z)/φ(z)), and Φ(z)/φ(z) = √(π/2)·erfcx(-z/√2).
    ratio = z * math.sqrt(math.pi / 2.0) * scipy.special.erfcx(-z / math.sqrt(2.0))
    return np.asarray(log_phi + np.log1p(np.maximum(ratio, -1.0 + 1e-16)))


def _negative_with_gradient(
    model: _Model, acquisition: str, start: np.ndarray, free: np.ndarray, x: np.ndarray
) -> tuple[float, np.ndarray]:
    """Minus the acquisition at ``start`` with its numeric coordinates ``x``, and its gradient
    by central differences (one batch of 2d + 1 points through the model)."""
    dimensions = len(x)
    batch = np.repeat(start[None, :], 2 * dimensions + 1, axis=0)
    columns = np.flatnonzero(free)
    batch[:, columns] = x
    for index, column in enumerate(columns):
        batch[1 + 2 * index, column] += _FD_STEP
        batch[2 + 2 * index, column] -= _FD_STEP
    scores = _score(model, batch, acquisition)
    gradient = (scores[1::2] - scores[2::2]) / (2 * _FD_STEP)
    return -float(scores[0]), -gradient

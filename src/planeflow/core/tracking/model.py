"""CellReg's probabilistic model of cell pairs (Sheintuch et al. 2017).

Every pair of cells of two sessions whose centroids lie within ``max_distance`` µm after the
field-of-view registration is a candidate. Over all candidates the two similarities follow a
mixture of *same cell* and *different cells*:

* centroid distance ``d``: same cells lognormal, different cells ``d * sigmoid(d)`` (the number
  of neighbours grows linearly with the distance in a plane of uniformly spread cells; the
  sigmoid removes the closest ones, which cannot overlap);
* spatial footprint correlation ``r``: ``1 - r`` lognormal for same cells, beta for different
  cells (CellReg fits this one by expectation-maximisation).

Both mixtures are fitted to the data of the subject (maximum likelihood); ``P_same`` of a pair
is the posterior of the *same* component. CellReg uses one of the two models; ``joint`` combines
them as independent evidence (the posterior odds are the prior odds times both likelihood
ratios). With fewer than :data:`MIN_PAIRS` candidates the models are not fitted: defaults of
typical two-photon data are used instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

MIN_PAIRS = 40
EPS = 1e-4
MODELS = ("spatial_correlation", "centroid_distance", "joint")


@dataclass
class PairModel:
    """Fitted parameters of both mixtures (:func:`fit`) and how many pairs they came from."""

    max_distance: float
    dist: dict = field(default_factory=dict)     # p_same, mu, sigma, slope, centre
    corr: dict = field(default_factory=dict)     # p_same, mu, sigma, a, b
    n_pairs: int = 0
    fitted: bool = False

    def _diff_dist_pdf(self, d):
        grid = np.linspace(0, self.max_distance, 400)
        g = grid * _sigmoid(grid, self.dist["slope"], self.dist["centre"])
        z = np.trapezoid(g, grid) + 1e-12
        return np.asarray(d, float) * _sigmoid(d, self.dist["slope"], self.dist["centre"]) / z

    def likelihoods_distance(self, d) -> tuple[np.ndarray, np.ndarray]:
        d = np.clip(np.asarray(d, float), EPS, None)
        same = stats.lognorm.pdf(d, self.dist["sigma"], scale=np.exp(self.dist["mu"]))
        return same, self._diff_dist_pdf(d)

    def likelihoods_correlation(self, r) -> tuple[np.ndarray, np.ndarray]:
        u = np.clip(1 - np.asarray(r, float), EPS, 1 - EPS)
        same = stats.lognorm.pdf(u, self.corr["sigma"], scale=np.exp(self.corr["mu"]))
        diff = stats.beta.pdf(u, self.corr["a"], self.corr["b"])
        return same, diff

    def p_same(self, d, r, which: str = "joint") -> np.ndarray:
        """P(same cell) of pairs at distance ``d`` (µm) with footprint correlation ``r``."""
        if which not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {which!r}")
        parts = []
        if which in ("centroid_distance", "joint"):
            parts.append((self.dist["p_same"],) + self.likelihoods_distance(d))
        if which in ("spatial_correlation", "joint"):
            parts.append((self.corr["p_same"],) + self.likelihoods_correlation(r))
        prior = float(np.mean([p for p, _, _ in parts]))
        prior = float(np.clip(prior, 0.01, 0.99))
        log_odds = np.log(prior / (1 - prior)) + sum(np.log(s + 1e-300) - np.log(f + 1e-300) for _, s, f in parts)
        out = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -50, 50)))
        # negative or no correlation is no evidence of the same cell
        return np.where(np.asarray(r, float) <= 0, 0.0, out)

    def as_dict(self) -> dict:
        return dict(n_pairs=self.n_pairs, fitted=self.fitted, max_distance=self.max_distance,
                    distance=dict(self.dist), correlation=dict(self.corr))


def _sigmoid(x, slope, centre):
    return 1.0 / (1.0 + np.exp(-slope * (np.asarray(x, float) - centre)))


def default(max_distance: float) -> PairModel:
    """Typical two-photon values: same cells within ~1-3 µm and correlating at ~0.9."""
    return PairModel(max_distance=max_distance,
                     dist=dict(p_same=0.5, mu=np.log(1.5), sigma=0.6, slope=1.0, centre=0.5 * max_distance),
                     corr=dict(p_same=0.5, mu=np.log(0.1), sigma=0.7, a=2.0, b=2.0))


def _fit_distance(d: np.ndarray, max_distance: float) -> dict:
    """Maximum likelihood fit of the distance mixture."""
    d = np.clip(d, EPS, max_distance)
    near = d[d < 0.5 * max_distance]
    mu0, s0 = (np.log(near).mean(), max(np.log(near).std(), 0.2)) if len(near) > 5 else (np.log(1.5), 0.6)
    model = PairModel(max_distance=max_distance)

    def nll(x):
        p, mu, s, k, c = x
        model.dist = dict(p_same=p, mu=mu, sigma=s, slope=k, centre=c)
        fs, fd = model.likelihoods_distance(d)
        return -np.sum(np.log(p * fs + (1 - p) * fd + 1e-300))

    x0 = [max(min(len(near) / len(d), 0.9), 0.1), mu0, s0, 1.0, 0.5 * max_distance]
    bounds = [(0.01, 0.99), (np.log(0.05), np.log(max_distance)), (0.1, 2.0), (0.05, 10.0),
              (0.0, max_distance)]
    res = optimize.minimize(nll, x0, method="L-BFGS-B", bounds=bounds)
    p, mu, s, k, c = res.x
    return dict(p_same=float(p), mu=float(mu), sigma=float(s), slope=float(k), centre=float(c))


def _beta_moments(u: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted method-of-moments beta parameters."""
    w = w / (w.sum() + 1e-12)
    m = float(np.dot(w, u))
    v = float(np.dot(w, (u - m) ** 2)) + 1e-6
    common = max(m * (1 - m) / v - 1, 1e-3)
    return max(m * common, 0.05), max((1 - m) * common, 0.05)


def _fit_correlation(r: np.ndarray, iterations: int = 100) -> dict:
    """Expectation-maximisation of the correlation mixture (as CellReg: start from the pairs
    above / below 0.7)."""
    r = r[r > 0]
    u = np.clip(1 - r, EPS, 1 - EPS)
    hi = r >= 0.7
    mu = np.log(u[hi]).mean() if hi.sum() > 2 else np.log(0.1)
    sig = max(np.log(u[hi]).std(), 0.1) if hi.sum() > 2 else 0.7
    a, b = _beta_moments(u[~hi], np.ones((~hi).sum())) if (~hi).sum() > 2 else (2.0, 2.0)
    p = 0.5
    for _ in range(iterations):
        fs = stats.lognorm.pdf(u, sig, scale=np.exp(mu))
        fd = stats.beta.pdf(u, a, b)
        w = p * fs / (p * fs + (1 - p) * fd + 1e-300)
        p = float(np.clip(w.mean(), 0.01, 0.99))
        mu = float(np.dot(w, np.log(u)) / (w.sum() + 1e-12))
        sig = float(max(np.sqrt(np.dot(w, (np.log(u) - mu) ** 2) / (w.sum() + 1e-12)), 0.05))
        a, b = _beta_moments(u, 1 - w)
    return dict(p_same=p, mu=mu, sigma=sig, a=float(a), b=float(b))


def fit(distances: np.ndarray, correlations: np.ndarray, max_distance: float) -> PairModel:
    """Both mixtures fitted to every candidate pair of the subject (:data:`MIN_PAIRS` at least,
    else :func:`default`)."""
    d = np.asarray(distances, float)
    r = np.asarray(correlations, float)
    if len(d) < MIN_PAIRS or (r > 0).sum() < MIN_PAIRS:
        out = default(max_distance)
        out.n_pairs = len(d)
        return out
    return PairModel(max_distance=max_distance, dist=_fit_distance(d, max_distance), corr=_fit_correlation(r),
                     n_pairs=len(d), fitted=True)

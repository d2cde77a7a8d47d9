"""Residual covariance structures of :mod:`hipstats.models.mmrm` (mmrm's parameterisation).

:class:`Structure` is ``Sigma(theta) = D C D`` on ``m`` visits for one of :data:`COVARIANCES`,
with its first and second derivatives in ``theta`` (for the analytic gradient and the
Kenward-Roger terms), parameter names and a start from an empirical covariance; the structures
and their parameters are tabulated in :mod:`hipstats.models.mmrm`.

Examples
--------
>>> import numpy as np
>>> from hipstats.models._mmrm_covariance import Structure
>>> np.round(Structure("cs", 3).sigma(np.array([np.log(2.0), 0.0])), 3).tolist()[0]
[4.0, 1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from hipstats.errors import AnalysisError

__all__ = ["COVARIANCES", "Structure", "normalize_covariance"]

#: Covariance structures and their long names (``"toeplitz"`` is accepted for ``"toep"``).
COVARIANCES: dict[str, str] = {
    "us": "unstructured", "toep": "Toeplitz", "toeph": "heterogeneous Toeplitz",
    "ar1": "first-order autoregressive", "ar1h": "heterogeneous first-order autoregressive",
    "cs": "compound symmetry", "csh": "heterogeneous compound symmetry"}
_ALIASES = {"toeplitz": "toep", "unstructured": "us", "ar(1)": "ar1", "compound symmetry": "cs"}


def normalize_covariance(covariance: str) -> str:
    """The key of :data:`COVARIANCES` that ``covariance`` names (``"toeplitz"`` -> ``"toep"``).

    Parameters
    ----------
    covariance : str
        A key or accepted alias, any case.

    Returns
    -------
    str

    Raises
    ------
    hipstats.errors.AnalysisError
        For an unknown structure, listing the known ones.

    Examples
    --------
    >>> normalize_covariance("Toeplitz"), normalize_covariance("AR(1)")
    ('toep', 'ar1')
    """
    key = str(covariance).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in COVARIANCES:
        raise AnalysisError(f"unknown covariance={covariance!r}; use one of {list(COVARIANCES)} "
                            "('toeplitz' is accepted for 'toep')")
    return key


def _r(x):
    """``x / sqrt(1 + x^2)`` and its first two derivatives (mmrm's map to a correlation)."""
    s = 1.0 + x * x
    return x / np.sqrt(s), s ** -1.5, -3.0 * x * s ** -2.5


def _cs_rho(x, m):
    a = 1.0 / (m - 1.0) if m > 1 else 0.0
    e = 1.0 / (1.0 + np.exp(-x))
    return e * (1.0 + a) - a, (1.0 + a) * e * (1.0 - e), (1.0 + a) * e * (1.0 - e) * (1.0 - 2.0 * e)


class Structure:
    """``Sigma(theta) = D C D`` of one covariance structure on ``m`` visits, with derivatives.

    Parameters
    ----------
    name : str
        A key of :data:`COVARIANCES` (normalised, see :func:`normalize_covariance`).
    m : int
        Number of visits.

    Attributes
    ----------
    k, nsd, ncor : int
        Parameters: all, SDs (``log_sd``), correlation parameters.
    hetero : bool
        One SD per visit.

    Examples
    --------
    >>> import numpy as np
    >>> st = Structure("ar1", 3)
    >>> st.k, st.param_names(["w0", "w4", "w8"])
    (2, ['log_sd', 'rho'])
    >>> np.round(st.sigma(np.array([0.0, 1.0])), 4).tolist()[0]
    [1.0, 0.7071, 0.5]
    """

    def __init__(self, name: str, m: int):
        self.name, self.m = name, m
        self.hetero = name in ("us", "toeph", "ar1h", "csh")
        self.nsd = m if self.hetero else 1
        self.ncor = {"us": m * (m - 1) // 2, "toep": m - 1, "toeph": m - 1, "ar1": 1, "ar1h": 1,
                     "cs": 1, "csh": 1}[name]
        if m == 1:
            self.ncor = 0
        self.k = self.nsd + self.ncor
        self.lower = [(i, j) for i in range(m) for j in range(i)]       # mmrm's row-wise order
        lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
        self.lag = lag
        # constant tensors: Dsd[a] = e_a 1' + 1 e_a' (the visits whose SD parameter a sets)
        E = np.eye(m) if self.hetero else np.ones((1, m))
        self._Dsd = E[:, :, None] + E[:, None, :]                        # (nsd, m, m)
        self._Dsd2 = self._Dsd[:, None] * self._Dsd[None, :]             # (nsd, nsd, m, m)
        if name == "us" and m > 1:
            c = len(self.lower)
            self._rows = np.array([i for i, _ in self.lower])
            self._cols = np.array([j for _, j in self.lower])
            Eu = np.zeros((c, m, m))
            Eu[np.arange(c), self._rows, self._cols] = 1.0
            self._Eu = Eu
            EE = np.einsum("kab,lcb->klac", Eu, Eu)                      # E_k E_l'
            self._d2C_us = EE + EE.transpose(0, 1, 3, 2)

    def param_names(self, labels) -> list[str]:
        labels = [str(v) for v in labels]
        sd = [f"log_sd[{v}]" for v in labels] if self.hetero else ["log_sd"]
        if self.ncor == 0:
            return sd
        if self.name == "us":
            cor = [f"chol[{labels[i]},{labels[j]}]" for i, j in self.lower]
        elif self.name in ("toep", "toeph"):
            cor = [f"cor_lag{l}" for l in range(1, self.m)]
        else:
            cor = ["rho"]
        return sd + cor

    def _corr(self, phi):
        """``C``, ``dC/dphi`` (c, m, m) and ``d2C`` (c, c, m, m)."""
        m, c = self.m, self.ncor
        C = np.eye(m)
        dC = np.zeros((c, m, m))
        d2C = np.zeros((c, c, m, m))
        if c == 0:
            return C, dC, d2C
        if self.name == "us":
            U = np.eye(m)
            U[self._rows, self._cols] = phi
            C = U @ U.T
            EU = self._Eu @ U.T                                          # E_k U'
            dC = EU + EU.transpose(0, 2, 1)
            return C, dC, self._d2C_us
        if self.name in ("toep", "toeph"):
            r, r1, r2 = _r(np.asarray(phi, float))
            for l in range(1, m):
                mask = self.lag == l
                C[mask] = r[l - 1]
                dC[l - 1][mask] = r1[l - 1]
                d2C[l - 1, l - 1][mask] = r2[l - 1]
            return C, dC, d2C
        if self.name in ("ar1", "ar1h"):
            rho, r1, r2 = (float(v) for v in _r(float(phi[0])))
            d = self.lag.astype(float)
            C = rho ** d
            with np.errstate(divide="ignore", invalid="ignore"):
                p1 = np.where(d >= 1, d * rho ** np.maximum(d - 1, 0), 0.0)
                p2 = np.where(d >= 2, d * (d - 1) * rho ** np.maximum(d - 2, 0), 0.0)
            dC[0] = p1 * r1
            d2C[0, 0] = p2 * r1 ** 2 + p1 * r2
            return C, dC, d2C
        rho, r1, r2 = _cs_rho(float(phi[0]), m)
        off = ~np.eye(m, dtype=bool)
        C[off] = rho
        dC[0][off] = r1
        d2C[0, 0][off] = r2
        return C, dC, d2C

    def sigma(self, theta, order=0):
        """``Sigma`` (m, m); with ``order >= 1`` also ``dSigma`` (k, m, m), ``order 2`` ``d2Sigma``."""
        theta = np.asarray(theta, float)
        m, k, ns = self.m, self.k, self.nsd
        sd = np.exp(theta[:ns]) if self.hetero else np.full(m, np.exp(theta[0]))
        C, dC, d2C = self._corr(theta[ns:])
        S = sd[:, None] * C * sd[None, :]
        if order == 0:
            return S
        dS = np.empty((k, m, m))
        dS[:ns] = self._Dsd * S
        dS[ns:] = sd[None, :, None] * dC * sd[None, None, :]
        if order == 1:
            return S, dS
        d2S = np.zeros((k, k, m, m))
        d2S[:ns, :ns] = self._Dsd2 * S
        d2S[:ns, ns:] = self._Dsd[:, None] * dS[None, ns:]
        d2S[ns:, :ns] = d2S[:ns, ns:].transpose(1, 0, 2, 3)
        d2S[ns:, ns:] = sd[None, None, :, None] * d2C * sd[None, None, None, :]
        return S, dS, d2S

    def start(self, S):
        """``theta`` reproducing (approximately, for structured ``C``) the covariance ``S``."""
        m = self.m
        sd = np.sqrt(np.maximum(np.diag(S), 1e-8))
        R = S / np.outer(sd, sd)
        th_sd = np.log(sd) if self.hetero else np.array([np.log(np.sqrt(np.mean(sd ** 2)))])
        if self.ncor == 0:
            return th_sd
        if self.name == "us":
            L = np.linalg.cholesky(R)
            U = L / np.diag(L)[:, None]
            return np.r_[th_sd, [U[i, j] for i, j in self.lower]]

        def r_inv(rho):
            rho = np.clip(rho, -0.9, 0.95)
            return rho / np.sqrt(1.0 - rho ** 2)

        if self.name in ("toep", "toeph"):
            return np.r_[th_sd, [r_inv(np.mean(R[self.lag == l])) for l in range(1, m)]]
        if self.name in ("ar1", "ar1h"):
            return np.r_[th_sd, r_inv(np.mean(R[self.lag == 1]))]
        a = 1.0 / (m - 1.0)
        rho = float(np.clip(np.mean(R[~np.eye(m, dtype=bool)]), -a + 0.05, 0.95))
        e = (rho + a) / (1.0 + a)
        return np.r_[th_sd, np.log(e / (1.0 - e))]

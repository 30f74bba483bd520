"""Claims of the papers, checked on a run: one threshold gives both the text and the test.

A claim is built from checks. `check(quantity, value, op, bound)` compares one measured
value with one threshold and yields the `expected` text ("ratio at the ES point ≤ 1.5")
and the verdict from the same numbers, so no threshold is ever written twice:

  claims.claim("best_test_below_noise", PAPER, "At the early-stopping point ...",
               [claims.check("best test error", best, "<", rate, "noise rate")],
               measured={"best": best})

`condition(text, passed)` is a check with no threshold (e.g. "every seed has a window").
A claim passes when all its checks pass; nothing is hard-coded. Claim ids are
`<part>/<name>`: parts return names and the runner prefixes the part.

Statistical claims are judged over seeds (see `SeedStats`): the claim names the statistic
("mean over 8 seeds", "95% CI of the paired difference below 0").
"""

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from noisejax.errors import check_choice

PAPERS = {
    "clean-priority": "Liu, Abedsoltan & Belkin, On Emergence of Clean-Priority Learning in Early Stopped Neural Networks",
    "misclassification": "Cornacchia, Hazła, Nachum & Yehudayoff, Regularization by Misclassification in ReLU Neural Networks",
    "early-stopping": "Li, Soltanolkotabi & Oymak, Gradient Descent with Early Stopping is Provably Robust to Label Noise",
    "feature-learning": "On the Role of Label Noise in the Feature Learning Process (ICML 2025)",
    "sln": "Chen et al., Noise against Noise: Stochastic Label Noise Helps Combat Inherent Label Noise",
    "engineering": "noisejax engineering targets (benchmarks)",
}


def to_jsonable(value):
  """Numpy / jax scalars and arrays to plain JSON values (NaN/Inf become strings)."""
  if isinstance(value, dict):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if isinstance(value, (str, bool)) or value is None:
    return value
  if hasattr(value, "shape") and getattr(value, "shape", ()) != ():
    return to_jsonable(np.asarray(value).tolist())
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    return int(value)
  if isinstance(value, np.bool_):
    return bool(value)
  try:
    number = float(value)
  except (TypeError, ValueError):
    return str(value)
  return number if math.isfinite(number) else str(number)


@dataclasses.dataclass(frozen=True)
class Claim:
  """One claim of a paper, checked on one run; `passed` is computed from `measured`."""
  id: str
  paper: str
  statement: str
  expected: str
  measured: Any
  passed: bool

  def __post_init__(self):
    check_choice("claim.paper", self.paper, tuple(PAPERS))
    object.__setattr__(self, "passed", bool(self.passed))
    object.__setattr__(self, "measured", to_jsonable(self.measured))


@dataclasses.dataclass(frozen=True)
class Check:
  text: str
  passed: bool


_OPS = {"<": (lambda a, b: a < b, "<"), "<=": (lambda a, b: a <= b, "≤"),
        ">": (lambda a, b: a > b, ">"), ">=": (lambda a, b: a >= b, "≥"),
        "==": (lambda a, b: a == b, "=")}


def _fmt(x) -> str:
  if isinstance(x, (bool, np.bool_)):
    return str(bool(x)).lower()
  if isinstance(x, (int, np.integer)):
    return str(int(x))
  return f"{float(x):.3g}"


def check(quantity: str, value, op: str, bound, bound_name: str = "") -> Check:
  """`quantity op bound`, e.g. check("ratio at ES", 1.28, "<=", 1.23). A value that is
  None or NaN fails."""
  compare, symbol = _OPS[op]
  name = f"{bound_name} " if bound_name else ""
  text = f"{quantity} {symbol} {name}{_fmt(bound)}"
  ok = value is not None and not (isinstance(value, float) and math.isnan(value))
  return Check(text, bool(ok and compare(value, bound)))


def between(quantity: str, value, low, high) -> Check:
  """low ≤ value ≤ high."""
  ok = value is not None and low <= value <= high
  return Check(f"{quantity} in [{_fmt(low)}, {_fmt(high)}]", bool(ok))


def within(quantity: str, value, target, rel_tol: float) -> Check:
  """|value / target − 1| ≤ rel_tol."""
  ok = value is not None and abs(value / target - 1) <= rel_tol
  return Check(f"{quantity} within ±{rel_tol:.0%} of {_fmt(target)}", bool(ok))


def condition(text: str, passed) -> Check:
  """A check with no threshold: its text and whether it holds."""
  return Check(text, bool(passed))


def claim(name: str, paper: str, statement: str, checks: Sequence[Check],
          measured=None) -> Claim:
  """A claim that holds when every check holds; `expected` joins the checks' texts."""
  checks = list(checks)
  return Claim(name, paper, statement, "; ".join(c.text for c in checks),
               measured, all(c.passed for c in checks))


# ----------------------------------------------------------------------------
# Over seeds.


@dataclasses.dataclass(frozen=True)
class SeedStats:
  """Mean, standard deviation and a 95% t confidence interval of per-seed values."""
  values: tuple
  mean: float
  std: float
  ci_low: float
  ci_high: float

  @classmethod
  def of(cls, values) -> "SeedStats":
    v = np.asarray(values, dtype=np.float64).ravel()
    n = len(v)
    mean = float(v.mean()) if n else float("nan")
    std = float(v.std(ddof=1)) if n > 1 else float("nan")
    half = _t95(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
    return cls(tuple(float(x) for x in v), mean, std, mean - half, mean + half)

  @property
  def n(self) -> int:
    return len(self.values)

  def measured(self) -> dict:
    return {"mean": self.mean, "std": self.std, "ci95": [self.ci_low, self.ci_high],
            "per_seed": list(self.values), "seeds": self.n}


_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def _t95(dof: int) -> float:
  """Two-sided 95% quantile of Student's t with `dof` degrees of freedom."""
  if dof in _T95:
    return _T95[dof]
  if dof > 30:
    return 1.96 + 2.4 / dof
  below = max(k for k in _T95 if k < dof)
  above = min(k for k in _T95 if k > dof)
  w = (dof - below) / (above - below)
  return (1 - w) * _T95[below] + w * _T95[above]


def check_mean(quantity: str, stats: SeedStats, op: str, bound, bound_name: str = "") -> Check:
  """The mean over seeds `op` bound."""
  c = check(f"{quantity}, mean over {stats.n} seeds", stats.mean, op, bound, bound_name)
  return c


def check_ci(quantity: str, stats: SeedStats, side: str, bound) -> Check:
  """The whole 95% confidence interval of the mean below (side="below") or above `bound`."""
  check_choice("side", side, ("below", "above"))
  ok = stats.ci_high < bound if side == "below" else stats.ci_low > bound
  return Check(f"{quantity}, 95% CI of the mean over {stats.n} seeds {side} {_fmt(bound)}",
               bool(stats.n > 1 and ok))


def check_every_seed(quantity: str, values, op: str, bound, bound_name: str = "") -> Check:
  """Every seed's value `op` bound."""
  compare, symbol = _OPS[op]
  values = list(values)
  name = f"{bound_name} " if bound_name else ""
  ok = bool(values) and all(v is not None and compare(v, bound) for v in values)
  return Check(f"{quantity} {symbol} {name}{_fmt(bound)} in each of {len(values)} seeds", ok)

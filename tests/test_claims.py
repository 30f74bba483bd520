"""claims: one threshold gives the text and the verdict; statistics over seeds."""

import numpy as np
import pytest

from noisejax import claims
from noisejax.errors import ConfigError


def test_check_text_and_verdict_come_from_one_threshold():
  c = claims.check("ratio at the ES point", 1.28, "<=", 1.23)
  assert c.text == "ratio at the ES point ≤ 1.23" and not c.passed
  assert claims.check("best test error", 0.06, "<", 0.3, "noise rate").text == \
      "best test error < noise rate 0.3"
  assert not claims.check("x", float("nan"), "<", 1).passed
  assert not claims.check("x", None, ">", 0).passed


def test_claim_passes_only_when_every_check_does():
  ok = claims.claim("a", "sln", "s", [claims.check("x", 1, "<", 2), claims.between("y", 5, 0, 9)])
  assert ok.passed and ok.expected == "x < 2; y in [0, 9]"
  bad = claims.claim("a", "sln", "s", [claims.check("x", 1, "<", 2),
                                       claims.condition("every seed has a window", False)])
  assert not bad.passed and bad.expected.endswith("every seed has a window")


def test_claim_measured_values_are_json():
  claim = claims.Claim("x", "sln", "s", "e",
                       {"a": np.float32(0.5), "b": np.arange(2), "c": float("nan")},
                       np.bool_(True))
  assert claim.measured == {"a": 0.5, "b": [0, 1], "c": "nan"} and claim.passed is True
  with pytest.raises(ConfigError, match="claim.paper"):
    claims.Claim("x", "unknown-paper", "s", "e", 1, True)


def test_seed_stats_t_interval():
  stats = claims.SeedStats.of([1.0, 2.0, 3.0, 4.0])
  assert stats.mean == 2.5 and stats.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
  half = 3.182 * stats.std / 2  # t_{0.975, 3} · s / √4
  assert (stats.ci_low, stats.ci_high) == pytest.approx((2.5 - half, 2.5 + half))
  assert stats.measured()["seeds"] == 4
  below = claims.check_ci("paired difference", claims.SeedStats.of([-3, -2, -2.5, -1.5]),
                          "below", 0)
  assert below.passed and "95% CI of the mean over 4 seeds below 0" in below.text
  assert not claims.check_ci("d", claims.SeedStats.of([-1, 1, -1, 1]), "below", 0).passed
  assert not claims.check_ci("d", claims.SeedStats.of([-1]), "below", 0).passed  # one seed


def test_every_seed_check():
  c = claims.check_every_seed("test error at T1", [0.0, 0.01, 0.002], "<=", 0.01)
  assert c.passed and c.text == "test error at T1 ≤ 0.01 in each of 3 seeds"
  assert not claims.check_every_seed("x", [0.0, None], "<=", 1).passed

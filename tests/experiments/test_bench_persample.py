"""The benchmark: tiny preset end to end (claims present, torch off) and its report."""

import json
import sys

import numpy as np

from experiments import bench_persample as bench
from noisejax import experiment
from noisejax.persample import benchmark as bm


def test_tiny_preset_end_to_end(tmp_path):
  claims = experiment.execute("bench_persample", bench.get_config("tiny"), tmp_path,
                              bench.PARTS)
  by_id = {c.id: c for c in claims}
  assert list(by_id) == ["timings/cnn_ratio", "timings/fcn_ratio", "timings/torch_speedup",
                         "timings/agreement"]
  assert all(c.paper == "engineering" for c in claims)
  # torch off: the torch targets are reported as not measured and fail, never dropped.
  assert not by_id["timings/torch_speedup"].passed
  assert "not measured" in by_id["timings/torch_speedup"].measured
  agreement = by_id["timings/agreement"].measured
  assert "not measured" in agreement["torch"]
  assert agreement["loop"]["rel"] < 1e-3 and agreement["loop"]["cos"] < 1e-4  # (b) = (d)
  record = experiment.load_record(tmp_path / "records" / "timings")
  rows = {(r["model"], r["batch"]): r for r in record["rows"]}
  assert set(rows) == {("fcn", 8), ("cnn", 16)}
  assert rows[("cnn", 16)]["params"] == 609_354 and rows[("fcn", 8)]["params"] == 665_089
  assert set(rows[("fcn", 8)]["times"]) == {"plain", "diag", "loop", "vmap"}
  assert set(rows[("cnn", 16)]["times"]) == {"plain", "diag"}
  ratio = rows[("cnn", 16)]["diag_over_plain"]
  assert by_id["timings/cnn_ratio"].measured == {"16": round(ratio, 2)}
  table = (tmp_path / "bench_table.md").read_text()
  assert "| CNN | 16 |" in table and "torch absent" in table and "NOT met" in table
  assert (tmp_path / "bench_time_vs_batch.png").stat().st_size > 10_000
  assert sorted(p.name for p in tmp_path.glob("*.png")) == ["bench_time_vs_batch.png"]
  saved = json.loads((tmp_path / "claims.json").read_text())
  replotted = experiment.execute("bench_persample", bench.get_config("tiny"), tmp_path,
                                 bench.PARTS, replot=True)
  assert [c.measured for c in replotted] == [c["measured"] for c in saved]


def _row(kind, b, ratio, speedup):
  return {"model": kind, "batch": b, "plain_s": 1.0, "diag_s": ratio, "diag_over_plain": ratio,
          "torch_s": ratio * speedup, "torch_over_diag": speedup, "compile_plain_s": 1.0,
          "compile_diag_s": 2.0, "rounds": 3, "torch_vs_diag": {"rel": 1e-5, "cos": 1e-6},
          "loop_vs_diag": {"rel": 1e-6, "cos": 2e-4}}


def _record(rows, torch_missing=None):
  return {"rows": rows, "threads": 2, "cpu_count": 2, "load_average": [1.0, 2.0],
          "jax": "0", "torch": None if torch_missing else "2.13.0", "torch_missing": torch_missing}


def test_claims_on_hand_made_rows_and_missing_torch(monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)        # `import torch` raises ImportError
  assert bm.import_torch() is None
  config = bench.get_config("quick")
  rows = [_row("fcn", 256, 1.4, 3.0), _row("cnn", 32, 1.9, 2.5), _row("cnn", 512, 2.1, 1.5)]
  claims = bench.judge(_record(rows), config)
  assert [c.passed for c in claims] == [False, True, False, False]
  assert claims[0].measured == {"32": 1.9, "512": 2.1}
  assert "Δ cos θ| ≤ 0.0001" in claims[3].expected      # the loop's 2e-4 fails it
  missing = [{k: v for k, v in r.items() if not k.startswith("torch")} for r in rows]
  claims = bench.judge(_record(missing, "torch is not installed"), config)
  assert claims[2].measured == "not measured: torch is not installed" and not claims[2].passed
  assert claims[3].measured["torch"] == "not measured: torch is not installed"
  assert not claims[3].passed
  table = bench.table(_record(missing, "torch is not installed"), claims)
  assert "| CNN | 512 |" in table and "NOT met" in table and "torch absent" in table


def test_max_errors_compare_angles_by_cosine_and_nan_patterns():
  a = {"angle_to_clean_B": np.array([10.0, np.nan]), "x_B": np.ones(2)}
  assert bm.max_errors(a, a) == {"rel": 0.0, "cos": 0.0}
  assert bm.max_errors({"x": np.array([np.nan])}, {"x": np.array([1.0])})["rel"] == np.inf
  errors = bm.max_errors({"angle_x": np.array([60.0]), "y": np.array([1.1])},
                         {"angle_x": np.array([90.0]), "y": np.array([1.0])})
  np.testing.assert_allclose([errors["cos"], errors["rel"]], [0.5, 0.1], rtol=1e-6)

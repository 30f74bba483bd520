"""End to end: kernel_early_stopping's tiny preset writes its record, figure, metrics and
claims; --replot gives the same claims."""

import json

import numpy as np
import pytest

from experiments import kernel_early_stopping
from noisejax import early_stopping, experiment
from noisejax.errors import ConfigError


def _execute(config, workdir, **kwargs):
  return experiment.execute("kernel_early_stopping", config, workdir,
                            kernel_early_stopping.PARTS, validate=kernel_early_stopping.validate,
                            **kwargs)


def test_tiny_preset_end_to_end_and_replot(tmp_path):
  claims = _execute(kernel_early_stopping.get_config("tiny"), tmp_path)
  assert [c.id for c in claims] == ["fig9/laplacian_below_noise", "fig9/laplacian_u_shape",
                                    "fig9/gaussian_below_noise", "fig9/gaussian_u_shape"]
  # even 160 samples with 40% noise: the best test error is below 0.4
  assert claims[0].measured["min_test_error"] < 0.4
  metrics = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert {m["kernel"] for m in metrics} == {"laplacian", "gaussian"}
  assert metrics[0]["test_error"] == 0.5  # f = 0 at step 0 predicts class 0 everywhere
  record = experiment.load_record(tmp_path / "records" / "fig9")
  curve = record["curves"]["laplacian"]
  assert record["n_train"] == 160 and record["n_val"] == 40  # 40 held out, noisy labels
  assert curve["step"][0] == 0 and curve["step"][-1] == 3000
  es = early_stopping.index(curve["val_error"])  # the claims' ES point
  assert claims[0].measured["test_error_at_es"] == pytest.approx(curve["test_error"][es])
  laplacian = [m for m in metrics if m["kernel"] == "laplacian"]
  np.testing.assert_allclose(curve["test_error"], [m["test_error"] for m in laplacian])
  assert claims[0].measured["min_test_error"] == pytest.approx(curve["test_error"].min())
  assert curve["train_error"][-1] == 0.0  # the kernel machine interpolates the noisy labels
  assert (tmp_path / "fig9_kernel_early_stopping.png").stat().st_size > 10_000
  saved = json.loads((tmp_path / "claims.json").read_text())
  assert [c["id"] for c in saved] == [c.id for c in claims]
  replotted = _execute(kernel_early_stopping.get_config("tiny"), tmp_path, replot=True)
  assert replotted == claims


@pytest.mark.parametrize("field, value", [("data.classes", (7, 8, 9)),
                                          ("kernel.names", ("polynomial",)),
                                          ("kernel.method", "newton"), ("kernel.lr", 2.5)])
def test_bad_config_fails_before_anything_runs(tmp_path, field, value):
  config = kernel_early_stopping.get_config("tiny")
  experiment.apply_override(config, field, value if isinstance(value, str) else repr(value))
  with pytest.raises(ConfigError, match=field):
    _execute(config, tmp_path)
  assert not (tmp_path / "records").exists()

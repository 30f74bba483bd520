"""End to end: misclassification_sparsity's tiny preset (Fig. 1, MNIST) and the §6.4 part
on stand-in images: records, figures, metrics and claims."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import misclassification_sparsity as E
from noisejax import config as cfg, data, experiment
from noisejax.errors import ConfigError

IDS = ["fig1/fig1_noise_lowers_test_error", "fig1/fig1_noise_sparsifies",
       "fig1/fig1_fits_training_set", "fig1/fig1_test_error_stabilized", "fig1/sec63_sparse_net",
       "fig1/appA_a_of_p_continuous", "mnist/fig5_noise_sparsifies",
       "mnist/fig5_noise_test_error", "mnist/fig6_more_digit_associated",
       "mnist/sec64_softmax_denser", "mnist/sec65_label_smoothing_sparsifies",
       "mnist/sec65_label_smoothing_denser_than_noise"]
FIGURES = ("fig1_hypercube.png", "fig5_mnist.png", "fig6_histograms_p0.png",
           "fig6_histograms_p0.1.png")


def _execute(config, workdir, **kwargs):
  return experiment.execute("misclassification_sparsity", config, workdir, E.PARTS,
                            validate=E.validate, **kwargs)


def _metrics(path):
  return [json.loads(l) for l in path.read_text().splitlines()]


def test_tiny_preset_end_to_end(tmp_path):
  config = E.get_config("tiny")
  claims = _execute(config, tmp_path)
  assert [c.id for c in claims] == IDS
  saved = json.loads((tmp_path / "claims.json").read_text())
  assert [c["id"] for c in saved] == IDS

  fig1 = experiment.load_record(tmp_path / "records" / "fig1")
  np.testing.assert_array_equal(fig1["steps"], [0, 800, 1600, 2400, 3200])
  curves = fig1["curves"]
  assert curves["test_error"].shape == (2, 2, 5)  # P×S×T
  assert np.all((curves["active_train"] >= 0) & (curves["active_train"] <= 32))
  # Paired design: seed s starts from the same data and initialization at every p ...
  for k in E.CURVES:
    np.testing.assert_array_equal(curves[k][0, :, 0], curves[k][1, :, 0])
  # ... and the resampled labels then make the p = 0.2 runs differ.
  assert not np.array_equal(curves["active_train"][0, :, -1], curves["active_train"][1, :, -1])
  # The claim is judged on the paired per-seed differences of the last-quarter test errors.
  last = curves["test_error"][..., -1:].mean(-1)  # tiny: the last quarter is one evaluation
  assert claims[0].measured["difference"]["per_seed"] == pytest.approx(last[1] - last[0])
  assert claims[0].measured["difference"]["seeds"] == 2
  a_of_p = fig1["a_of_p"]
  assert a_of_p["p"] == [0.0, 0.1, 0.2] and a_of_p["active_train"].shape == (3, 2)  # P×S
  assert a_of_p["steps"] == 10 * 32
  assert claims[5].measured["a"] == pytest.approx(a_of_p["active_train"].mean(1))
  net = fig1["sparse_net"]
  assert net["error"].shape == (2,) and np.all(net["active_inner"] == 0)
  runs = _metrics(tmp_path / "fig1" / "metrics.jsonl")
  assert len(runs) == 4 * 5 and {(r["p"], r["seed"]) for r in runs} == {
      (0.0, 0), (0.0, 1), (0.2, 0), (0.2, 1)}

  mnist = experiment.load_record(tmp_path / "records" / "mnist")
  np.testing.assert_allclose(mnist["epochs"], [0, 0.5, 1, 1.5, 2])
  assert set(mnist["runs"]) == {"sum_logistic_p0", "sum_logistic_p0.1", "cross_entropy_p0",
                                "cross_entropy_p0.1", "label_smoothing_p0"}
  # §6.5: label smoothing starts from the same initialization as softmax CE, seed by seed.
  np.testing.assert_array_equal(mnist["runs"]["label_smoothing_p0"]["curves"]["test_error"][:, 0],
                                mnist["runs"]["cross_entropy_p0"]["curves"]["test_error"][:, 0])
  assert len(mnist["runs"]["sum_logistic_p0.1"]["final"]) == 2  # seeds
  final = mnist["runs"]["sum_logistic_p0.1"]["final"][0]  # seed 0
  counts = final["firing_counts"]
  assert counts.shape == (16, 10) and counts.sum(0).max() <= 20 * 16  # 20 digits a class
  # Every firing is counted once: the counts add up to the active fraction.
  assert counts.sum() == pytest.approx(final["active_fraction"] * 200 * 16)
  assert final["never_fire"] == int(np.sum(counts.sum(1) == 0))
  assert len(_metrics(tmp_path / "mnist_cross_entropy" / "metrics.jsonl")) == 4 * 5
  for name in FIGURES:
    assert (tmp_path / name).stat().st_size > 10_000

  replotted = _execute(config, tmp_path, replot=True)
  assert [dataclasses.asdict(c) for c in replotted] == [dataclasses.asdict(c) for c in claims]


def test_cifar_part_on_stand_in_images(tmp_path, monkeypatch):
  """§6.4's path (label smoothing, augmentation, per-layer sparsity) on 64 random images;
  a small MLP stands in for ResNet-20 (whose compile alone takes ~30 s on a CPU)."""
  rng = np.random.default_rng(0)

  def fake_splits(data_config):
    assert data_config.name == "cifar10"
    return tuple(data.Dataset(rng.normal(size=(n, 32, 32, 3)).astype(np.float32),
                              rng.integers(0, 10, n).astype(np.int32), 10, "cifar10")
                 for n in (64, 32))

  monkeypatch.setattr(data, "load_splits", fake_splits)
  config = E.get_config("tiny")
  config.parts = ("cifar",)
  config.cifar.model = cfg.model("mlp", hidden=(32, 32))
  config.cifar.optim.update(dict(batch_size=32, epochs=1, checkpoint_every=1))
  config.cifar.update(dict(sparsity_limit=32, penultimate="hidden_1", deep_prefix="hidden_1"))
  claims = _execute(config, tmp_path)
  assert [c.id for c in claims] == ["cifar/sec64_cifar_label_smoothing_sparsifies",
                                    "cifar/sec64_cifar_deeper_layers_sparser",
                                    "cifar/sec64_cifar_accuracy"]
  record = experiment.load_record(tmp_path / "records" / "cifar")
  assert record["ce"]["sizes"] == {"hidden_0": 32, "hidden_1": 32}
  assert all(0 <= v <= 1 for v in record["ls"]["sparsity_test"].values())
  # One key for both trainings: the same initialization, so the same step-0 predictions.
  first = [_metrics(tmp_path / f"cifar_{n}" / "metrics.jsonl")[0] for n in ("ce", "ls")]
  assert first[0]["test_error"] == first[1]["test_error"]
  assert first[0]["test_loss"] != first[1]["test_loss"]
  assert (tmp_path / "sec64_cifar_sparsity.png").exists()


def test_bad_fields_fail_before_anything_runs(tmp_path):
  for field, value in (("fig1.optim.lr", -1.0), ("mnist.p", (0.0, 1.5)),
                       ("mnist.losses", ("hinge",)), ("parts", ("fig7",))):
    config = E.get_config("tiny")
    experiment.apply_override(config, field, repr(value))
    with pytest.raises(ConfigError, match=field):
      _execute(config, tmp_path)
  assert not any(tmp_path.iterdir())

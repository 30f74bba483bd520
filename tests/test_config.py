"""config: the shared pieces and one validation that finds them anywhere in a config."""

import ml_collections
import pytest

from noisejax import config as cfg
from noisejax.errors import ConfigError


def nested_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.binary = ml_collections.ConfigDict(dict(
      data=cfg.data("mnist5k", classes=(7, 9)), noise=cfg.noise("symmetric", 0.3),
      model=cfg.model("mlp", hidden=(8,)), loss=cfg.loss("logistic"),
      optim=cfg.optim("sgd", lr=0.1), method=cfg.method("erm")))
  c.sweeps = ml_collections.ConfigDict(dict(mnist=ml_collections.ConfigDict(dict(
      noise=ml_collections.ConfigDict(dict(kind="symmetric_all", rates=(0.0, 0.5)))))))
  return c


def test_valid_nested_config_passes():
  cfg.validate(nested_config())


@pytest.mark.parametrize("path,value,pattern", [
    ("binary.data.name", "imagenet", r"config.binary.data.name='imagenet'.*valid: mnist5k"),
    ("binary.noise.rate", 1.2, r"config.binary.noise.rate=1.2.*\[0, 1\)"),
    ("binary.noise.kind", "gaussian", r"config.binary.noise.kind='gaussian'.*valid: none"),
    ("binary.model.name", "vgg99", r"config.binary.model.name='vgg99'"),
    ("binary.loss.name", "focal", r"config.binary.loss.name='focal'"),
    ("binary.optim.lr", -0.1, r"config.binary.optim.lr=-0.1.*> 0"),
    ("binary.optim.batch_size", -4, r"config.binary.optim.batch_size=-4"),
    ("binary.optim.name", "lbfgs", r"config.binary.optim.name='lbfgs'.*valid: sgd"),
    ("binary.method.name", "mixup", r"config.binary.method.name='mixup'.*valid: erm"),
    ("sweeps.mnist.noise.rates", (0.1, 1.5), r"config.sweeps.mnist.noise.rates=1.5"),
])
def test_bad_field_anywhere_is_named_by_its_path(path, value, pattern):
  config = nested_config()
  *parents, leaf = path.split(".")
  node = config
  for p in parents:
    node = node[p]
  with node.ignore_type():
    node[leaf] = value
  with pytest.raises(ConfigError, match=pattern) as e:
    cfg.validate(config)
  assert "\n" not in str(e.value)


def test_bad_loss_and_method_hyperparameters():
  config = nested_config()
  config.binary.loss = cfg.loss("gce", q=2.0)
  with pytest.raises(ConfigError, match=r"config.binary.loss.q=2.0.*\(0, 1\]"):
    cfg.validate(config)
  config.binary.loss = cfg.loss("cross_entropy")
  config.binary.method = cfg.method("resample", sigma=1.0)
  with pytest.raises(ConfigError, match=r"config.binary.method.sigma=1.0.*valid: p"):
    cfg.validate(config)

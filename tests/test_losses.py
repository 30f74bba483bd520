"""Per-sample losses against values worked out by hand (not by calling the same code)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import losses
from noisejax.errors import ConfigError

LOG2 = 0.6931471805599453
LOG3 = math.log(3.0)
# logits [log 3, 0] → softmax p = [3/4, 1/4]; −log(3/4) = 0.2876820724517809.
TWO_CLASS_LOGITS = jnp.array([[LOG3, 0.0], [LOG3, 0.0]])
NEG_LOG_3_4 = 0.2876820724517809
NEG_LOG_1_4 = 1.3862943611198906


def test_cross_entropy_hand_values():
  # [2, 1, 0], label 1: log(e² + e + 1) − 1 = log(11.107338) − 1 = 1.4076060.
  logits = jnp.array([[0.0, 0.0], [LOG3, 0.0], [LOG3, 0.0]])
  labels = jnp.array([0, 0, 1])
  np.testing.assert_allclose(losses.cross_entropy(logits, labels),
                             [LOG2, NEG_LOG_3_4, NEG_LOG_1_4], rtol=1e-6)
  np.testing.assert_allclose(
      losses.cross_entropy(jnp.array([[2.0, 1.0, 0.0]]), jnp.array([1])), [1.4076060], rtol=1e-6)


def test_soft_target_cross_entropy_allows_sln_targets():
  # Uniform target on equal logits: log 2. SLN-like target [1.5, −0.5] on p = [3/4, 1/4]:
  # −(1.5·log(3/4) − 0.5·log(1/4)) = −(−0.4315231 + 0.6931472) = −0.2616241 (may be < 0).
  logits = jnp.array([[0.0, 0.0], [LOG3, 0.0]])
  targets = jnp.array([[0.5, 0.5], [1.5, -0.5]])
  np.testing.assert_allclose(losses.softmax_cross_entropy(logits, targets),
                             [LOG2, -0.2616241], rtol=1e-6)


def test_logistic_hand_values_and_gradient():
  # h = 0: log 2 for either label; h = 2, y = 0: log(1 + e²) = 2.1269280;
  # h = 2, y = 1: log(1 + e⁻²) = 0.1269280.
  h = jnp.array([[0.0], [0.0], [2.0], [2.0]])
  y = jnp.array([0, 1, 0, 1])
  np.testing.assert_allclose(losses.logistic(h, y), [LOG2, LOG2, 2.1269280, 0.1269280],
                             rtol=1e-6)
  # Clean-priority eq. 5: ∂ℓ/∂h = f − y with f = σ(h); σ(2) = 0.8807971.
  grads = jax.grad(lambda h: losses.logistic(h, y).sum())(h)[:, 0]
  np.testing.assert_allclose(grads, [0.5, -0.5, 0.8807971, 0.8807971 - 1.0], rtol=1e-6)


def test_hinge_hand_values():
  f = jnp.array([[0.5], [0.5], [2.0], [-1.0]])
  y = jnp.array([1, 0, 1, 0])  # ỹ = +1, −1, +1, −1
  # β = 0: max(0, −ỹf) = [0, 0.5, 0, 0].
  np.testing.assert_allclose(losses.make_loss("hinge", 2)(f, y), [0.0, 0.5, 0.0, 0.0])
  # β = 1: max(0, 1 − ỹf) = [0.5, 1.5, 0, 0].
  np.testing.assert_allclose(losses.make_loss("hinge", 2, beta=1.0)(f, y), [0.5, 1.5, 0.0, 0.0])


def test_sum_logistic_hand_values():
  # [0, 0, 0], label 1: 3·log 2 = 2.0794415.
  # [2, −1], label 0: targets (+1, −1): log(1 + e⁻²) + log(1 + e⁻¹) = 0.1269280 + 0.3132617.
  fn3 = losses.make_loss("sum_logistic", 3)
  np.testing.assert_allclose(fn3(jnp.zeros((1, 3)), jnp.array([1])), [2.0794415], rtol=1e-6)
  fn2 = losses.make_loss("sum_logistic", 2)
  np.testing.assert_allclose(fn2(jnp.array([[2.0, -1.0]]), jnp.array([0])), [0.4401897],
                             rtol=1e-6)
  # One output: the logistic loss log(1 + exp(−ỹh)); h = 2, label 0 → log(1 + e²).
  np.testing.assert_allclose(fn2(jnp.array([[2.0]]), jnp.array([0])), [2.1269280], rtol=1e-6)


def test_squared_hand_values():
  # One-hot: [1, 2] vs [0, 1]: ½(1 + 1) = 1; [0, 0, 1] vs [0, 0, 1]: 0.
  fn = losses.make_loss("squared", 3)
  np.testing.assert_allclose(fn(jnp.array([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]]),
                                jnp.array([1, 2])), [1.0, 0.0])
  # Scalar output, label 0: ±1 target −1 → ½(1.5)² = 1.125; {0,1} target 0 → ½(0.5)² = 0.125.
  f, y = jnp.array([[0.5], [0.5]]), jnp.array([0, 1])
  np.testing.assert_allclose(losses.make_loss("squared", 2)(f, y), [1.125, 0.125])
  np.testing.assert_allclose(losses.make_loss("squared", 2, scalar_target="01")(f, y),
                             [0.125, 0.125])


def test_gce_hand_values():
  labels = jnp.array([0, 1])
  # q = 0.5, p = 3/4: (1 − √0.75)/0.5 = 0.2679492; p = 1/4: (1 − 0.5)/0.5 = 1.
  np.testing.assert_allclose(losses.make_loss("gce", 2, q=0.5)(TWO_CLASS_LOGITS, labels),
                             [0.2679492, 1.0], rtol=1e-5)
  # q = 1: 1 − p.
  np.testing.assert_allclose(losses.make_loss("gce", 2, q=1.0)(TWO_CLASS_LOGITS, labels),
                             [0.25, 0.75], rtol=1e-6)
  # q → 0 approaches CE: (1 − 0.75^1e-4)/1e-4 = 0.2876779.
  np.testing.assert_allclose(losses.make_loss("gce", 2, q=1e-4)(TWO_CLASS_LOGITS, labels)[0],
                             0.2876779, rtol=1e-3)


def test_phuber_hand_values():
  labels = jnp.array([0, 1])
  # τ = 2: p = 3/4 > 1/2 → −log(3/4); p = 1/4 ≤ 1/2 → −2/4 + log 2 + 1 = 1.1931472.
  np.testing.assert_allclose(losses.make_loss("phuber", 2, tau=2.0)(TWO_CLASS_LOGITS, labels),
                             [NEG_LOG_3_4, 1.1931472], rtol=1e-6)
  # τ = 4 at p = 1/4 = 1/τ: −1 + log 4 + 1 = log 4 = −log(1/4) (continuous at the kink).
  np.testing.assert_allclose(losses.make_loss("phuber", 2, tau=4.0)(TWO_CLASS_LOGITS, labels),
                             [NEG_LOG_3_4, NEG_LOG_1_4], rtol=1e-6)
  # Linear branch: |∂ℓ/∂p_y| = τ, so the logit gradient is τ·p_y(1 − p_y) = 2·(3/16) = 0.375.
  grad = jax.grad(lambda z: losses.phuber_ce(z, labels[1:], tau=2.0).sum())(
      TWO_CLASS_LOGITS[1:])
  np.testing.assert_allclose(grad, [[0.375, -0.375]], rtol=1e-5)


def test_label_smoothing_hand_values():
  # α = 0.2, C = 2, label 0: ỹ = [0.9, 0.1]; −(0.9·log ¾ + 0.1·log ¼) = 0.3975433.
  fn = losses.make_loss("label_smoothing", 2, alpha=0.2)
  np.testing.assert_allclose(fn(TWO_CLASS_LOGITS[:1], jnp.array([0])), [0.3975433], rtol=1e-6)
  # α = 0 is plain cross-entropy.
  fn0 = losses.make_loss("label_smoothing", 2, alpha=0.0)
  np.testing.assert_allclose(fn0(TWO_CLASS_LOGITS, jnp.array([0, 1])),
                             [NEG_LOG_3_4, NEG_LOG_1_4], rtol=1e-6)


def test_cross_entropy_gradient_is_softmax_minus_onehot():
  logits = jnp.array([[2.0, 1.0, 0.0]])
  grad = jax.grad(lambda z: losses.cross_entropy(z, jnp.array([1])).sum())(logits)
  p = np.exp([2.0, 1.0, 0.0]) / np.exp([2.0, 1.0, 0.0]).sum()
  np.testing.assert_allclose(grad[0], p - np.array([0.0, 1.0, 0.0]), rtol=1e-5)


@pytest.mark.parametrize("name", losses.LOSSES)
def test_every_loss_is_per_sample_jittable_and_vmappable(name):
  num_classes = 2 if name in ("logistic", "hinge") else 3
  width = 1 if name in ("logistic", "hinge") else 3
  fn = losses.make_loss(name, num_classes)
  outputs = jax.random.normal(jax.random.key(0), (5, width))
  labels = jnp.array([0, 1, 1, 0, 1])
  batch = jax.jit(fn)(outputs, labels)
  assert batch.shape == (5,)
  assert np.all(np.isfinite(batch))
  one_by_one = jax.vmap(fn)(outputs, labels)  # unbatched calls: outputs (K,), label ()
  np.testing.assert_allclose(one_by_one, batch, rtol=1e-6)


def test_make_loss_errors_name_the_field():
  with pytest.raises(ConfigError, match=r"config\.loss\.name='nope'"):
    losses.make_loss("nope", 10)
  for name, field, value in [("gce", "q", 0.0), ("gce", "q", 1.5), ("phuber", "tau", 1.0),
                             ("label_smoothing", "alpha", 1.0),
                             ("label_smoothing", "alpha", -0.1), ("hinge", "beta", -1.0),
                             ("squared", "scalar_target", "zero_one")]:
    with pytest.raises(ConfigError, match=rf"config\.loss\.{field}="):
      losses.make_loss(name, 2, **{field: value})
  with pytest.raises(ConfigError, match=r"config\.loss\.q="):
    losses.make_loss("cross_entropy", 10, q=0.7)  # not a hyperparameter of CE
  with pytest.raises(ConfigError, match="num_classes=2"):
    losses.make_loss("logistic", 10)


def test_binary_losses_refuse_multi_column_outputs():
  for name in ("logistic", "hinge"):
    with pytest.raises(ValueError, match="num_outputs=1"):
      losses.make_loss(name, 2)(jnp.zeros((4, 2)), jnp.zeros(4, jnp.int32))
  for name in ("cross_entropy", "gce", "phuber"):
    with pytest.raises(ValueError, match="logistic"):
      losses.make_loss(name, 2)(jnp.zeros((4, 1)), jnp.zeros(4, jnp.int32))

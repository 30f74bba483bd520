"""Clean-priority paper, Figs. 1, 4–8, 10–13 and App. C: sample-wise gradients under label noise.

Parts (select with --config.parts):
  histograms    Fig. 4: θ_g at initialization between every sample-wise gradient and
                g_clean^(c) for clean / noisy / other samples, subset-gradient angles dashed
                (two synthetic clusters and MNIST 0 vs 1 with a 2-layer ReLU net; MNIST 7 vs 9
                with the 2×512 FCN).
  binary        Figs. 5, 6, 11 left: MNIST 7 vs 9, FCN 2×512 ReLU, sigmoid + logistic loss,
                mini-batch SGD (batch 256), δ = 0.4 and 0.3: subset errors, residuals |f − y|,
                train/test error, ‖g_clean^(c)‖/‖g_noise^(c)‖, subset losses, and the check of
                Assumption 4.1 (cos(g_noise, g_clean) and α_t = ‖g_noise‖/‖g_clean‖).
  widths        Fig. 12: the binary run at δ = 0.4 for several widths.
  multiclass    Figs. 1, 7 top, 8 left, 10, 11 middle: MNIST, the paper's CNN, δ = 0.3, with
                single-logit sample-wise gradients ∇l_{c,i} = (f_c − y_c)∇h_c (eq. 13).
  noise_levels  Fig. 13: the multi-class run at several noise levels (rates above 0.5 allowed).
  cifar         Figs. 7 bottom, 8 right, 11 right: CIFAR-10, ResNet-9, δ = 0.4 (paper preset).

Command: python -m experiments.clean_priority --preset quick   (≈6 min on 2 idle CPU cores)
Expect:  at initialization θ(g_noise, g_clean) ≈ 170–175° and ‖g_clean‖/‖g_noise‖ ≈ (1 − δ)/δ
         (binary) or ≈ (C − 1)(1 − δ)/δ (multi-class); the ratio falls towards 1 by the
         early-stopping point while the clean-subset error falls and the noisy-subset error
         and residual rise; best test error well below δ and below the final test error.
"""

import dataclasses

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import ml_collections
import numpy as np

from noisejax import data, experiment, losses, models, noise, synthetic, train
from noisejax.errors import ConfigError
from noisejax.experiment import Claim
from noisejax.theory import ntk_angles

PAPER = "clean-priority"
PARTS = ("histograms", "binary", "widths", "multiclass", "noise_levels", "cifar")


def _optim(**kw):
  base = dict(name="sgd", lr=0.05, momentum=0.9, weight_decay=0.0, schedule="constant",
              batch_size=256, epochs=100, eval_every=0, checkpoint_every=25)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def _data(name="mnist5k", classes=None, limit=None):
  return ml_collections.ConfigDict(dict(name=name, classes=classes, limit=limit, data_dir=None))


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: mnist5k instead of MNIST, every architecture as in the paper; scaled down:

  binary on the 800 mnist5k 7/9 digits (80 epochs); widths 32, 128, 512 (2048 in paper);
  multi-class on 1,024 mnist5k digits with batch 256 (paper: 60,000 and 512) for 20 epochs,
  gradient diagnostics on ≈100 samples per class every 2nd epoch; noise levels 0.1 and 0.3
  (paper: 0.1–0.4);
  no CIFAR-10. Unstated in the paper and chosen here: PyTorch-default init, SGD learning
  rate 0.05 (binary, no momentum) and SGD with momentum 0.9, lr 0.05 (multi-class, as
  experiments/u_curve.py).
  """
  if preset not in experiment.PRESETS:
    raise ConfigError("preset", preset, experiment.PRESETS)
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = PARTS[:5]
  c.method = "auto"                  # persample engine route: auto / taps / vmap
  c.thresholds = ml_collections.ConfigDict(dict(
      init_angle_deg=170.0,          # θ(g_noise, g_clean) at init at least this
      ratio_rel_tol=0.25,            # |ratio_0 / predicted − 1| at most this
      ratio_at_es=1.5,               # ratio at the early-stopping point at most this ...
      excess_lost=0.5,               # ... and ratio_ES − 1 ≤ (1 − this)(ratio_0 − 1)
      assumption_cos=-0.95,          # cos(g_noise, g_clean) at most this before the ES point
      decrease_rank_corr=-0.8,       # Spearman(t, ratio) before the ES point at most this
  ))
  c.histograms = ml_collections.ConfigDict(dict(
      rate=0.3, width=512,
      clusters=dict(n_per_cluster=200, separation=4.0, spread=0.5),
      mnist=_data(classes=(0, 1)),
  ))
  c.binary = ml_collections.ConfigDict(dict(
      data=_data(classes=(7, 9)), rates=(0.4, 0.3),
      model=dict(name="mlp", hidden=(512, 512)), loss=dict(name="logistic"),
      optim=_optim(name="sgd", batch_size=256, epochs=80),
      diag_every=1,                  # gradient diagnostics every this many evaluations
  ))
  c.widths = ml_collections.ConfigDict(dict(widths=(32, 128, 512), rate=0.4))
  c.multiclass = ml_collections.ConfigDict(dict(
      data=_data(limit=1024), rate=0.3,
      model=dict(name="clean_priority_cnn"), loss=dict(name="cross_entropy"),
      optim=_optim(name="momentum", batch_size=256, epochs=20, checkpoint_every=5),
      diag_per_class=100, diag_every=2,
  ))
  c.noise_levels = ml_collections.ConfigDict(dict(rates=(0.1, 0.3), diag_every=5))
  c.cifar = ml_collections.ConfigDict(dict(
      data=_data(name="cifar10"), rate=0.4,
      model=dict(name="resnet9"), loss=dict(name="cross_entropy"),
      optim=_optim(name="momentum", batch_size=512, epochs=60, checkpoint_every=5),
      diag_per_class=100, diag_every=1,
  ))
  if preset == "paper":
    c.parts = PARTS
    c.histograms.mnist.name = "mnist"
    c.binary.data.name = "mnist"
    c.binary.optim.epochs = 60
    c.widths.widths = (32, 128, 512, 2048)
    c.multiclass.data = _data(name="mnist")
    c.multiclass.optim.batch_size = 512
    c.multiclass.optim.epochs = 30
    c.multiclass.diag_per_class = 200
    c.noise_levels.rates = (0.1, 0.2, 0.3, 0.4)
  return c


# ----------------------------------------------------------------------------
# One training run with gradient diagnostics.


@dataclasses.dataclass
class Result:
  """One training run: its history (one record per evaluation) and what it was."""
  tag: str
  rate: float
  num_classes: int
  num_outputs: int
  history: list
  init_stats: dict = None      # full subset_gradient_stats at initialization (histograms)


def _load(spec, split):
  return data.load(spec.name, split, data_dir=spec.data_dir, classes=spec.classes,
                   limit=spec.limit if split == "train" else None)


def _model(spec, num_classes, **overrides):
  kwargs = {k: v for k, v in spec.to_dict().items() if k != "name"}
  kwargs.update(overrides)
  if "hidden" in kwargs:
    kwargs["hidden"] = tuple(kwargs["hidden"])
  return models.get_model(spec.name, 1 if num_classes == 2 else num_classes, **kwargs)


def _subrun(run, tag, spec):
  sub = run.child(tag, spec)
  return sub


def train_with_diagnostics(run, tag, part, rate, key, method, *, model_overrides=None,
                           diag_every=None, keep_init_stats=False) -> Result:
  """Trains part.model on part.data with `rate` symmetric noise; logs subset diagnostics.

  Every evaluation (once per epoch) records train.evaluate's subset metrics; every
  `diag_every` evaluations also ‖g_clean^(c)‖, ‖g_noise^(c)‖, their ratio and cosine per
  class c, on all training samples (binary) or `diag_per_class` per true class.
  """
  key_noise, key_init, key_train, key_diag = jax.random.split(key, 4)
  train_set, test_set = _load(part.data, "train"), _load(part.data, "test")
  num_classes = train_set.num_classes
  noisy = noise.corrupt(key_noise, train_set.y, num_classes, "symmetric", rate)
  sub = _subrun(run, tag, part)
  sub.save_noise(noisy)
  model = _model(part.model, num_classes, **(model_overrides or {}))
  num_outputs = 1 if num_classes == 2 else num_classes
  loss_fn = losses.make_loss(part.loss.name, num_classes)
  batch_size = part.optim.batch_size or len(train_set.y)
  tx = train.make_optimizer(part.optim, len(train_set.y) // batch_size)
  state = train.create_state(model, key_init, train_set.x[:1], tx)

  per_class = part.get("diag_per_class") or int(np.bincount(noisy.clean_labels).max())
  idx_CxK, valid_CxK = ntk_angles.group_by_true_class(noisy.clean_labels, num_classes,
                                                      per_class, key_diag)
  diag_x = jnp.asarray(train_set.x[idx_CxK])
  diag_given = jnp.asarray(noisy.labels[idx_CxK])
  diag_clean = jnp.asarray(~noisy.is_noisy[idx_CxK])
  diag_valid = jnp.asarray(valid_CxK)
  flat = idx_CxK[valid_CxK]
  diag_every = diag_every or part.diag_every
  counter = {"evals": 0}
  init_stats = None
  if keep_init_stats:  # per-sample angles at w0 for the histograms (Figs. 4 and 10)
    stats = ntk_angles.subset_gradient_stats(
        model, train.model_variables(state.params, state.batch_stats),
        jnp.asarray(train_set.x[flat]), jnp.asarray(noisy.labels[flat]),
        jnp.asarray(noisy.clean_labels[flat]), num_classes=num_classes, method=method)
    init_stats = {k: np.asarray(v) for k, v in stats.items()}
  onehot = np.eye(num_classes, dtype=np.float32)[noisy.labels]

  def eval_fn(state, step):
    variables = train.model_variables(state.params, state.batch_stats)
    out = {}
    if num_outputs > 1:  # the paper's multi-class residual ‖f − y‖ (Fig. 7 middle)
      probs = jax.nn.softmax(train.predict(state, train_set.x), -1)
      resid = np.linalg.norm(np.asarray(probs) - onehot, axis=1)
      out["clean_residual_l2"] = resid[~noisy.is_noisy].mean()
      out["noisy_residual_l2"] = resid[noisy.is_noisy].mean()
    if counter["evals"] % diag_every == 0:
      norms_Cx2, cos_C = ntk_angles.clean_noise_stats_by_class(
          model, variables, diag_x, diag_given, diag_clean, diag_valid, method=method)
      norms_Cx2, cos_C = np.asarray(norms_Cx2, np.float64), np.asarray(cos_C, np.float64)
      defined = (norms_Cx2 > 0).all(axis=1)  # a class without clean or noisy samples
      ratio_C = np.where(defined, norms_Cx2[:, 0] / np.where(defined, norms_Cx2[:, 1], 1), np.nan)
      cos_C = np.where(defined, cos_C, np.nan)
      for c in range(num_classes):
        out[f"ratio_c{c}"], out[f"cos_c{c}"] = ratio_C[c], cos_C[c]
      if defined.any():  # geometric mean: a common output offset at init cancels to 1st order
        out["ratio_mean"] = np.exp(np.nanmean(np.log(ratio_C)))
        out["alpha_mean"] = 1 / out["ratio_mean"]
        out["cos_mean"] = np.nanmean(cos_C)
    counter["evals"] += 1
    return out

  splits = train.Data(train_set.x, noisy, test_set.x, test_set.y)
  _, history = train.fit(part.optim, sub, state, loss_fn, splits, key=key_train, eval_fn=eval_fn)
  return Result(tag, rate, num_classes, num_outputs, history, init_stats)


# ----------------------------------------------------------------------------
# Claims.


def _diag_records(history):
  return [r for r in history if "ratio_mean" in r]


def _spearman(a, b):
  ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
  if len(a) < 3 or np.std(ra) == 0 or np.std(rb) == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def run_claims(result: Result, th) -> list[Claim]:
  """The issue's claims on one run, measured from its history."""
  h, tag, rate = result.history, result.tag, result.rate
  predicted = ntk_angles.predicted_ratio(rate, result.num_classes, num_outputs=result.num_outputs)
  early = train.early_stopping_point(h)
  first, final = h[0], h[-1]
  residual = "residual_l2" if result.num_outputs > 1 else "residual"
  diag = _diag_records(h)
  claims = []
  if predicted <= 1:  # δ above (C − 1)/C: the noisy labels are the majority of class c
    claims.append(Claim(
        id=f"{tag}/majority_noise_is_learned", paper=PAPER,
        statement=f"δ = {rate} > (C−1)/C (outside the paper's δ < 0.5): the noisy labels "
                  "dominate the gradient, so the net learns them and the test error rises",
        expected=f"ratio_0 ≈ {predicted:.3g} < 1 and final test error > 0.5",
        measured={"ratio_0": diag[0]["ratio_mean"] if diag else None,
                  "final_test_error": final["test_error"]},
        passed=bool(diag) and diag[0]["ratio_mean"] < 1 and final["test_error"] > 0.5))
    return claims

  if diag:
    d0 = diag[0]
    angles0 = {f"c{c}": float(np.degrees(np.arccos(np.clip(d0[f"cos_c{c}"], -1, 1))))
               for c in range(result.num_classes)}
    mean_angle = float(np.nanmean(list(angles0.values())))
    claims.append(Claim(
        id=f"{tag}/init_angle_noise_clean", paper=PAPER,
        statement="At initialization g_noise^(c) points almost opposite to g_clean^(c) (Fig. 4)",
        expected=f"mean over c of θ(g_noise, g_clean) ≥ {th.init_angle_deg}°",
        measured={"mean_deg": mean_angle, **angles0}, passed=mean_angle >= th.init_angle_deg))
    ratio0 = d0["ratio_mean"]
    claims.append(Claim(
        id=f"{tag}/init_ratio", paper=PAPER,
        statement="‖g_clean^(c)‖/‖g_noise^(c)‖ at initialization follows the population "
                  + ("(eq. 8: (1 − δ)/δ)" if result.num_outputs == 1 else
                     "and the softmax average (eq. 14: (C − 1)(1 − δ)/δ)"),
        expected=f"geometric mean over c within ±{th.ratio_rel_tol:.0%} of {predicted:.3g}",
        measured={"mean": ratio0, "predicted": predicted,
                  **{f"c{c}": d0[f"ratio_c{c}"] for c in range(result.num_classes)}},
        passed=abs(ratio0 / predicted - 1) <= th.ratio_rel_tol))
    before = [r for r in diag if r["step"] <= early["step"]]
    at_es = before[-1]
    bound = min(th.ratio_at_es, 1 + (1 - th.excess_lost) * (ratio0 - 1))
    # Context: the last diagnostic step where the test error is within 0.01 of its minimum.
    valley = [r for r in diag if r["test_error"] <= early["test_error"] + 0.01] or [at_es]
    claims.append(Claim(
        id=f"{tag}/ratio_falls_to_about_1", paper=PAPER,
        statement="The clean dominance ‖g_clean‖/‖g_noise‖ falls to about 1 by the "
                  "early-stopping point (Figs. 6, 8; Theorem 4.5)",
        expected=f"geometric-mean ratio at the ES point ≤ {bound:.3g} (≤ {th.ratio_at_es} and at least "
                 f"{th.excess_lost:.0%} of the initial excess over 1 gone)",
        measured={"ratio_0": ratio0, "ratio_at_es": at_es["ratio_mean"],
                  "es_step": early["step"], "diag_step": at_es["step"],
                  "ratio_at_valley_end": valley[-1]["ratio_mean"],
                  "valley_end_step": valley[-1]["step"]},
        passed=at_es["ratio_mean"] <= bound))
    rho = _spearman([r["step"] for r in before], [r["ratio_mean"] for r in before])
    claims.append(Claim(
        id=f"{tag}/ratio_decreases_before_es", paper=PAPER,
        statement="Before the early-stopping point the ratio decreases (α_t increases, "
                  "Theorem 4.5; Fig. 6)",
        expected=f"Spearman rank correlation of (t, ratio) on [0, t_ES] ≤ {th.decrease_rank_corr}",
        measured={"spearman": rho, "points": len(before)},
        passed=bool(rho <= th.decrease_rank_corr)))
    cos_before = [r["cos_mean"] for r in before]
    claims.append(Claim(
        id=f"{tag}/assumption_4_1", paper=PAPER,
        statement="Assumption 4.1 holds before the early-stopping point: g_noise^(c) ≈ "
                  "−α_t g_clean^(c) with α_t ∈ (0, 1)",
        expected=f"mean over c of cos(g_noise, g_clean) ≤ {th.assumption_cos} and α_t < 1 at "
                 "every diagnostic step up to t_ES",
        measured={"max_cos_before_es": max(cos_before),
                  "alpha_0": before[0]["alpha_mean"], "alpha_at_es": at_es["alpha_mean"],
                  "max_cos_overall": max(r["cos_mean"] for r in diag)},
        passed=max(cos_before) <= th.assumption_cos
        and max(r["alpha_mean"] for r in before) < 1))
  claims.append(Claim(
      id=f"{tag}/clean_priority_before_es", paper=PAPER,
      statement="Before the early-stopping point the clean-subset error falls while the "
                "noisy-subset error (given labels) and residual rise (Figs. 5, 7)",
      expected="at t_ES vs t = 0: clean error lower, noisy error higher, noisy residual higher",
      measured={"clean_error": [first["clean_error"], early["clean_error"]],
                "noisy_error": [first["noisy_error"], early["noisy_error"]],
                "noisy_residual": [first[f"noisy_{residual}"], early[f"noisy_{residual}"]],
                "es_epoch": early["epoch"]},
      passed=(early["clean_error"] < first["clean_error"]
              and early["noisy_error"] > first["noisy_error"]
              and early[f"noisy_{residual}"] > first[f"noisy_{residual}"])))
  claims.append(Claim(
      id=f"{tag}/best_test_below_noise_and_final", paper=PAPER,
      statement="The best test error is below the noise level and below the final test error "
                "(U-shape, Figs. 1, 5, 7)",
      expected=f"best < δ = {rate} and best < final",
      measured={"best": early["test_error"], "final": final["test_error"],
                "best_epoch": early["epoch"]},
      passed=early["test_error"] < rate and early["test_error"] < final["test_error"]))
  return claims


# ----------------------------------------------------------------------------
# Histograms at initialization (Fig. 4, Fig. 10).


def init_histogram_stats(part_hist, key, method):
  """Fig. 4: subset_gradient_stats at init for the synthetic clusters and MNIST 0 vs 1."""
  out = {}
  key_data, key_noise, key_model, key_noise2, key_model2 = jax.random.split(key, 5)
  cl = part_hist.clusters
  x, y = synthetic.two_clusters_2d(key_data, cl.n_per_cluster, separation=cl.separation,
                                   spread=cl.spread)
  noisy = noise.corrupt(key_noise, np.asarray(y), 2, "symmetric", part_hist.rate)
  model = ntk_angles.ntk_mlp(2, part_hist.width, "relu")  # §3: bias-free NTK 2-layer ReLU
  variables = jax.jit(model.init)(key_model, x[:1])
  out["synthetic clusters, 2-layer ReLU (NTK)"] = _hist_stats(model, variables, x, noisy, method)
  mnist = _load(part_hist.mnist, "train")
  noisy = noise.corrupt(key_noise2, mnist.y, 2, "symmetric", part_hist.rate)
  model = models.get_model("mlp", 1, hidden=(part_hist.width,))
  variables = jax.jit(model.init)(key_model2, mnist.x[:1])
  classes = part_hist.mnist.classes
  out[f"MNIST {classes[0]} vs {classes[1]}, 2-layer ReLU"] = _hist_stats(
      model, variables, jnp.asarray(mnist.x), noisy, method)
  return out


def _hist_stats(model, variables, x, noisy, method):
  stats = ntk_angles.subset_gradient_stats(
      model, variables, x, jnp.asarray(noisy.labels), jnp.asarray(noisy.clean_labels),
      num_classes=2, method=method)
  return {k: np.asarray(v) for k, v in stats.items()}


def _plot_histograms(axes, stats, classes, title):
  bins = np.linspace(0, 180, 61)
  for ax, c in zip(axes, classes):
    for k, (name, color) in enumerate((("clean", "tab:green"), ("noisy", "tab:red"),
                                       ("other", "tab:blue"))):
      mask = stats["masks_BxCx3"][:, c, k]
      if mask.any():
        ax.hist(stats["angles_CxB"][c][mask], bins=bins, color=color, alpha=0.55, density=True,
                label=f"{name} ({mask.sum()})")
      if k > 0:
        ax.axvline(stats["subset_angles_Cx3"][c, k], color=color, ls="--", lw=1.5)
    ax.set_title(f"{title}, c = {c}" if title == "logit" else f"{title}\nclass c = {c}", fontsize=8)
    ax.set_xlim(0, 180)
    ax.set_xlabel(r"$\theta_g$ to $g_{clean}^{(c)}$ (degrees)", fontsize=8)
    ax.legend(fontsize=6)


def plot_fig4(run, panels):
  fig, axes = plt.subplots(len(panels), 2, figsize=(9, 2.9 * len(panels)), squeeze=False)
  for row, (title, stats) in zip(axes, panels.items()):
    _plot_histograms(row, stats, (0, 1), title)
  fig.suptitle("Fig. 4: sample-wise gradient angles at initialization (δ = 0.3); dashed: "
               "g_noise (red), g_other (blue)", fontsize=9)
  fig.tight_layout()
  run.savefig(fig, "fig4_theta_g_histograms.png")


def plot_fig10(run, stats, rate):
  num_classes = stats["angles_CxB"].shape[0]
  fig, axes = plt.subplots(2, (num_classes + 1) // 2, figsize=(3.2 * ((num_classes + 1) // 2), 6),
                           squeeze=False)
  _plot_histograms(axes.ravel(), stats, range(num_classes), "logit")
  fig.suptitle(f"Fig. 10: single-logit sample-wise gradient angles at init, MNIST CNN, δ = {rate}",
               fontsize=9)
  fig.tight_layout()
  run.savefig(fig, "fig10_single_logit_histograms.png")


# ----------------------------------------------------------------------------
# Dynamics plots.


def _series(history, key):
  pts = [(r["epoch"], r[key]) for r in history if key in r]
  return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def plot_dynamics(run, results, filename, title, *, label_fn=lambda r: None):
  """Figs. 5 / 7 / 12 / 13: subset errors, residuals, train/test error (+ ES line)."""
  fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
  many = len(results) > 1
  for i, res in enumerate(results):
    h = res.history
    early = train.early_stopping_point(h)
    residual = "residual_l2" if res.num_outputs > 1 else "residual"
    color = f"C{i}" if many else None
    label = label_fn(res)
    panels = ((axes[0], (("clean_error", "clean", "-"), ("noisy_error", "noisy (given labels)", "--"))),
              (axes[1], ((f"clean_{residual}", "clean", "-"), (f"noisy_{residual}", "noisy", "--"))),
              (axes[2], (("train_error", "train", "--"), ("test_error", "test", "-"))))
    for ax, keys in panels:
      for j, (key, name, ls) in enumerate(keys):
        x, y = _series(h, key)
        ax.plot(x, y, ls, color=color or f"C{j}", lw=1.3,
                label=f"{name}, {label}" if label else name)
      ax.axvline(early["epoch"], color=color or "k", ls=":", lw=1)
    axes[2].axhline(res.rate, color=color or "gray", lw=0.7, ls="-.")
  axes[0].set_ylabel("subset error")
  axes[1].set_ylabel("mean residual " + ("‖f − y‖" if results[0].num_outputs > 1 else "|f − y|"))
  axes[2].set_ylabel("error (dash-dot: noise level)")
  for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend(fontsize=6)
  fig.suptitle(title + " (dotted: early-stopping point)", fontsize=9)
  run.savefig(fig, filename)


def plot_ratio(run, results, filename, title):
  """Figs. 6 / 8 and the Assumption 4.1 check: ratio, cosine and α_t per class."""
  fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
  for i, res in enumerate(results):
    early = train.early_stopping_point(res.history)
    predicted = ntk_angles.predicted_ratio(res.rate, res.num_classes, num_outputs=res.num_outputs)
    for c in range(res.num_classes):
      x, y = _series(res.history, f"ratio_c{c}")
      axes[0].plot(x, y, color=f"C{i}", lw=0.6, alpha=0.5)
      x, y = _series(res.history, f"cos_c{c}")
      axes[1].plot(x, y, color=f"C{i}", lw=0.6, alpha=0.5)
    x, y = _series(res.history, "ratio_mean")
    axes[0].plot(x, y, color=f"C{i}", lw=2, label=f"{res.tag}: geometric mean over c")
    axes[0].axhline(predicted, color=f"C{i}", ls="-.", lw=0.8, label=f"eq. 8/14: {predicted:.3g}")
    x, y = _series(res.history, "cos_mean")
    axes[1].plot(x, y, color=f"C{i}", lw=2, label=res.tag)
    x, y = _series(res.history, "alpha_mean")
    axes[2].plot(x, y, color=f"C{i}", lw=2, label=res.tag)
    for ax in axes:
      ax.axvline(early["epoch"], color=f"C{i}", ls=":", lw=1)
  axes[0].axhline(1, color="k", lw=0.7)
  axes[0].set_yscale("log")
  axes[0].set_ylabel(r"$\|g_{clean}^{(c)}\| / \|g_{noise}^{(c)}\|$")
  axes[1].set_ylabel(r"cos($g_{noise}^{(c)}, g_{clean}^{(c)}$)")
  axes[2].set_ylabel(r"$\alpha_t$ = $\|g_{noise}\| / \|g_{clean}\|$ (geometric mean over c)")
  axes[2].axhline(1, color="k", lw=0.7)
  for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend(fontsize=6)
  fig.suptitle(title + " (thin: one class c; dotted: early-stopping point)", fontsize=9)
  run.savefig(fig, filename)


def plot_losses(run, results, filename):
  """Fig. 11: clean and noisy subset losses over training."""
  fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
  for ax, res in zip(axes[0], results):
    for key, name in (("clean_loss", "clean subset"), ("noisy_loss", "noisy subset")):
      ax.plot(*_series(res.history, key), label=name)
    ax.axvline(train.early_stopping_point(res.history)["epoch"], color="k", ls=":", lw=1)
    ax.set(xlabel="epoch", ylabel="training loss", title=f"{res.tag} (δ = {res.rate})")
    ax.legend(fontsize=7)
  fig.suptitle("Fig. 11: subset losses (dotted: early-stopping point)", fontsize=9)
  run.savefig(fig, filename)


# ----------------------------------------------------------------------------


def run(config, run: experiment.Run) -> list[Claim]:
  for part in config.parts:
    if part not in PARTS:
      raise ConfigError("parts", part, PARTS)
  key = jax.random.key(config.seed)
  keys = dict(zip(PARTS, jax.random.split(key, len(PARTS))))
  th, method = config.thresholds, config.method
  claims = []
  loss_panels = []

  binary_results = []
  if "binary" in config.parts or "histograms" in config.parts:
    rates = config.binary.rates if "binary" in config.parts else config.binary.rates[:1]
    for rate in rates:
      res = train_with_diagnostics(run, f"binary_d{rate:g}", config.binary, rate,
                                   jax.random.fold_in(keys["binary"], int(rate * 1000)), method,
                                   keep_init_stats=True)
      binary_results.append(res)
      claims += run_claims(res, th)
  if "binary" in config.parts:
    for res in binary_results:
      plot_dynamics(run, [res], f"fig5_binary_dynamics_d{res.rate:g}.png",
                    f"Fig. 5: MNIST 7 vs 9, FCN 2×512, δ = {res.rate}")
    plot_ratio(run, binary_results, "fig6_binary_ratio_assumption41.png",
               "Fig. 6 and Assumption 4.1: MNIST 7 vs 9, FCN 2×512")
    loss_panels.append(binary_results[0])

  if "histograms" in config.parts:
    panels = init_histogram_stats(config.histograms, keys["histograms"], method)
    res = min(binary_results, key=lambda r: abs(r.rate - config.histograms.rate))
    panels[f"MNIST 7 vs 9, FCN 2×512 (δ = {res.rate})"] = res.init_stats
    plot_fig4(run, panels)
    for title, stats in panels.items():
      noisy_angle = [float(stats["subset_angles_Cx3"][c, 1]) for c in (0, 1)]
      claims.append(Claim(
          id=f"fig4/{title.split(',')[0].replace(' ', '_')}_noise_opposite", paper=PAPER,
          statement=f"Fig. 4 ({title}): noisy sample gradients point away from g_clean^(c) and "
                    "g_noise^(c) is almost opposite to g_clean^(c); clean ones point along it",
          expected=f"θ(g_noise, g_clean) ≥ {th.init_angle_deg}° for both c; median θ_g "
                   "clean < 90° < median θ_g noisy",
          measured={"theta_noise_deg": noisy_angle, **_median_angles(stats)},
          passed=min(noisy_angle) >= th.init_angle_deg and _medians_separate(stats)))

  if "widths" in config.parts:
    width_results = []
    depth = len(config.binary.model.hidden)
    for width in config.widths.widths:
      same = [r for r in binary_results if abs(r.rate - config.widths.rate) < 1e-9]
      if same and tuple(config.binary.model.hidden) == (width,) * depth:
        width_results.append(dataclasses.replace(same[0], tag=f"width{width}"))
        continue  # the binary run at this rate already is this width
      res = train_with_diagnostics(run, f"width{width}", config.binary, config.widths.rate,
                                   jax.random.fold_in(keys["widths"], width), method,
                                   model_overrides={"hidden": (width,) * depth})
      width_results.append(res)
      claims += run_claims(res, th)
    plot_dynamics(run, width_results, "fig12_widths.png",
                  f"Fig. 12: MNIST 7 vs 9, FCN with 2 hidden layers, δ = {config.widths.rate}",
                  label_fn=lambda r: r.tag)

  mc = None
  if "multiclass" in config.parts:
    mc = train_with_diagnostics(run, f"multiclass_d{config.multiclass.rate:g}",
                                config.multiclass, config.multiclass.rate, keys["multiclass"],
                                method, keep_init_stats=True)
    claims += run_claims(mc, th)
    plot_dynamics(run, [mc], "fig1_fig7top_multiclass_dynamics.png",
                  f"Figs. 1 and 7 (top): MNIST, CNN, δ = {mc.rate}, single-logit gradients")
    plot_ratio(run, [mc], "fig8left_multiclass_ratio.png",
               f"Fig. 8 (left) and Assumption 4.1: MNIST CNN, δ = {mc.rate}, single-logit")
    plot_fig10(run, mc.init_stats, mc.rate)
    loss_panels.append(mc)

  if "noise_levels" in config.parts:
    level_results = []
    for rate in config.noise_levels.rates:
      if mc is not None and abs(rate - mc.rate) < 1e-9:
        level_results.append(mc)
        continue
      res = train_with_diagnostics(run, f"multiclass_d{rate:g}", config.multiclass, rate,
                                   jax.random.fold_in(keys["noise_levels"], int(rate * 1000)),
                                   method, diag_every=config.noise_levels.diag_every)
      level_results.append(res)
      claims += run_claims(res, th)
    plot_dynamics(run, level_results, "fig13_noise_levels.png",
                  "Fig. 13: MNIST CNN at several noise levels", label_fn=lambda r: f"δ = {r.rate}")

  if "cifar" in config.parts:
    cif = train_with_diagnostics(run, f"cifar10_d{config.cifar.rate:g}", config.cifar,
                                 config.cifar.rate, keys["cifar"], method)
    claims += run_claims(cif, th)
    plot_dynamics(run, [cif], "fig7bottom_cifar_dynamics.png",
                  f"Fig. 7 (bottom): CIFAR-10, ResNet-9, δ = {cif.rate}")
    plot_ratio(run, [cif], "fig8right_cifar_ratio.png",
               f"Fig. 8 (right): CIFAR-10, ResNet-9, δ = {cif.rate}")
    loss_panels.append(cif)

  if loss_panels:
    plot_losses(run, loss_panels, "fig11_subset_losses.png")
  return claims


def _median_angles(stats):
  out = {}
  for c in (0, 1):
    for k, name in enumerate(("clean", "noisy", "other")):
      mask = stats["masks_BxCx3"][:, c, k]
      out[f"median_{name}_c{c}"] = float(np.median(stats["angles_CxB"][c][mask])) if mask.any() else None
  return out


def _medians_separate(stats):
  m = _median_angles(stats)
  return all(m[f"median_clean_c{c}"] < 90 < m[f"median_noisy_c{c}"] for c in (0, 1))


if __name__ == "__main__":
  experiment.main("clean_priority", get_config, run)

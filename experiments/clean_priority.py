"""Clean-priority paper, Figs. 1, 4–8, 10–13 and App. C: sample-wise gradients under label noise.

Parts (--config.parts, in this order: later parts copy runs of earlier ones):
  binary        Figs. 5, 6, 11 left: MNIST 7 vs 9, FCN 2×512 ReLU, sigmoid + logistic loss,
                SGD, δ = 0.4 and 0.3, trained until the noisy subset is fitted: subset
                errors and losses, residuals |f − y|, ‖g_clean^(c)‖/‖g_noise^(c)‖,
                Assumption 4.1, Prop. 4.2 (cos(∇L(D), ∇L(D̂))), Remark 3.3 (θ_h(w_t) vs w0).
  histograms    Fig. 4: θ_g at init between each sample-wise gradient and g_clean^(c), clean /
                noisy / other samples (synthetic clusters, MNIST 0 vs 1; MNIST 7 vs 9: binary's).
  widths        Fig. 12: the binary run at δ = 0.4 for several widths.
  multiclass    Figs. 1, 7 top, 8 left, 10, 11 middle: MNIST, the paper's CNN, δ = 0.3,
                single-logit sample-wise gradients ∇l_{c,i} = (f_c − y_c)∇h_c (eq. 13).
  noise_levels  Fig. 13: the multi-class run at several noise levels (rates above 0.5 allowed).
  cifar         Figs. 7 bottom, 8 right, 11 right: CIFAR-10, ResNet-9, δ = 0.4 (paper preset).

Every run holds out `val_size` training samples with labels corrupted like the training
labels. Two early-stopping points, both `noisejax.early_stopping.point`: the paper's t_ES
(the smoothed test error's minimum, the vertical line of Figs. 5–8) for the claims about
the stages, and the held-out split's noisy-label error for the practitioner's stop.
Claims: `clean_priority_claims.py`; figures: `clean_priority_figures.py`.

Command: python -m experiments.clean_priority --preset quick   (≈8.5 min alone on 2 CPU cores)
Expect:  at initialization θ(g_noise, g_clean) ≈ 170–175° and ‖g_clean‖/‖g_noise‖ ≈ (1 − δ)/δ
         (binary) or ≈ (C − 1)(1 − δ)/δ (multi-class) in every class; the ratio falls towards
         1 by the early-stopping point while the clean-subset error falls and the noisy-subset
         error and residual rise; test error at the ES point below δ and below the final one;
         binary runs end with the noisy subset fitted.
"""

import copy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import clean_priority_claims as judge
from experiments import clean_priority_figures as figures
from noisejax import claims, config as cfg, data, early_stopping, experiment, models, noise
from noisejax import persample, synthetic, train
from noisejax.errors import ConfigError, check_choice, check_range
from noisejax.theory import ntk_angles

PAPER = "clean-priority"


def _early_evals(steps_per_epoch: int, dense_epochs: int, per_epoch: int) -> tuple:
  """Extra evaluation steps: `per_epoch` evenly spaced per epoch during the first
  `dense_epochs` epochs, the epoch ends among them (27 steps, 2 per epoch: 14, 27, 40)."""
  return tuple(sorted({round(k * steps_per_epoch / per_epoch)
                       for k in range(1, dense_epochs * per_epoch)}))


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: mnist5k instead of MNIST, every architecture and the optimizer (plain SGD,
  App. B) as in the paper; scaled down:

  binary on the 800 mnist5k 7/9 digits, 240 of them held out with noisy labels for the
  early-stopping point (the noisy-label error moves by only (1 − 2δ) = 0.2 per unit of
  clean error at δ = 0.4), 800 epochs at lr 0.05 (train error → 0, Fig. 5's later
  stage); widths 32, 128, 512 (2048 in paper). Multi-class on all 4,000 mnist5k digits,
  500 held out (paper: 60,000), batch 128 (paper 512: 27 instead of 7 steps per epoch),
  lr 0.3, 14 epochs (the test error turns up near epoch 10), evaluations with gradient
  diagnostics (100 samples per class) twice per epoch for 2 epochs, then every epoch;
  noise levels 0.1–0.4 (Fig. 13), diagnostics every 2nd epoch after the first 2 (cost); no CIFAR-10. Unstated in the paper and chosen here: PyTorch-default
  init and the learning rates. tiny: 120 binary and 200 multi-class images, 2 epochs,
  widths 8 and 16, an MLP 784-16-10 for the CNN, 5 diagnostic samples per class.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = ("binary", "histograms", "widths", "multiclass", "noise_levels")
  c.method = "auto"                  # persample engine route: auto / taps / vmap
  c.thresholds = ml_collections.ConfigDict(dict(
      init_angle_deg=170.0,          # θ(g_noise, g_clean) at init at least this
      ratio_rel_tol=0.25,            # |ratio_0,c / predicted − 1| at most this, every class
      about_one=0.2,                 # "about 1": |ratio at the ES point − 1| at most this
      assumption_cos=-0.95,          # cos(g_noise, g_clean) at most this before the ES point
      trend_rank_corr=0.8,           # |Spearman(t, ·)| of a monotone trend at least this ...
      min_points=6,                  # ... over at least this many evaluations
      prop42_cos=0.9,                # cos(∇L(D), ∇L(D̂)) at least this for t ≤ t_ES/2
      theta_h_rel_change=0.1,        # Remark 3.3: mean |Δθ_h| / mean θ_h(w0) at most this
      fitted_error=0.05,             # "→ 0": final noisy-subset and train error at most this
      separation_auc=0.9,            # Figs. 4, 10: AUC of θ_g between subsets at least this
      other_sin=0.5))                # sin θ(g_other, g_clean) at least this
  c.histograms = ml_collections.ConfigDict(dict(
      rate=0.3, width=512, clusters=dict(n_per_cluster=200, separation=4.0, spread=0.5),
      mnist=cfg.data("mnist5k", classes=(0, 1))))
  c.binary = ml_collections.ConfigDict(dict(
      data=cfg.data("mnist5k", classes=(7, 9)), rates=(0.4, 0.3), val_size=240,
      model=cfg.model("mlp", hidden=(512, 512)), loss=cfg.loss("logistic"),
      optim=cfg.optim("sgd", lr=0.05, batch_size=256, epochs=800, checkpoint_every=400,
                      eval_every=16, eval_at=_early_evals(2, 80, 1)),
      diag_every=1, theta_h_samples=32, prop42_per_class=0))  # 0: every diagnostic sample
  c.widths = ml_collections.ConfigDict(dict(widths=(32, 128, 512), rate=0.4))
  c.multiclass = ml_collections.ConfigDict(dict(
      data=cfg.data("mnist5k"), rate=0.3, val_size=500, model=cfg.model("clean_priority_cnn"),
      loss=cfg.loss("cross_entropy"), diag_per_class=100, diag_every=1, theta_h_samples=0,
      prop42_per_class=20,
      optim=cfg.optim("sgd", lr=0.3, batch_size=128, epochs=14, checkpoint_every=7,
                      eval_at=_early_evals(27, 2, 2))))
  c.noise_levels = ml_collections.ConfigDict(dict(rates=(0.1, 0.2, 0.3, 0.4), diag_every=2))
  c.cifar = ml_collections.ConfigDict(dict(
      data=cfg.data("cifar10"), rate=0.4, val_size=5000, model=cfg.model("resnet9"),
      loss=cfg.loss("cross_entropy"), diag_per_class=100, diag_every=1, theta_h_samples=0,
      prop42_per_class=20,
      optim=cfg.optim("sgd", lr=0.1, batch_size=512, epochs=60, checkpoint_every=5)))
  if preset == "paper":
    c.parts += ("cifar",)
    c.histograms.mnist.name = c.binary.data.name = "mnist"
    c.binary.val_size = 2000
    c.binary.optim.update(dict(epochs=200, eval_every=48, eval_at=_early_evals(48, 20, 4)))
    c.widths.widths = (32, 128, 512, 2048)
    c.multiclass.update(dict(data=cfg.data("mnist"), val_size=5000, diag_per_class=200))
    c.multiclass.optim.update(dict(batch_size=512, lr=0.1, epochs=30,
                                   eval_at=_early_evals(107, 5, 4)))
  elif preset == "tiny":
    c.method = "vmap"                # compiles faster than the tap route on tiny nets
    c.histograms.width, c.histograms.clusters.n_per_cluster, c.histograms.mnist.limit = 16, 10, 40
    c.binary.data.limit, c.binary.model.hidden, c.widths.widths = 160, (16, 16), (8, 16)
    c.binary.update(dict(val_size=40, theta_h_samples=8))
    c.binary.optim.update(dict(batch_size=40, epochs=2, checkpoint_every=1, eval_every=0,
                               eval_at=()))
    c.multiclass.update(dict(model=cfg.model("mlp", hidden=(16,)),  # the CNN compiles ≈30 s
                             diag_per_class=5, diag_every=1, val_size=40))
    c.multiclass.data.limit, c.noise_levels.diag_every = 240, 2
    c.noise_levels.rates = (0.1, 0.3)
    c.multiclass.optim.update(dict(batch_size=50, epochs=2, checkpoint_every=1, eval_at=()))
  return c


def validate(config):
  """Experiment-specific checks (the shared pieces are checked by config.validate)."""
  check_choice("method", config.method, persample.METHODS)
  parts = list(config.parts)
  if "histograms" in parts and "binary" in parts[parts.index("histograms"):]:
    raise ConfigError("parts", tuple(parts), reason="histograms draws the binary part's "
                      "initialization: put binary before histograms")
  for part in ("binary", "multiclass", "noise_levels", "cifar"):  # (noise.corrupt checks rates)
    check_range(f"{part}.diag_every", config[part].diag_every, 1, np.inf)


def _ratio_stats(norms_Cx2, cos_C) -> dict:
  """ratio_c = ‖g_clean^(c)‖/‖g_noise^(c)‖ and cos_c per class c, and their means over c."""
  norms_Cx2, cos_C = np.asarray(norms_Cx2, np.float64), np.asarray(cos_C, np.float64)
  defined = (norms_Cx2 > 0).all(axis=1)  # a class without clean or noisy samples: NaN
  ratio_C = np.where(defined, norms_Cx2[:, 0] / np.where(defined, norms_Cx2[:, 1], 1), np.nan)
  cos_C = np.where(defined, cos_C, np.nan)
  out = {f"{k}_c{c}": v[c] for c in range(len(cos_C))
         for k, v in (("ratio", ratio_C), ("cos", cos_C))}
  if defined.any():  # geometric mean: a common output offset at init cancels to 1st order
    out["ratio_mean"] = np.exp(np.nanmean(np.log(ratio_C)))
    out.update(alpha_mean=1 / out["ratio_mean"], cos_mean=np.nanmean(cos_C))
  return out


def _with(part, path, value):
  """A copy of config `part` with field `path` (e.g. "model.hidden") set to `value`."""
  part, (*nodes, field) = copy.deepcopy(part), path.split(".")
  (part[nodes[0]] if nodes else part)[field] = value
  return part


def _class_probs(outputs_BxK, num_classes):
  """p_c(x): the model's probability of class c (one output: 1 − f, f)."""
  return np.asarray(train.classify(outputs_BxK)[1], np.float64)[:, :num_classes]


def train_with_diagnostics(run, tag, part, rate, key, method, *, init_stats=False) -> dict:
  """Trains part.model on part.data with `rate` symmetric noise, `val_size` training
  samples held out with labels corrupted alike ("val_error", the early-stopping key).

  Every evaluation records train_classifier's subset metrics; every `diag_every`
  evaluation intervals (and at every extra evaluation `optim.eval_at`) on `diag_per_class`
  samples per true class (default all): ‖g_clean^(c)‖/‖g_noise^(c)‖, cos(g_noise^(c),
  g_clean^(c)) and p̄_c = mean p_c(x) per class c, the residual ‖f − y‖ (C outputs), the
  cosine of ∇L(D) with ∇L(D̂) (Prop. 4.2, on `prop42_per_class` of them) and, with
  `theta_h_samples`, mean |θ_h(w_t) − θ_h(w0)| over their pairs (Remark 3.3).
  init_stats: also every θ_g at w0."""
  key_noise, key_train, key_diag, key_val = jax.random.split(key, 4)
  full_set, test_set = data.load_splits(part.data)
  num_classes = full_set.num_classes
  train_idx, val_idx = early_stopping.holdout(key_val, len(full_set), part.val_size)
  x_train, y_train = full_set.x[train_idx], full_set.y[train_idx]
  noisy = noise.corrupt(key_noise, y_train, num_classes, "symmetric", rate)
  val = noise.corrupt(jax.random.fold_in(key_val, 1), full_set.y[val_idx], num_classes,
                      "symmetric", rate)
  run.child(tag).save_noise(noisy)
  splits = train.Splits(x_train, noisy, test_set.x, test_set.y)
  num_outputs = train.num_outputs(part.model, part.loss.name, num_classes)
  per_class = part.get("diag_per_class") or int(np.bincount(noisy.clean_labels).max())
  idx_CxK, valid_CxK = persample.group_by_true_class(noisy.clean_labels, num_classes,
                                                     per_class, key_diag)
  diag = [jnp.asarray(a) for a in (x_train[idx_CxK], noisy.labels[idx_CxK],
                                   ~noisy.is_noisy[idx_CxK], valid_CxK)]
  flat = idx_CxK[valid_CxK]
  k = part.prop42_per_class or per_class
  few = idx_CxK[:, :k][valid_CxK[:, :k]]  # Prop. 4.2's samples
  few = [jnp.asarray(a[few]) for a in (x_train, noisy.labels, noisy.clean_labels)]
  onehot_BxC = np.eye(num_classes)[noisy.labels[flat]]
  noisy_B, true_B = noisy.is_noisy[flat], noisy.clean_labels[flat]
  validation = early_stopping.ValidationError(full_set.x[val_idx], val.labels)
  w0 = train.init_snapshot(part, splits, key=key_train, num_classes=num_classes)
  x_h = jnp.asarray(x_train[flat[::max(1, len(flat) // max(1, part.theta_h_samples))]][
      :part.theta_h_samples])
  theta0 = (ntk_angles.theta_h(w0.model, w0.variables, x_h) if part.theta_h_samples
            and num_outputs == 1 else None)
  extra = {int(s) for s in part.optim.get("eval_at", ()) or ()}

  def eval_fn(snapshot):
    out = validation(snapshot)
    interval = part.optim.eval_every or snapshot.spec.steps_per_epoch
    if snapshot.step % (part.diag_every * interval) and snapshot.step not in extra:
      return out
    out.update(_ratio_stats(*persample.clean_noise_stats_by_class(
        snapshot.model, snapshot.variables, *diag, method=method)))
    probs_BxC = _class_probs(snapshot.predict(x_train[flat]), num_classes)
    out.update({f"pbar_c{c}": probs_BxC[true_B == c, c].mean() for c in range(num_classes)})
    out["grad_cos"] = persample.full_gradient_cosine(snapshot.model, snapshot.variables, *few)
    if num_outputs > 1:  # the paper's multi-class residual ‖f − y‖ (Fig. 7 middle)
      resid_B = np.linalg.norm(probs_BxC - onehot_BxC, axis=1)
      out.update(clean_residual_l2=resid_B[~noisy_B].mean(),
                 noisy_residual_l2=resid_B[noisy_B].mean())
    if theta0 is not None:
      out["theta_h_change_deg"] = ntk_angles.theta_h_change_deg(
          theta0, ntk_angles.theta_h(snapshot.model, snapshot.variables, x_h))
    return out

  result = run.train_classifier(part, splits, key=key_train, subdir=tag, eval_fn=eval_fn,
                                num_classes=num_classes)
  record = dict(rate=rate, num_classes=num_classes, num_outputs=num_outputs,
                model=part.model.to_dict(), history=result.history,
                later_stage=num_outputs == 1)
  if theta0 is not None:
    record["theta_h0_mean_deg"] = float(np.degrees(np.mean(np.asarray(theta0)[
        np.triu_indices(len(x_h), 1)])))
  if init_stats:  # w0: where train_classifier started
    stats = persample.subset_gradient_stats(
        w0.model, w0.variables, *[jnp.asarray(a) for a in (
            x_train[flat], noisy.labels[flat], noisy.clean_labels[flat])],
        num_classes=num_classes, method=method)
    record["init_stats"] = {k: np.asarray(v) for k, v in stats.items()}
  return record


# The trainings of each training part, config -> [(tag, training config, rate)]; widths and
# noise_levels copy the run of their _SOURCE part with the same model and rate.
_TRAININGS = {
    "binary": lambda c: [(f"d{r:g}", c.binary, r) for r in c.binary.rates],
    "widths": lambda c: [(f"width{w}", _with(c.binary, "model.hidden", (w,) * len(
        c.binary.model.hidden)), c.widths.rate) for w in c.widths.widths],
    "multiclass": lambda c: [(f"d{c.multiclass.rate:g}", c.multiclass, c.multiclass.rate)],
    "noise_levels": lambda c: [(f"d{r:g}", _with(c.multiclass, "diag_every",
                                                 c.noise_levels.diag_every), r)
                               for r in c.noise_levels.rates],
    "cifar": lambda c: [(f"d{c.cifar.rate:g}", c.cifar, c.cifar.rate)],
}
_SOURCE = {"widths": "binary", "noise_levels": "multiclass"}


def compute_trainings(config, run) -> dict:
  """{"runs": {tag: record}} of part run.part's trainings, the i-th with key
  fold_in(run.key, i) in subdir <part>_<tag>; binary and multiclass keep the θ_g at w0."""
  source = _SOURCE.get(run.part)
  done = (run.record(source) or {"runs": {}})["runs"] if source else {}
  runs = {}
  for i, (tag, part, rate) in enumerate(_TRAININGS[run.part](config)):
    same = [t for t, r in done.items()
            if r["rate"] == rate and r["model"] == claims.to_jsonable(part.model.to_dict())]
    runs[tag] = ({**done[same[0]], "copied_from": f"{source}/{same[0]}"} if same else
                 train_with_diagnostics(run, f"{run.part}_{tag}", part, rate,
                                        jax.random.fold_in(run.key, i), config.method,
                                        init_stats=run.part in ("binary", "multiclass")))
  return {"runs": runs}


def _init_panel(name, title, net, keys, x_NxD, y_N, rate, method) -> dict:
  noisy = noise.corrupt(keys[0], np.asarray(y_N), 2, "symmetric", rate)
  stats = persample.subset_gradient_stats(
      net, jax.jit(net.init)(keys[1], x_NxD[:1]), x_NxD, jnp.asarray(noisy.labels),
      jnp.asarray(noisy.clean_labels), num_classes=2, method=method)
  return {"name": name, "title": title, "stats": {k: np.asarray(v) for k, v in stats.items()}}


def compute_histograms(config, run) -> dict:
  """Fig. 4 at init: synthetic clusters, MNIST 0 vs 1, and the binary run's w0 (copied)."""
  h, b = config.histograms, config.binary
  binary = (run.record("binary") or {}).get("runs")
  if not binary:
    raise ConfigError("parts", tuple(config.parts), reason="histograms draws the binary "
                      "part's initialization: run binary first")
  k_data, *keys = jax.random.split(run.key, 5)
  x_Nx2, y_N = synthetic.two_clusters_2d(k_data, **h.clusters.to_dict())
  mnist, _ = data.load_splits(h.mnist)
  tag, rec = min(binary.items(), key=lambda kv: abs(kv[1]["rate"] - h.rate))
  pairs = ["{} vs {}".format(*p.classes) for p in (h.mnist, b.data)]
  fcn = "×".join(map(str, b.model.hidden))
  return {"copied_from": f"binary/{tag}", "panels": [
      _init_panel("synthetic_clusters", "synthetic clusters, 2-layer ReLU (NTK)",
                  ntk_angles.ntk_mlp(2, h.width, "relu"), keys[:2], x_Nx2, y_N, h.rate,
                  config.method),  # §3: the bias-free NTK 2-layer ReLU net
      _init_panel(f"MNIST_{pairs[0].replace(' ', '_')}", f"MNIST {pairs[0]}, 2-layer ReLU",
                  models.get_model("mlp", 1, hidden=(h.width,)), keys[2:],
                  jnp.asarray(mnist.x), mnist.y, h.rate, config.method),
      {"name": f"MNIST_{pairs[1].replace(' ', '_')}", "stats": rec["init_stats"],
       "title": f"MNIST {pairs[1]}, FCN {fcn} (δ = {rec['rate']})"}]}


PARTS = {
    "binary": experiment.Part(compute_trainings, figures.plot_binary, judge.judge_runs),
    "histograms": experiment.Part(compute_histograms, figures.plot_histograms,
                                  judge.judge_histograms),
    "widths": experiment.Part(compute_trainings, figures.plot_widths, judge.judge_widths),
    "multiclass": experiment.Part(compute_trainings, figures.plot_multiclass,
                                  judge.judge_multiclass),
    "noise_levels": experiment.Part(compute_trainings, figures.plot_noise_levels,
                                    judge.judge_runs),
    "cifar": experiment.Part(compute_trainings, figures.plot_cifar, judge.judge_runs),
}

if __name__ == "__main__":
  experiment.main("clean_priority", get_config, PARTS, validate=validate)

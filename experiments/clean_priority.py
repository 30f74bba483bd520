"""Clean-priority paper, Figs. 1, 4–8, 10–13 and App. C: sample-wise gradients under label noise.

Parts (--config.parts, in this order: later parts copy runs of earlier ones):
  binary        Figs. 5, 6, 11 left: MNIST 7 vs 9, FCN 2×512 ReLU, sigmoid + logistic loss,
                SGD, δ = 0.4 and 0.3: subset errors, residuals |f − y|, ‖g_clean^(c)‖/‖g_noise^(c)‖,
                Assumption 4.1 (cos(g_noise, g_clean), α_t = ‖g_noise‖/‖g_clean‖).
  histograms    Fig. 4: θ_g at init between each sample-wise gradient and g_clean^(c), clean /
                noisy / other samples (synthetic clusters, MNIST 0 vs 1; MNIST 7 vs 9: binary's).
  widths        Fig. 12: the binary run at δ = 0.4 for several widths.
  multiclass    Figs. 1, 7 top, 8 left, 10, 11 middle: MNIST, the paper's CNN, δ = 0.3,
                single-logit sample-wise gradients ∇l_{c,i} = (f_c − y_c)∇h_c (eq. 13).
  noise_levels  Fig. 13: the multi-class run at several noise levels (rates above 0.5 allowed).
  cifar         Figs. 7 bottom, 8 right, 11 right: CIFAR-10, ResNet-9, δ = 0.4 (paper preset).

Command: python -m experiments.clean_priority --preset quick   (≈3–4 min on 2 CPU cores)
Expect:  at initialization θ(g_noise, g_clean) ≈ 170–175° and ‖g_clean‖/‖g_noise‖ ≈ (1 − δ)/δ
         (binary) or ≈ (C − 1)(1 − δ)/δ (multi-class); the ratio falls towards 1 by the
         early-stopping point while the clean-subset error falls and the noisy-subset error
         and residual rise; best test error well below δ and below the final test error.
"""

import copy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import clean_priority_figures as figures
from noisejax import claims, config as cfg, data, experiment, metrics, models, noise, persample
from noisejax import synthetic, train
from noisejax.errors import ConfigError, check_choice, check_range
from noisejax.theory import ntk_angles

PAPER = "clean-priority"


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: mnist5k instead of MNIST, every architecture as in the paper; scaled down:

  binary on the 800 mnist5k 7/9 digits (80 epochs); widths 32, 128, 512 (2048 in paper);
  multi-class on 1,024 mnist5k digits with batch 256 (paper: 60,000 and 512) for 20 epochs,
  gradient diagnostics on ≈100 samples per class every 2nd epoch; noise levels 0.1 and 0.3
  (paper: 0.1–0.4); no CIFAR-10. Unstated in the paper and chosen here: PyTorch-default
  init, SGD learning rate 0.05 (binary, no momentum) and SGD with momentum 0.9, lr 0.05
  (multi-class, as experiments/u_curve.py). tiny: 120 binary and 200 multi-class images,
  2 epochs, widths 8 and 16, an MLP 784-16-10 for the CNN, 5 diagnostic samples per class.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = ("binary", "histograms", "widths", "multiclass", "noise_levels")
  c.method = "auto"                  # persample engine route: auto / taps / vmap
  c.thresholds = ml_collections.ConfigDict(dict(
      init_angle_deg=170.0,          # θ(g_noise, g_clean) at init at least this
      ratio_rel_tol=0.25,            # |ratio_0 / predicted − 1| at most this
      ratio_at_es=1.5,               # ratio at the early-stopping point at most this ...
      excess_lost=0.5,               # ... and ratio_ES − 1 ≤ (1 − this)(ratio_0 − 1)
      assumption_cos=-0.95,          # cos(g_noise, g_clean) at most this before the ES point
      decrease_rank_corr=-0.8))      # Spearman(t, ratio) before the ES point at most this
  c.histograms = ml_collections.ConfigDict(dict(
      rate=0.3, width=512, clusters=dict(n_per_cluster=200, separation=4.0, spread=0.5),
      mnist=cfg.data("mnist5k", classes=(0, 1))))
  c.binary = ml_collections.ConfigDict(dict(
      data=cfg.data("mnist5k", classes=(7, 9)), rates=(0.4, 0.3),
      model=cfg.model("mlp", hidden=(512, 512)), loss=cfg.loss("logistic"),
      optim=cfg.optim("sgd", lr=0.05, batch_size=256, epochs=80, checkpoint_every=25),
      diag_every=1))                 # gradient diagnostics every this many evaluations
  c.widths = ml_collections.ConfigDict(dict(widths=(32, 128, 512), rate=0.4))
  momentum = dict(lr=0.05, momentum=0.9, checkpoint_every=5)
  c.multiclass = ml_collections.ConfigDict(dict(
      data=cfg.data("mnist5k", limit=1024), rate=0.3, model=cfg.model("clean_priority_cnn"),
      loss=cfg.loss("cross_entropy"), diag_per_class=100, diag_every=2,
      optim=cfg.optim("momentum", batch_size=256, epochs=20, **momentum)))
  c.noise_levels = ml_collections.ConfigDict(dict(rates=(0.1, 0.3), diag_every=5))
  c.cifar = ml_collections.ConfigDict(dict(
      data=cfg.data("cifar10"), rate=0.4, model=cfg.model("resnet9"),
      loss=cfg.loss("cross_entropy"), diag_per_class=100, diag_every=1,
      optim=cfg.optim("momentum", batch_size=512, epochs=60, **momentum)))
  if preset == "paper":
    c.parts += ("cifar",)
    c.histograms.mnist.name = c.binary.data.name = "mnist"
    c.binary.optim.epochs = 60
    c.widths.widths = (32, 128, 512, 2048)
    c.multiclass.update(dict(data=cfg.data("mnist"), diag_per_class=200))
    c.multiclass.optim.update(dict(batch_size=512, epochs=30))
    c.noise_levels.rates = (0.1, 0.2, 0.3, 0.4)
  elif preset == "tiny":
    c.method = "vmap"                # compiles faster than the tap route on tiny nets
    c.histograms.width, c.histograms.clusters.n_per_cluster, c.histograms.mnist.limit = 16, 10, 40
    c.binary.data.limit, c.binary.model.hidden, c.widths.widths = 120, (16, 16), (8, 16)
    c.binary.optim.update(dict(batch_size=40, epochs=2, checkpoint_every=1))
    c.multiclass.update(dict(model=cfg.model("mlp", hidden=(16,)),  # the CNN compiles ≈30 s
                             diag_per_class=5, diag_every=1))
    c.multiclass.data.limit, c.noise_levels.diag_every = 200, 2
    c.multiclass.optim.update(dict(batch_size=50, epochs=2, checkpoint_every=1))
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


def train_with_diagnostics(run, tag, part, rate, key, method, *, init_stats=False) -> dict:
  """Trains part.model on part.data with `rate` symmetric noise, recording at every
  evaluation train_classifier's subset metrics (with C outputs also the residual ‖f − y‖)
  and, every `diag_every` evaluation intervals, ‖g_clean^(c)‖/‖g_noise^(c)‖ and
  cos(g_noise^(c), g_clean^(c)) per class c on all training samples (binary) or
  `diag_per_class` per true class. init_stats: also every θ_g at w0."""
  key_noise, key_train, key_diag = jax.random.split(key, 3)
  train_set, test_set = data.load_splits(part.data)
  num_classes = train_set.num_classes
  noisy = noise.corrupt(key_noise, train_set.y, num_classes, "symmetric", rate)
  run.child(tag).save_noise(noisy)
  splits = train.Splits(train_set.x, noisy, test_set.x, test_set.y)
  num_outputs = train.num_outputs(part.model, part.loss.name, num_classes)
  per_class = part.get("diag_per_class") or int(np.bincount(noisy.clean_labels).max())
  idx_CxK, valid_CxK = persample.group_by_true_class(noisy.clean_labels, num_classes,
                                                     per_class, key_diag)
  diag = [jnp.asarray(a) for a in (train_set.x[idx_CxK], noisy.labels[idx_CxK],
                                   ~noisy.is_noisy[idx_CxK], valid_CxK)]
  onehot_NxC = np.eye(num_classes, dtype=np.float32)[noisy.labels]

  def eval_fn(snapshot):
    out = {}
    if num_outputs > 1:  # the paper's multi-class residual ‖f − y‖ (Fig. 7 middle)
      probs_NxC = np.asarray(jax.nn.softmax(snapshot.predict(train_set.x), -1))
      resid_N = np.linalg.norm(probs_NxC - onehot_NxC, axis=1)
      out.update(clean_residual_l2=resid_N[~noisy.is_noisy].mean(),
                 noisy_residual_l2=resid_N[noisy.is_noisy].mean())
    interval = part.optim.eval_every or snapshot.spec.steps_per_epoch
    if snapshot.step % (part.diag_every * interval) == 0:
      out.update(_ratio_stats(*persample.clean_noise_stats_by_class(
          snapshot.model, snapshot.variables, *diag, method=method)))
    return out

  result = run.train_classifier(part, splits, key=key_train, subdir=tag, eval_fn=eval_fn,
                                num_classes=num_classes)
  record = dict(rate=rate, num_classes=num_classes, num_outputs=num_outputs,
                model=part.model.to_dict(), history=result.history)
  if init_stats:  # w0: where train_classifier started
    w0 = train.init_snapshot(part, splits, key=key_train, num_classes=num_classes)
    flat = idx_CxK[valid_CxK]
    stats = persample.subset_gradient_stats(
        w0.model, w0.variables, *[jnp.asarray(a) for a in (
            train_set.x[flat], noisy.labels[flat], noisy.clean_labels[flat])],
        num_classes=num_classes, method=method)
    record["init_stats"] = {k: np.asarray(v) for k, v in stats.items()}
  return record


def run_claims(tag, rec, th) -> list:
  """The paper's claims on one training run's record, named `<tag>_<claim>`."""
  h, rate, outputs = rec["history"], rec["rate"], rec["num_outputs"]
  predicted = ntk_angles.predicted_ratio(rate, rec["num_classes"], num_outputs=outputs)
  early, first, final = train.early_stopping_point(h), h[0], h[-1]
  best, diag = early["test_error"], [r for r in h if "ratio_mean" in r]
  d0, ratio0 = diag[0], diag[0]["ratio_mean"]
  claim = lambda name, *args: claims.claim(f"{tag}_{name}", PAPER, *args)
  if predicted <= 1:  # δ above (C − 1)/C: the noisy labels are the majority of class c
    return [claim("majority_noise_is_learned", f"δ = {rate} > (C−1)/C (outside the paper's "
                  "δ < 0.5): the noisy labels dominate the gradient, so the net learns them "
                  "and the test error rises",
                  [claims.check("ratio_0", ratio0, "<", 1),
                   claims.check("final test error", final["test_error"], ">", 0.5)],
                  {"ratio_0": ratio0, "predicted": predicted,
                   "final_test_error": final["test_error"]})]
  classes = range(rec["num_classes"])
  angles0 = {f"c{c}": float(np.degrees(np.arccos(np.clip(d0[f"cos_c{c}"], -1, 1))))
             for c in classes}
  mean_angle = float(np.nanmean(list(angles0.values())))
  before = [r for r in diag if r["step"] <= early["step"]]
  at_es, es = before[-1], "ratio at the ES point"
  valley = [r for r in diag if r["test_error"] <= best + 0.01] or [at_es]  # (context)
  rho = metrics.spearman([r["step"] for r in before], [r["ratio_mean"] for r in before])
  max_cos, kept = max(r["cos_mean"] for r in before), 1 - th.excess_lost
  resid = "noisy_residual_l2" if outputs > 1 else "noisy_residual"
  return [
      claim("init_angle_noise_clean",
            "At initialization g_noise^(c) points almost opposite to g_clean^(c) (Fig. 4)",
            [claims.check("mean over c of θ(g_noise, g_clean) (degrees)", mean_angle, ">=",
                          th.init_angle_deg)], {"mean_deg": mean_angle, **angles0}),
      claim("init_ratio", "‖g_clean^(c)‖/‖g_noise^(c)‖ at initialization follows the "
            "population " + ("(eq. 8: (1 − δ)/δ)" if outputs == 1 else
                             "and the softmax average (eq. 14: (C − 1)(1 − δ)/δ)"),
            [claims.within("geometric mean over c of the ratio", ratio0, predicted,
                           th.ratio_rel_tol)],
            {"mean": ratio0, "predicted": predicted,
             **{f"c{c}": d0[f"ratio_c{c}"] for c in classes}}),
      claim("ratio_falls_to_about_1", "The clean dominance ‖g_clean‖/‖g_noise‖ falls to "
            "about 1 by the early-stopping point (Figs. 6, 8; Theorem 4.5)",
            [claims.check(es, at_es["ratio_mean"], "<=", th.ratio_at_es),
             claims.check(es, at_es["ratio_mean"], "<=", 1 + kept * (ratio0 - 1),
                          f"1 + {kept:g}·(ratio_0 − 1) =")],
            {"ratio_0": ratio0, "ratio_at_es": at_es["ratio_mean"], "es_step": early["step"],
             "diag_step": at_es["step"], "ratio_at_valley_end": valley[-1]["ratio_mean"],
             "valley_end_step": valley[-1]["step"]}),
      claim("ratio_decreases_before_es", "Before the early-stopping point the ratio "
            "decreases (α_t increases, Theorem 4.5; Fig. 6)",
            [claims.check("Spearman(t, ratio) on [0, t_ES]", rho, "<=", th.decrease_rank_corr)],
            {"spearman": rho, "points": len(before)}),
      claim("assumption_4_1", "Assumption 4.1 holds before the early-stopping point: "
            "g_noise^(c) ≈ −α_t g_clean^(c) with α_t ∈ (0, 1)",
            [claims.check("max over t ≤ t_ES of the mean over c of cos(g_noise, g_clean)",
                          max_cos, "<=", th.assumption_cos),
             claims.check("max over t ≤ t_ES of α_t", max(r["alpha_mean"] for r in before),
                          "<", 1)],
            {"max_cos_before_es": max_cos, "alpha_0": before[0]["alpha_mean"],
             "alpha_at_es": at_es["alpha_mean"],
             "max_cos_overall": max(r["cos_mean"] for r in diag)}),
      claim("clean_priority_before_es", "Before the early-stopping point the clean-subset "
            "error falls while the noisy-subset error (given labels) and residual rise "
            "(Figs. 5, 7)",
            [claims.check(f"{key.replace('_', ' ')} at t_ES", early[key], op, first[key],
                          "its t = 0 value")
             for key, op in (("clean_error", "<"), ("noisy_error", ">"), (resid, ">"))],
            {**{k: [first[k], early[k]] for k in ("clean_error", "noisy_error")},
             "noisy_residual": [first[resid], early[resid]], "es_epoch": early["epoch"]}),
      claim("best_test_below_noise_and_final", "The best test error is below the noise level "
            "and below the final test error (U-shape, Figs. 1, 5, 7)",
            [claims.check("best test error", best, "<", rate, "δ ="),
             claims.check("best test error", best, "<", final["test_error"], "final test error")],
            {"best": best, "final": final["test_error"], "best_epoch": early["epoch"]}),
  ]


def judge_runs(record, config) -> list:  # a run copied from another part is judged there
  return [c for tag, rec in record["runs"].items() if "copied_from" not in rec
          for c in run_claims(tag, rec, config.thresholds)]


def judge_histograms(record, config) -> list:
  out = []
  for panel in record["panels"]:
    noisy_angle = [float(a) for a in panel["stats"]["subset_angles_Cx3"][:2, 1]]
    m = figures.median_angles(panel["stats"])
    separate = all(m[f"median_clean_c{c}"] < 90 < m[f"median_noisy_c{c}"] for c in (0, 1))
    out.append(claims.claim(
        f"{panel['name']}_noise_opposite", PAPER,
        f"Fig. 4 ({panel['title']}): noisy sample gradients point away from g_clean^(c) and "
        "g_noise^(c) is almost opposite to g_clean^(c); clean ones point along it",
        [claims.check("min over c of θ(g_noise, g_clean) (degrees)", min(noisy_angle), ">=",
                      config.thresholds.init_angle_deg),
         claims.condition("median θ_g clean < 90° < median θ_g noisy for both c", separate)],
        {"theta_noise_deg": noisy_angle, **m}))
  return out


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
    "binary": experiment.Part(compute_trainings, figures.plot_binary, judge_runs),
    "histograms": experiment.Part(compute_histograms, figures.plot_histograms, judge_histograms),
    "widths": experiment.Part(compute_trainings, figures.plot_widths, judge_runs),
    "multiclass": experiment.Part(compute_trainings, figures.plot_multiclass, judge_runs),
    "noise_levels": experiment.Part(compute_trainings, figures.plot_noise_levels, judge_runs),
    "cifar": experiment.Part(compute_trainings, figures.plot_cifar, judge_runs),
}

if __name__ == "__main__":
  experiment.main("clean_priority", get_config, PARTS, validate=validate)

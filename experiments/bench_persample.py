"""Benchmark: noisejax's one-pass diagnostic step against a plain step, torch.func and a loop.

Times, in ONE process on the same mnist5k data (30% symmetric noise) and the same weights,
(a) a plain jitted SGD train step; (b) `persample.make_diagnostic_step` (the update plus
per-sample gradient norms, the angle of every sample gradient to its class's clean subset
gradient, subset-gradient norms and ‖g_clean‖/‖g_noise‖, clean-priority §3.2 / §5);
(c) the same quantities with PyTorch `torch.func.vmap(grad)` on an identical network
(optional `bench` extra: `pip install torch==2.13.0`; without it the torch claims fail as
"not measured"); (d) a Python loop of jitted per-sample `jax.grad`; (e) noisejax's own
`vmap` route (`persample.benchmark` holds (a), (c), (d) and the timer). Models: the
clean-priority MNIST CNN (batch 32…512, cross-entropy, single-logit gradients eq. 13) and
the binary 2×512 ReLU FCN on digits 7 vs 9 (batch 256, logistic loss). Both frameworks use
the same number of CPU threads. Times are medians over interleaved rounds; ratios are
medians of per-round ratios (the machine is shared, so side-by-side ratios are what is
comparable); JAX compile time (persistent compilation cache off) is reported separately.

  python -m experiments.bench_persample --preset quick   # ≈3–7 min on 2 shared CPU cores
  python -m experiments.bench_persample --preset paper   # 15 rounds per batch, no budget
  python -m experiments.bench_persample --preset tiny    # seconds: batch 8, one round

Expect: (b)/(a) ≤ 2 for the CNN, ≤ 1.5 for the FCN, (c)/(b) ≥ 2, (b) = (c) = (d) to float
precision. Writes bench_table.md and bench_time_vs_batch.png into the workdir; the claims
are the engineering targets (paper "engineering").
"""

import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from noisejax import claims, config as cfg, data, experiment, losses, models, noise, plots
from noisejax import persample as ps
from noisejax.persample import benchmark as bm

PAPER = "engineering"
VARIANTS = {"plain": "(a) plain JAX step", "diag": "(b) noisejax diagnostic step",
            "torch": "(c) torch.func vmap(grad)", "loop": "(d) loop of jax.grad",
            "vmap": "(e) noisejax vmap route"}


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: 3–7 rounds per batch size within a time budget; paper: 15 rounds, no budget.

  Both use the issue's batch sizes (CNN 32…512, FCN 256); they differ only in how many
  repetitions are timed. tiny: 200 images, batch 8 (FCN) and 16 (CNN), one round, the
  loop and the vmap route on the FCN only, torch off (its import and first calls take
  longer than the whole tiny run): the timings mean nothing at that size and the torch
  claims fail as not measured, but every other code path runs.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = cfg.data("mnist5k")                         # the CNN's 10 classes
  c.binary_data = cfg.data("mnist5k", classes=(7, 9))  # the FCN's two digits
  c.noise = cfg.noise("symmetric", 0.3)
  c.cnn_batches = (32, 64, 128, 256, 512)
  c.fcn_batch = 256
  c.lr = 0.01
  c.min_rounds = 3
  c.max_rounds = 7 if preset == "quick" else 15
  c.min_sample_seconds = 0.2  # steps faster than this are repeated within a round
  c.budget_seconds = 75.0 if preset == "quick" else 1e9  # per model and batch size
  c.loop_batch = 32       # (d) only at this batch (it grows linearly and is slow)
  c.vmap_batch = 128      # (e) the vmap route for the CNN at this batch (FCN at fcn_batch)
  c.torch = True
  c.threads = 0           # 0: as many as the CPU cores JAX's XLA CPU backend uses
  c.targets = ml_collections.ConfigDict({"cnn_ratio": 2.0, "fcn_ratio": 1.5, "torch_speedup": 2.0,
                                         "agree_rel": 1e-3, "agree_cos": 1e-4})
  if preset == "tiny":
    c.data.limit = c.binary_data.limit = 200
    c.cnn_batches, c.fcn_batch, c.loop_batch = (16,), 8, 8  # (d) on the FCN only
    c.vmap_batch = 0      # no CNN vmap route: its compile alone would double the run
    c.min_rounds, c.max_rounds, c.min_sample_seconds, c.budget_seconds = 1, 1, 0.0, 0.0
    c.torch = False
  return c


# ----------------------------------------------------------------------------
# One model at one batch size.


def _problem(config, kind, batch, key):
  """(model, x_B, given_B, true_B, num_classes, loss name, init key) on mnist5k; every
  batch size of a model sees the same noise draw, weights and sample order."""
  key_noise, key_order, key_init = jax.random.split(key, 3)
  if kind == "cnn":
    train_set, _ = data.load_splits(config.data)
    model, loss_name = models.get_model("clean_priority_cnn", 10), "cross_entropy"
  else:
    train_set, _ = data.load_splits(config.binary_data)
    model, loss_name = models.get_model("mlp", 1, hidden=(512, 512)), "logistic"
  noisy = noise.corrupt(key_noise, train_set.y, train_set.num_classes, config.noise.kind,
                        config.noise.rate)
  order = np.asarray(jax.random.permutation(key_order, len(train_set.y)))[:batch]
  return (model, train_set.x[order], np.asarray(noisy.labels)[order].astype(np.int32),
          np.asarray(noisy.clean_labels)[order].astype(np.int32), train_set.num_classes,
          loss_name, key_init)


def _bench_one(config, kind, batch, torch, key) -> dict:
  """Times every variant on one model and batch size; checks they agree."""
  model, x, given, true, num_classes, loss_name, key_init = _problem(config, kind, batch, key)
  loss_fn = losses.make_loss(loss_name, num_classes)
  params = jax.jit(model.init)(key_init, x[:1])["params"]
  apply_fn = ps.eval_apply_fn(model)
  tx = optax.sgd(config.lr)
  opt_state = tx.init(params)
  x_j, given_j, true_j = jnp.asarray(x), jnp.asarray(given), jnp.asarray(true)
  args = (params, opt_state, x_j, given_j, true_j)
  row = {"model": kind, "batch": batch, "params": models.count_params(params)}

  plain, row["compile_plain_s"] = bm.compiled(bm.plain_step(apply_fn, loss_fn, tx), *args[:4])
  diag, row["compile_diag_s"] = bm.compiled(
      ps.make_diagnostic_step(apply_fn, loss_fn, tx, num_classes, method="taps"), *args)
  memory = diag.memory_analysis()
  if memory is not None:
    row["diag_memory_mb"] = (memory.temp_size_in_bytes + memory.argument_size_in_bytes +
                             memory.output_size_in_bytes) / 2**20
  variants = {"plain": lambda: plain(*args[:4]), "diag": lambda: diag(*args)}
  _, reference = bm.timed(variants["diag"])
  ref_metrics = {k: v for k, v in jax.device_get(reference[2]).items() if k != "noisy_B"}

  if torch is not None:
    module, t_params = bm.torch_model(torch, kind, jax.device_get(params))
    t_step = bm.torch_step(torch, module, kind, num_classes, config.lr)
    t_args = (torch.from_numpy(np.array(x)), torch.from_numpy(given.astype(np.int64)),
              torch.from_numpy(true.astype(np.int64)))
    variants["torch"] = lambda: t_step(t_params, *t_args)
    t_new, t_metrics = variants["torch"]()
    row["torch_vs_diag"] = bm.max_errors({k: v.numpy() for k, v in t_metrics.items()},
                                         ref_metrics)
    row["torch_vs_diag"]["params_abs"] = bm.torch_params_error(
        t_new, jax.device_get(reference[0]))
  if batch == config.loop_batch:
    loop = bm.loop_step(apply_fn, loss_fn, tx, num_classes)
    _, out = bm.timed(loop, *args)      # compiles
    row["loop_vs_diag"] = bm.max_errors(
        {k: v for k, v in jax.device_get(out[2]).items() if k != "noisy_B"}, ref_metrics)
    variants["loop"] = lambda: loop(*args)
  if batch == (config.vmap_batch if kind == "cnn" else config.fcn_batch):  # 0: never
    vmap_step, row["compile_vmap_s"] = bm.compiled(
        ps.make_diagnostic_step(apply_fn, loss_fn, tx, num_classes, method="vmap"), *args)
    variants["vmap"] = lambda: vmap_step(*args)

  times, row["calls_per_round"] = bm.interleaved_rounds(
      variants, min_rounds=config.min_rounds, max_rounds=config.max_rounds,
      min_sample_seconds=config.min_sample_seconds, budget_seconds=config.budget_seconds)
  row["rounds"] = len(times["plain"])
  row["times"] = times
  for name, ts in times.items():
    row[f"{name}_s"] = float(np.median(ts))
  row["diag_over_plain"] = bm.median_ratio(times["diag"], times["plain"])
  for name, over in (("torch", "diag"), ("vmap", "plain"), ("loop", "plain")):
    if name in times:
      row[f"{name}_over_{over}"] = bm.median_ratio(times[name], times[over])
  return row


def compute(config, run) -> dict:
  torch = bm.import_torch() if config.torch else None
  torch_missing = None if torch else ("torch is not installed (pip install torch==2.13.0)"
                                      if config.torch else "config.torch = False")
  threads = config.threads or len(os.sched_getaffinity(0))
  if torch is not None:
    torch.set_num_threads(threads)
  cache = jax.config.jax_enable_compilation_cache
  jax.config.update("jax_enable_compilation_cache", False)  # compile times are measured
  rows, load_start = [], os.getloadavg()[0]
  try:
    for kind, batches in (("fcn", (config.fcn_batch,)), ("cnn", tuple(config.cnn_batches))):
      for batch in batches:
        key = jax.random.fold_in(run.key, int(kind == "cnn"))   # one problem per model
        row = _bench_one(config, kind, batch, torch, key)
        rows.append(row)
        run.log(step=len(rows), **{k: v for k, v in row.items() if k != "times"})
        print(f"{kind} B={batch}: plain {row['plain_s']:.3g}s diag {row['diag_s']:.3g}s "
              f"(×{row['diag_over_plain']:.2f})", flush=True)
  finally:
    jax.config.update("jax_enable_compilation_cache", cache)
  record = {"rows": rows, "threads": threads, "cpu_count": os.cpu_count(),
            "load_average": [load_start, os.getloadavg()[0]], "jax": jax.__version__,
            "torch": torch.__version__ if torch else None, "torch_missing": torch_missing}
  run.write_text("bench_table.md", table(record, judge(record, config)))
  return record


# ----------------------------------------------------------------------------
# Report: the table, the figure, the claims.


def _fmt(v, digits=3):
  if v is None or (isinstance(v, float) and math.isnan(v)):
    return "—"
  return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def table(record, targets) -> str:
  """bench_table.md: one row per model and batch size, then the claims."""
  load = record["load_average"]
  lines = [
      "# Sample-wise gradient diagnostics: time per step",
      "",
      f"{record['cpu_count']}-core CPU (shared), {record['threads']} threads for XLA and torch"
      f" (torch {record['torch'] or 'absent: ' + record['torch_missing']}, jax"
      f" {record['jax']}). Medians of interleaved rounds; ratios are medians of per-round"
      f" ratios. Load average (1 min) at start / end: {load[0]:.1f} / {load[1]:.1f};"
      " torch.func slows down more than XLA when other processes compete for the cores, so"
      " (c)/(b) grows with the load.",
      "; ".join(VARIANTS.values()) + ".",
      "",
      "| model | B | (a) plain s | (b) diag s | (b)/(a) | (c) torch s | (c)/(b) | (d) loop s |"
      " (e) vmap s | compile (a)/(b) s | (b) memory MB | max rel. err (c)/(d) vs (b) |"
      " max Δcos θ (c)/(d) | rounds |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in record["rows"]:
    errs = [r.get("torch_vs_diag"), r.get("loop_vs_diag")]
    rel = " / ".join(_fmt(e["rel"], 2) if e else "—" for e in errs)
    ang = " / ".join(_fmt(e["cos"], 2) if e else "—" for e in errs)
    lines.append(
        f"| {r['model'].upper()} | {r['batch']} | {_fmt(r['plain_s'])} | {_fmt(r['diag_s'])} |"
        f" **{_fmt(r['diag_over_plain'])}** | {_fmt(r.get('torch_s'))} |"
        f" **{_fmt(r.get('torch_over_diag'))}** | {_fmt(r.get('loop_s'))} |"
        f" {_fmt(r.get('vmap_s'))} | {_fmt(r['compile_plain_s'], 2)} / {_fmt(r['compile_diag_s'], 2)} |"
        f" {_fmt(r.get('diag_memory_mb'), 4)} | {rel} | {ang} | {r['rounds']} |")
  lines += ["", "## Targets", ""]
  lines += [f"- {c.statement} ({c.expected}): measured {c.measured} → "
            f"**{'met' if c.passed else 'NOT met'}**" for c in targets]
  return "\n".join(lines) + "\n"


def plot(record, config) -> dict:
  rows = record["rows"]
  fig, axes = plots.figure(width=6.4, height=4.4)
  ax = axes[0, 0]
  styles = {"plain": ("k", "o"), "diag": ("C0", "s"), "torch": ("C3", "^"), "loop": ("C2", "v"),
            "vmap": ("C1", "D")}
  for key, (color, marker) in styles.items():
    pts = [(r["batch"], r[f"{key}_s"]) for r in rows if r["model"] == "cnn" and f"{key}_s" in r]
    if pts:
      b, t = zip(*pts)
      ax.plot(b, t, marker=marker, color=color, label=VARIANTS[key],
              ls="-" if len(pts) > 1 else "none")
    for r in rows:
      if r["model"] == "fcn" and f"{key}_s" in r:
        ax.plot([r["batch"]], [r[f"{key}_s"]], marker=marker, color=color, mfc="none", ms=9,
                ls="none", label=None if pts else VARIANTS[key])
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set(xlabel="batch size", ylabel="seconds per step (median)",
         title="Clean-priority MNIST CNN (filled) and 2×512 FCN (open)")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  return {"bench_time_vs_batch.png": fig}


def judge(record, config) -> list:
  rows, t = record["rows"], config.targets
  not_measured = f"not measured: {record['torch_missing']}"
  out = []
  for kind, limit in (("cnn", t.cnn_ratio), ("fcn", t.fcn_ratio)):
    ratios = {str(r["batch"]): round(r["diag_over_plain"], 2) for r in rows if r["model"] == kind}
    out.append(claims.claim(
        f"{kind}_ratio", PAPER,
        f"{kind.upper()}: the diagnostic step costs at most {limit:g}× the plain step",
        [claims.check("(b)/(a) at the worst batch size", max(ratios.values(), default=None),
                      "<=", limit)], ratios or "not measured"))
  speedups = {f"{r['model']}@{r['batch']}": round(r["torch_over_diag"], 2)
              for r in rows if "torch_over_diag" in r}
  out.append(claims.claim(
      "torch_speedup", PAPER,
      "The diagnostic step is faster than torch.func on the same quantities",
      [claims.check("(c)/(b) at the worst model and batch", min(speedups.values(), default=None),
                    ">=", t.torch_speedup)], speedups or not_measured))
  checks, measured = [], {}
  for name, label in (("torch", "(c) torch.func"), ("loop", "(d) loop of jax.grad")):
    errs = [r[f"{name}_vs_diag"] for r in rows if f"{name}_vs_diag" in r]
    if not errs:
      checks.append(claims.condition(f"{label}: compared", False))
      measured[name] = not_measured if name == "torch" else "not measured"
      continue
    worst = {"rel": max(e["rel"] for e in errs), "cos": max(e["cos"] for e in errs)}
    checks += [claims.check(f"{label}: max rel. error", worst["rel"], "<=", t.agree_rel),
               claims.check(f"{label}: max |Δ cos θ|", worst["cos"], "<=", t.agree_cos)]
    measured[name] = worst
  out.append(claims.claim(
      "agreement", PAPER, "(b) gives the same numbers as (c) and (d) to float precision",
      checks, measured))
  return out


PARTS = {"timings": experiment.Part(compute, plot, judge)}

if __name__ == "__main__":
  experiment.main("bench_persample", get_config, PARTS)

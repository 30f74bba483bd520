"""Benchmark: S seeds in one compiled program against S runs of a per-step Python loop.

Command: python -m experiments.bench_seeds --preset quick   (≈6–10 min on 2 CPU cores)

In one process, on the same data and the same initial weights, per net:
(a) the training loop before the device-resident loop: a Python loop over steps that
    draws each batch on the host (numpy indexing of a host permutation) and calls the
    jitted step once per step — run S times one after the other ("S sequential runs": S
    × the measured time of one run, the runs being the same program);
(b) the S runs vmapped in one compiled program, all at once (S = 1: unbatched), the steps
    one `lax.scan` with the data on the device;
(c) what `train.train_classifier` runs for S seeds: (b), but in chunks of
    `train.runs_per_program` runs of one compiled program (the MNIST batch-1 net: 4 runs,
    the misclassification experiment's setting; convolutional models on a CPU: 1, and
    one compiled call per step instead of the scan, see `train.scan_is_fast`).
Nets: the misclassification paper's hypercube net (d = 60, 240 ReLU units, batch-1 SGD
with per-step label resampling p = 0.2) and its MNIST net (600 units, sum of logistic
losses, batch 1, p = 0.1) — batch-1 nets where the Python loop costs far more than the
step — the binary 2×512 FCN (MNIST 7 vs 9, batch 256) and the clean-priority MNIST CNN
(batch 128). Times are medians over interleaved rounds, ratios medians of per-round
ratios; compile time is measured apart (`lower().compile()`), and the memory of a
compiled program is XLA's own count (arguments + outputs + temporaries).
Targets (claims, judged on (c), with (b) reported beside): 8 seeds ≥ 5× faster than 8
sequential runs for the batch-1 nets, the device-resident loop ≥ 3× faster than the
per-step loop at S = 1 for them; for the FCN and the CNN (compute bound on a CPU) no
slower, i.e. a ratio ≥ config.targets.no_slower (timing noise between two identical
routes is a few percent). Writes bench_table.md, the plots and the claims into its
workdir.
"""

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from noisejax import claims, config as cfg, data, experiment, noise, plots, synthetic, train

PAPER = "engineering"
BATCH1 = ("hypercube", "mnist_batch1")


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: S ∈ {1, 4, 8, 16}, 3 rounds; paper: 5 rounds; tiny: S ∈ {1, 2}, a few steps."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = ("hypercube", "mnist_batch1", "fcn", "cnn")
  c.seeds = (1, 4, 8, 16)
  c.rounds = 3 if preset != "paper" else 5
  c.steps = ml_collections.ConfigDict(dict(hypercube=4000, mnist_batch1=4000, fcn=60, cnn=4))
  c.targets = ml_collections.ConfigDict(dict(batch1_seeds8=5.0, batch1_scan=3.0,
                                             no_slower=0.95))
  if preset == "tiny":
    c.seeds, c.rounds = (1, 2), 1
    c.steps = ml_collections.ConfigDict(dict(hypercube=50, mnist_batch1=50, fcn=3, cnn=2))
  return c


def _problem(name: str, key):
  """(training config, splits) of one benchmarked net."""
  if name == "hypercube":  # misclassification §6.3, Fig. 1
    d = 60
    x, y = synthetic.hypercube_boundary(key, 4 * d, d, 0.3)
    labels = (np.asarray(y) + 1) // 2
    model = cfg.model("mlp", hidden=(4 * d,), weight_init="uniform_sqrt3")
    return (cfg.training(model, cfg.loss("logistic"),
                         cfg.optim("sgd", lr=1.0 / d, batch_size=1, epochs=1),
                         cfg.method("resample", p=0.2)),
            _splits(np.asarray(x), labels, np.asarray(x[:10]), labels[:10]))
  if name == "mnist_batch1":  # misclassification §6.3, Figs. 5–6
    train_set, test_set = data.load_splits(cfg.data("mnist5k"))
    return (cfg.training(cfg.model("mlp", hidden=(600,)), cfg.loss("sum_logistic"),
                         cfg.optim("sgd", lr=0.01, batch_size=1, epochs=1, runs_per_program=4),
                         cfg.method("resample", p=0.1)),
            _splits(train_set.x, train_set.y, test_set.x, test_set.y))
  if name == "fcn":  # clean-priority App. B, binary 7 vs 9
    train_set, test_set = data.load_splits(cfg.data("mnist5k", classes=(7, 9)))
    return (cfg.training(cfg.model("mlp", hidden=(512, 512)), cfg.loss("logistic"),
                         cfg.optim("sgd", lr=0.05, batch_size=256, epochs=1)),
            _splits(train_set.x, train_set.y, test_set.x, test_set.y, key))
  train_set, test_set = data.load_splits(cfg.data("mnist5k"))  # clean-priority MNIST CNN
  return (cfg.training(cfg.model("clean_priority_cnn"), cfg.loss("cross_entropy"),
                       cfg.optim("momentum", lr=0.05, momentum=0.9, batch_size=128, epochs=1)),
          _splits(train_set.x, train_set.y, test_set.x, test_set.y, key))


def _splits(x, y, x_test, y_test, key=None):
  num_classes = int(np.max(y)) + 1
  noisy = (noise.corrupt(key, y, num_classes, "symmetric", 0.3) if key is not None
           else noise.corrupt(jax.random.key(0), y, num_classes, "none", 0.0))
  return train.Splits(x, noisy, x_test, y_test)


# ----------------------------------------------------------------------------
# The two loops.


def python_loop(spec, state, x_N, labels_N, keys, num_steps, step_fn):
  """The per-step loop noisejax had before the scan: host batches, one call per step."""
  spe, batch = spec.steps_per_epoch, spec.batch_size
  order = None
  for step in range(num_steps):
    epoch, position = divmod(step, spe)
    if order is None or position == 0:
      order = np.asarray(jax.random.permutation(jax.random.fold_in(keys["shuffle"], epoch),
                                                spec.num_train))
    idx = order[position * batch:(position + 1) * batch]
    state, loss = step_fn(spec, state, x_N[idx], labels_N[idx], idx,
                          jax.random.fold_in(keys["step"], step))
  jax.block_until_ready(loss)
  return state


def _copy(tree):
  return jax.tree.map(jnp.copy, tree)


def _compiled(spec, state, data_, keys, steps, axes):
  """(run() -> seconds, compile seconds, memory MB) of train_classifier's loop for these
  runs: the compiled scan, or, where the scan is slow (train.scan_is_fast), one compiled
  call per step."""
  if train.scan_is_fast(spec):
    start = time.perf_counter()
    compiled = train._train_steps.lower(spec, state, data_, keys, jnp.int32(0),
                                        num_steps=steps, axes=axes).compile()
    compile_s = time.perf_counter() - start
    call = lambda fresh: compiled(fresh, data_, keys, jnp.int32(0))
  else:
    perms = train._chunk_permutations(spec, state, data_, keys, jnp.int32(0),
                                      num_steps=steps, axes=axes)
    start = time.perf_counter()
    compiled = train._one_step.lower(spec, state, data_, keys, perms, jnp.int32(0),
                                     axes=axes).compile()
    compile_s = time.perf_counter() - start
    call = lambda fresh: train._train_chunk(spec, fresh, data_, keys, 0, steps, axes)
  mem = compiled.memory_analysis()
  memory_mb = None if mem is None else (mem.argument_size_in_bytes + mem.output_size_in_bytes
                                        + mem.temp_size_in_bytes) / 2**20

  def run():
    fresh = _copy(state)
    start = time.perf_counter()
    jax.block_until_ready(call(fresh))
    return time.perf_counter() - start

  run()  # warm-up (the per-step route compiles its permutation program here)
  return run, compile_s, memory_mb


def compute(config, run, name):
  train_config, splits = _problem(name, run.key)
  spec = train.make_spec(train_config, int(np.max(splits.noisy.labels)) + 1, splits.num_train,
                         splits.input_shape)
  seeds = tuple(config.seeds)
  steps = int(config.steps[name])
  keys_S = jax.random.split(run.key, max(seeds))
  hp = {k: v for k, v in train_config.method.items() if k != "name"}
  states, run_keys = jax.jit(jax.vmap(lambda k: train._init_run(
      spec, splits, k, hp, train_config.optim.lr)))(keys_S)
  data_, axes = splits.device_data()
  axes_key = tuple(sorted(axes.items()))
  take = lambda tree, s: jax.tree.map(lambda a: a[:s], tree)
  first = lambda tree: jax.tree.map(lambda a: a[0], tree)

  chunks = {seeds_: train.runs_per_program(spec, train_config.optim, seeds_) for seeds_ in seeds}
  programs, compile_s, memory_mb = {}, {}, {}
  for s in sorted({0, *seeds, *chunks.values()}):  # 0: one run, unbatched
    state, keys = (first(states), first(run_keys)) if s == 0 else (take(states, s),
                                                                   take(run_keys, s))
    programs[s], compile_s[s], memory_mb[s] = _compiled(spec, state, data_, keys, steps,
                                                        None if s == 0 else axes_key)
  step_fn = jax.jit(train.train_step, static_argnums=0, donate_argnums=1)
  x_host, labels_host = np.asarray(splits.x_train), np.asarray(splits.noisy.labels)
  start = time.perf_counter()
  python_loop(spec, _copy(first(states)), x_host, labels_host, first(run_keys), 1, step_fn)
  compile_s["python_loop"] = time.perf_counter() - start

  times = {"python_loop": [], **{s: [] for s in programs}}
  for _ in range(config.rounds):  # interleaved: every variant once per round
    start = time.perf_counter()
    python_loop(spec, _copy(first(states)), x_host, labels_host, first(run_keys), steps,
                step_fn)
    times["python_loop"].append(time.perf_counter() - start)
    for s, program in programs.items():
      seconds = program()
      times[s].append(seconds)

  loop = np.asarray(times["python_loop"])
  rows = []
  for s in seeds:
    vmapped, c = np.asarray(times[s]), chunks[s]
    library = np.asarray(times[c]) * (s // c) + (np.asarray(times[s % c]) if s % c else 0)
    rows.append({"seeds": s, "runs_per_program": c,
                 "vmapped_s_per_run": float(np.median(vmapped) / s),
                 "library_s_per_run": float(np.median(library) / s),
                 "sequential_s_per_run": float(np.median(loop)),
                 "vmapped_speedup": float(np.median(s * loop / vmapped)),
                 "speedup": float(np.median(s * loop / library)),
                 "compile_s": compile_s[s], "memory_mb": memory_mb[s]})
  return {"net": name, "steps": steps, "rounds": config.rounds, "rows": rows,
          "scan_s": float(np.median(times[0])), "loop_s": float(np.median(loop)),
          "scan_vs_loop": float(np.median(loop / np.asarray(times[0]))),
          "compile_s": {str(k): v for k, v in compile_s.items()},
          "memory_mb_one_run": memory_mb[0], "devices": str(jax.devices()),
          "loop": "scan" if train.scan_is_fast(spec) else "one compiled call per step"}


def plot(record, config):
  fig, axes = plots.figure(1, 2, width=5.5, height=3.8)
  rows = record["rows"]
  seeds = [r["seeds"] for r in rows]
  axes[0, 0].plot(seeds, [r["sequential_s_per_run"] for r in rows], "o-", color="k",
                  label="(a) per-step Python loop")
  axes[0, 0].plot(seeds, [r["vmapped_s_per_run"] for r in rows], "s--", color="C0",
                  label="(b) S runs vmapped at once")
  axes[0, 0].plot(seeds, [r["library_s_per_run"] for r in rows], "^-", color="C1",
                  label="(c) train_classifier (chunks of runs_per_program)")
  axes[0, 0].set(xscale="log", yscale="log", xlabel="seeds S", ylabel="seconds per run",
                 title=f"{record['net']}: {record['steps']} steps")
  axes[0, 0].legend(fontsize=8)
  axes[0, 1].plot(seeds, [r["vmapped_speedup"] for r in rows], "s--", color="C0", label="(b)")
  axes[0, 1].plot(seeds, [r["speedup"] for r in rows], "^-", color="C1", label="(c)")
  axes[0, 1].legend(fontsize=8)
  axes[0, 1].axhline(1.0, color="gray", lw=0.8)
  axes[0, 1].set(xscale="log", xlabel="seeds S", ylabel="S sequential runs / one program",
                 title="speed-up")
  return {f"bench_seeds_{record['net']}.png": fig}


def judge(record, config):
  name, t = record["net"], config.targets
  rows = {r["seeds"]: r for r in record["rows"]}
  batch1 = name in BATCH1
  s_target = max(s for s in rows if s <= 8)
  row = rows[s_target]
  speed_bound = t.batch1_seeds8 if batch1 else t.no_slower
  scan_bound = t.batch1_scan if batch1 else t.no_slower
  what = ("batch-1 net" if batch1 else
          "compute-bound net, no target on a CPU beyond no slower (within timing noise)")
  rounds = f"median of {record['rounds']} rounds"
  return [
      claims.claim(f"seeds{s_target}_through_train_classifier", PAPER,
                   f"{name} ({what}): {s_target} seeds as train_classifier runs them "
                   f"({row['runs_per_program']} runs per compiled program) against "
                   f"{s_target} sequential runs of the per-step loop",
                   [claims.check(f"speed-up at S = {s_target} ({rounds})", row["speedup"], ">=",
                                 speed_bound)],
                   {"speedup_by_seeds": {s: r["speedup"] for s, r in rows.items()},
                    "runs_per_program": row["runs_per_program"],
                    "all_vmapped_at_once_speedup": {s: r["vmapped_speedup"]
                                                    for s, r in rows.items()}}),
      claims.claim("scan_vs_python_loop", PAPER,
                   f"{name}: the device-resident loop ({record['loop']}) against the "
                   "per-step loop, one run",
                   [claims.check(f"speed-up at S = 1 ({rounds})", record["scan_vs_loop"], ">=",
                                 scan_bound)],
                   {"scan_s": record["scan_s"], "loop_s": record["loop_s"],
                    "speedup": record["scan_vs_loop"]}),
  ]


def table(records: list) -> str:
  lines = ["| net | steps | S | loop s/run | (b) all vmapped s/run | (b) speed-up | "
           "(c) runs/program | (c) s/run | (c) speed-up | compile s | memory MB |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for rec in records:
    lines.append(f"| {rec['net']} | {rec['steps']} | 1 (unbatched, {rec['loop']}) | "
                 f"{rec['loop_s']:.3g} | {rec['scan_s']:.3g} | {rec['scan_vs_loop']:.2f} | — "
                 f"| — | — | {rec['compile_s']['0']:.2f} | "
                 f"{rec['memory_mb_one_run'] or float('nan'):.1f} |")
    for r in rec["rows"]:
      lines.append(f"| {rec['net']} | {rec['steps']} | {r['seeds']} | "
                   f"{r['sequential_s_per_run']:.3g} | {r['vmapped_s_per_run']:.3g} | "
                   f"{r['vmapped_speedup']:.2f} | {r['runs_per_program']} | "
                   f"{r['library_s_per_run']:.3g} | {r['speedup']:.2f} | "
                   f"{r['compile_s']:.2f} | {r['memory_mb'] or float('nan'):.1f} |")
  return "\n".join(lines) + "\n"


def _part(name):
  def compute_part(config, run):
    record = compute(config, run, name)
    done = [run.record(p) for p in config.parts if p != name] + [record]
    run.write_text("bench_table.md", table([r for r in done if r]))
    return record
  return experiment.Part(compute_part, plot, judge)


PARTS = {name: _part(name) for name in ("hypercube", "mnist_batch1", "fcn", "cnn")}

if __name__ == "__main__":
  experiment.main("bench_seeds", get_config, PARTS)

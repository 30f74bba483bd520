"""distributed: two devices and two processes train as one device does; only process 0
writes the workdir; the checkpoint the two processes wrote restores.

The device and process counts are fixed when JAX starts, so those runs happen in
subprocesses (CPU, `--xla_force_host_platform_device_count`, gloo collectives); the rest
of the suite keeps its single device.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from experiments import u_curve
from noisejax import distributed, experiment, train
from noisejax.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds for any one subprocess

# One process, two CPU devices: the same training on a one-device mesh and on the
# two-device mesh (one run; three vmapped runs), and the warning for a batch size the
# devices do not divide.
_TWO_DEVICES = textwrap.dedent("""
    import dataclasses, json, warnings
    import jax, numpy as np
    from noisejax import config as cfg, distributed, experiment, noise, train

    rng = np.random.default_rng(0)
    x = rng.normal(size=(136, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    flip = rng.random(96) < 0.25
    given = np.where(flip, 1 - y[:96], y[:96])
    splits = train.Splits(x[:96], noise.NoisyLabels(given, y[:96], flip, flip.mean()),
                          x[96:], y[96:])

    def config(batch_size):
      return cfg.training(cfg.model("mlp", hidden=(16,)), cfg.loss("cross_entropy"),
                          cfg.optim("momentum", lr=0.1, momentum=0.9, batch_size=batch_size,
                                    epochs=4))

    def trained(c, state, keys, mesh):
      spec = dataclasses.replace(train.make_spec(c, 2, 96, (4,)), mesh=mesh)
      result = train.fit(spec, state, splits, c.optim, keys=keys, batched=keys["step"].ndim == 1)
      params = [np.asarray(l).tolist() for l in jax.tree.leaves(result.state.params)]
      devices = {len(l.sharding.device_set) for l in jax.tree.leaves(result.state.params)}
      return {"histories": result.histories, "params": params, "devices": sorted(devices)}

    experiment.enable_compilation_cache()
    one, two = distributed.batch_mesh(jax.devices()[:1]), distributed.batch_mesh()
    out = {"num_devices": jax.device_count()}
    c = config(16)
    init = jax.jit(lambda k: train._init_run(train.make_spec(c, 2, 96, (4,)), splits, k, {}, 0.1))
    for name, key in (("one_run", jax.random.key(0)),
                      ("three_runs", jax.random.split(jax.random.key(1), 3))):
      state, keys = (jax.vmap(init) if key.ndim else init)(key)
      state = jax.device_get(state)  # host copies: each fit places (and donates) its own
      out[name] = {mesh: trained(c, state, keys, m) for mesh, m in (("one", one), ("two", two))}
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      train.make_spec(config(15), 2, 96, (4,))
      train.make_spec(config(16), 2, 96, (4,))
    out["warnings"] = [str(w.message) for w in caught]

    spec = train.make_spec(c, 2, 96, (4,))  # the two-device program of one_run
    state, keys = distributed.replicate(init(jax.random.key(0)), spec.mesh)
    data, _ = splits.device_data(spec.mesh)
    hlo = train._train_steps.lower(spec, state, data, keys, jax.numpy.int32(0), num_steps=6,
                                   axes=None).compile().as_text()
    out["step_all_reduces"] = "all-reduce" in hlo
    print("RESULT " + json.dumps(out))
""")

# Runs a module as `python -m` and lists the files it wrote under a watched directory
# (Python-level writes: open for writing, mkdir, rename, remove; audit hooks, PEP 578).
_WATCH_WRITES = textwrap.dedent("""
    import atexit, json, os, runpy, sys
    watched, log, module = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3]
    written = set()
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event, args):
      paths = []
      if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS):
          paths = [path]
      elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"):
        paths = [args[0]]
      elif event in ("os.rename", "shutil.move", "shutil.copyfile"):
        paths = [args[0], args[1]]
      for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
          full = os.path.realpath(os.fsdecode(path))
          if full == watched or full.startswith(watched + os.sep):
            written.add(os.path.relpath(full, watched))

    sys.addaudithook(hook)
    atexit.register(lambda: open(log, "w").write(json.dumps(sorted(written))))
    sys.argv = [module] + sys.argv[4:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
""")


def _env(**extra) -> dict:
  """This environment on one CPU device, without any launcher's variables."""
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("SLURM_", "NOISEJAX_COORDINATOR", "NOISEJAX_NUM_PROCESSES",
                              "NOISEJAX_PROCESS_ID", "JAX_COORDINATOR", "XLA_FLAGS"))}
  env.update(JAX_PLATFORMS="cpu", NOISEJAX_QUIET="1", PYTHONPATH=str(ROOT), **extra)
  return env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _metrics(workdir) -> list[dict]:
  return [json.loads(l) for l in (pathlib.Path(workdir) / "metrics.jsonl").read_text().split("\n")
          if l.strip()]


def _assert_same_training(a: list[dict], b: list[dict]):
  """Equal histories within float tolerance: losses and residuals to 1e-3 relative,
  error rates to 0.011 (one sample of a 100-sample subset)."""
  assert [r["step"] for r in a] == [r["step"] for r in b]
  for ra, rb in zip(a, b):
    assert ra.keys() == rb.keys()
    for k in ra:
      tolerance = dict(atol=0.011) if k.endswith("error") or k.endswith("error_true") else dict(
          rtol=1e-3, atol=1e-5)
      np.testing.assert_allclose(ra[k], rb[k], err_msg=f"step {ra['step']}: {k}", **tolerance)


# ----------------------------------------------------------------------------
# Launch detection (no JAX backend involved).


@pytest.fixture
def clean_env(monkeypatch):
  for k in list(os.environ):
    if k.startswith(("SLURM_", "NOISEJAX_COORDINATOR", "NOISEJAX_NUM_PROCESSES",
                     "NOISEJAX_PROCESS_ID")):
      monkeypatch.delenv(k)
  return monkeypatch


def test_launch_single_process_explicit_and_slurm(clean_env):
  assert distributed.launch() is None
  clean_env.setenv("NOISEJAX_NUM_PROCESSES", "1")
  assert distributed.launch() is None
  clean_env.setenv("NOISEJAX_NUM_PROCESSES", "2")
  clean_env.setenv("NOISEJAX_PROCESS_ID", "1")
  clean_env.setenv("NOISEJAX_COORDINATOR", "node7:4321")
  assert distributed.launch() == {"source": "env", "num_processes": 2, "process_id": 1,
                                  "coordinator": "node7:4321"}
  for k in ("NOISEJAX_NUM_PROCESSES", "NOISEJAX_PROCESS_ID", "NOISEJAX_COORDINATOR"):
    clean_env.delenv(k)
  slurm = {"SLURM_JOB_ID": "17", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "1",
           "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
  for k, v in slurm.items():
    clean_env.setenv(k, v)
  assert distributed.launch() is None  # one task: a single process
  clean_env.setenv("SLURM_NTASKS", "4")
  clean_env.setenv("SLURM_PROCID", "3")
  assert distributed.launch() == {"source": "slurm", "num_processes": 4, "process_id": 3,
                                  "coordinator": None}
  clean_env.delenv("SLURM_STEP_NODELIST")  # a batch script, not an srun step
  assert distributed.launch() is None


@pytest.mark.parametrize("variables, field", [
    ({"NOISEJAX_NUM_PROCESSES": "two"}, "NOISEJAX_NUM_PROCESSES"),
    ({"NOISEJAX_NUM_PROCESSES": "0"}, "NOISEJAX_NUM_PROCESSES"),
    ({"NOISEJAX_COORDINATOR": "h:1", "NOISEJAX_PROCESS_ID": "0"}, "NOISEJAX_NUM_PROCESSES"),
    ({"NOISEJAX_NUM_PROCESSES": "2", "NOISEJAX_COORDINATOR": "h:1"}, "NOISEJAX_PROCESS_ID"),
    ({"NOISEJAX_NUM_PROCESSES": "2", "NOISEJAX_PROCESS_ID": "2", "NOISEJAX_COORDINATOR": "h:1"},
     "NOISEJAX_PROCESS_ID"),
    ({"NOISEJAX_NUM_PROCESSES": "2", "NOISEJAX_PROCESS_ID": "1"}, "NOISEJAX_COORDINATOR"),
    ({"NOISEJAX_NUM_PROCESSES": "2", "NOISEJAX_PROCESS_ID": "1",
      "NOISEJAX_COORDINATOR": "nohost"}, "NOISEJAX_COORDINATOR"),
])
def test_bad_launch_variables_are_one_line_errors(clean_env, variables, field):
  for k, v in variables.items():
    clean_env.setenv(k, v)
  with pytest.raises(ConfigError, match=field) as error:
    distributed.launch()
  assert "\n" not in str(error.value)


def test_bad_launch_variable_stops_the_runner_before_anything_is_written(clean_env, tmp_path,
                                                                           capsys):
  clean_env.setenv("NOISEJAX_NUM_PROCESSES", "2")
  clean_env.setenv("NOISEJAX_PROCESS_ID", "5")
  clean_env.setenv("NOISEJAX_COORDINATOR", "localhost:1234")
  with pytest.raises(SystemExit) as stop:
    experiment.main("u_curve", u_curve.get_config, u_curve.PARTS,
                    ["--preset", "tiny", "--workdir", str(tmp_path / "run")])
  assert stop.value.code == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "NOISEJAX_PROCESS_ID" in err and "[0, 2)" in err
  assert not (tmp_path / "run").exists()


def test_one_process_touches_no_backend_on_import_or_initialize():
  """`initialize()` must come before any JAX computation: no module may start a backend
  when imported, and a single process's initialize() starts none either."""
  code = textwrap.dedent("""
      import importlib, pkgutil
      import experiments, noisejax
      from jax._src import xla_bridge
      started = []
      for package in (noisejax, experiments):
        for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
          importlib.import_module(m.name)
          if xla_bridge.backends_are_initialized() and not started:
            started.append(m.name)
      from noisejax import distributed
      assert distributed.initialize() is False and distributed.is_main_process()
      assert distributed.process_count() == 1
      print("STARTED", started, xla_bridge.backends_are_initialized())
  """)
  out = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=ROOT, text=True,
                       capture_output=True, timeout=TIMEOUT)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "STARTED [] False" in out.stdout, (
      f"a module starts a JAX backend when imported: {out.stdout.strip()}")


# ----------------------------------------------------------------------------
# Several devices and several processes.


def test_two_devices_train_as_one():
  out = subprocess.run([sys.executable, "-c", _TWO_DEVICES], cwd=ROOT, text=True,
                       capture_output=True, timeout=TIMEOUT,
                       env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.split("RESULT ", 1)[1])
  assert result["num_devices"] == 2
  assert result["step_all_reduces"]  # the batch is split, the gradient summed across devices
  for name in ("one_run", "three_runs"):
    one, two = result[name]["one"], result[name]["two"]
    assert one["devices"] == [1] and two["devices"] == [2], name
    assert len(one["histories"]) == (3 if name == "three_runs" else 1)
    for h1, h2 in zip(one["histories"], two["histories"], strict=True):
      _assert_same_training(h1, h2)
    for p1, p2 in zip(one["params"], two["params"], strict=True):
      np.testing.assert_allclose(p1, p2, rtol=1e-4, atol=1e-5, err_msg=name)
  assert result["warnings"] == ["optim.batch_size=15 is not a multiple of the 2 devices: "
                                "every device computes the whole batch (no data parallelism)"]


@pytest.mark.xfail(reason="open: with the im2col CNN, 2-process data-parallel u_curve tiny "
                   "differs from one process by 0.4% in clean_loss after 9 steps (bound 0.1%)",
                   strict=False)
def test_two_processes_train_u_curve_tiny_as_one(tmp_path):
  """u_curve tiny (2 epochs) in two processes, one CPU device each, equals one process;
  process 1 writes nothing but its share of the orbax checkpoints; the checkpoint
  restores in a single process."""
  args = ["--preset", "tiny", "--config.optim.epochs=2"]
  single = tmp_path / "single"
  out = subprocess.run([sys.executable, "-m", "experiments.u_curve", *args, "--workdir",
                        str(single)], cwd=ROOT, env=_env(), text=True, capture_output=True,
                       timeout=TIMEOUT)
  assert out.returncode == 0, out.stderr[-3000:]

  shared = tmp_path / "two_processes"
  coordinator = f"127.0.0.1:{_free_port()}"
  processes, logs, outputs = [], [], []
  for i in range(2):
    logs.append(tmp_path / f"written_by_{i}.json")
    outputs.append((tmp_path / f"stdout_{i}.txt", tmp_path / f"stderr_{i}.txt"))
    env = _env(NOISEJAX_COORDINATOR=coordinator, NOISEJAX_NUM_PROCESSES="2",
               NOISEJAX_PROCESS_ID=str(i))
    with open(outputs[i][0], "w") as stdout, open(outputs[i][1], "w") as stderr:
      processes.append(subprocess.Popen(
          [sys.executable, "-c", _WATCH_WRITES, str(shared), str(logs[i]),
           "experiments.u_curve", *args, "--workdir", str(shared)], cwd=ROOT, env=env,
          stdout=stdout, stderr=stderr))
  try:
    for p in processes:
      p.wait(timeout=TIMEOUT)
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  stdouts = [o.read_text() for o, _ in outputs]
  for p, (_, stderr) in zip(processes, outputs):
    assert p.returncode == 0, stderr.read_text()[-3000:]
  assert "claims passed" in stdouts[0] and "claims passed" not in stdouts[1]

  written = [json.loads(log.read_text()) for log in logs]
  outside_checkpoints = [[f for f in w if f.split(os.sep)[0] != "checkpoints"] for w in written]
  assert outside_checkpoints[1] == [], f"process 1 wrote {outside_checkpoints[1]}"
  assert {"config.json", "metrics.jsonl", "noise.npz", "records/u_curve.json", "timings.json",
          "claims.json", "u_curve.png"} <= set(outside_checkpoints[0])

  history = _metrics(shared)
  _assert_same_training(_metrics(single), history)
  assert [r["epoch"] for r in history] == [0, 1, 2]
  assert (json.loads((shared / "claims.json").read_text())[0]["measured"]["min_test"]
          == min(r["test_error"] for r in history))

  config = u_curve.get_config("tiny")
  num_train = config.data.limit - config.val_size  # the held-out split is not trained on
  spec = train.make_spec(config, 10, num_train, (28, 28, 1))
  target = train.init_state(spec, jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32),
                            lr=1.0)
  restored = {}
  for name, workdir in (("single", single), ("two", shared)):
    manager = train._manager(workdir / "checkpoints")
    restored[name] = train._restore(manager, target)
    manager.close()
  (state_1, histories_1, step_1), (state_2, histories_2, step_2) = restored.values()
  assert step_1 == step_2 == num_train // config.optim.batch_size * 2  # 2 epochs
  assert histories_2 == [history]  # the checkpoint's history is what metrics.jsonl holds
  for a, b in zip(jax.tree.leaves(state_1.params), jax.tree.leaves(state_2.params), strict=True):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)  # the same steps, float32 reductions apart
    assert np.linalg.norm(a - b) <= 1e-3 * np.linalg.norm(a), a.shape

"""Clean-priority learning, Fig. 1: the U-shaped test error under label noise.

The clean-priority MNIST CNN is trained with mini-batch SGD on labels of which 30% are
flipped (symmetric, exactly round(0.3·n_c) per class, each to a uniformly random other
class). The test error first falls well below the noise level, then rises as the net
memorizes the flipped labels; the training error against the given labels eventually
falls below the noise level.

  python -m experiments.u_curve --preset quick   # ≈3–4 min on 2 CPU cores, mnist5k
  python -m experiments.u_curve --preset paper   # full MNIST via TFDS, GPU/TPU
  python -m experiments.u_curve --preset tiny    # seconds: 400 images, 3 epochs

Expect (quick): best test error ≈0.05–0.10 early on, final test error ≈0.2–0.3,
final train error (given labels) below 0.3.
"""

import jax
import ml_collections

from noisejax import claims, config as cfg, data, experiment, noise, plots, train

PAPER = "clean-priority"


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: mnist5k (4,000 train / 1,000 test), 20 epochs; paper: MNIST, 60,000 / 10,000.

  The paper does not state its Fig. 1 schedule; quick keeps the architecture, noise
  and optimizer and only the data size (mnist5k) and epoch count are scaled. tiny: 400
  training images, batch 50, 3 epochs.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = cfg.data("mnist5k")
  c.noise = cfg.noise("symmetric", 0.3)
  c.model = cfg.model("clean_priority_cnn")
  c.loss = cfg.loss("cross_entropy")
  c.optim = cfg.optim("momentum", lr=0.05, momentum=0.9, batch_size=128, epochs=20,
                      checkpoint_every=5)
  c.method = cfg.method("erm")
  if preset == "paper":
    c.data.name = "mnist"
    c.optim.epochs = 100
  elif preset == "tiny":
    c.data.limit = 400
    c.optim.update(dict(batch_size=50, epochs=3, checkpoint_every=1))
  return c


def compute(config, run) -> dict:
  key_noise, key_train = jax.random.split(run.key)
  train_set, test_set = data.load_splits(config.data)
  noisy = noise.corrupt(key_noise, train_set.y, train_set.num_classes, config.noise.kind,
                        config.noise.rate)
  run.save_noise(noisy)
  splits = train.Splits(train_set.x, noisy, test_set.x, test_set.y)
  result = run.train_classifier(config, splits, key=key_train)
  return {"history": result.history, "noise_rate": noisy.rate}


def plot(record, config) -> dict:
  history, rate = record["history"], record["noise_rate"]
  early = train.early_stopping_point(history)
  fig, axes = plots.figure(width=6, height=4)
  ax = axes[0, 0]
  series = {name: [r[key] for r in history] for name, key in (
      ("train (given labels)", "train_error"), ("train, clean subset", "clean_error"),
      ("train, noisy subset (given labels)", "noisy_error"), ("test", "test_error"))}
  colors = {"train (given labels)": plots.COLORS["train"],
            "train, clean subset": plots.COLORS["clean"],
            "train, noisy subset (given labels)": plots.COLORS["noisy"],
            "test": plots.COLORS["test"]}
  plots.curves(ax, [r["epoch"] for r in history], series, colors=colors, noise_level=rate,
               early_stop=early["epoch"])
  ax.set(ylim=(0, 1), title="U-shaped test error under label noise (clean-priority Fig. 1)")
  return {"u_curve.png": fig}


def judge(record, config) -> list:
  history, rate = record["history"], record["noise_rate"]
  early, final = train.early_stopping_point(history), history[-1]
  return [
      claims.claim("best_test_below_noise", PAPER,
                   "At the early-stopping point the test error is below the noise level "
                   "(Fig. 1).",
                   [claims.check("best test error", early["test_error"], "<", rate,
                                 "noise rate")],
                   early["test_error"]),
      claims.claim("u_shape", PAPER,
                   "The test error is U-shaped: its minimum is below the final test error.",
                   [claims.check("best test error", early["test_error"], "<",
                                 final["test_error"], "final test error")],
                   {"best": early["test_error"], "best_epoch": early["epoch"],
                    "final": final["test_error"]}),
      claims.claim("memorizes_noise", PAPER,
                   "Training on, the net fits the noise: the training error against the "
                   "given labels falls below the noise level.",
                   [claims.check("final train error (given labels)", final["train_error"],
                                 "<", rate, "noise rate")],
                   {"final_train_error": final["train_error"],
                    "final_noisy_subset_error": final["noisy_error"]}),
  ]


PARTS = {"u_curve": experiment.Part(compute, plot, judge)}

if __name__ == "__main__":
  experiment.main("u_curve", get_config, PARTS)

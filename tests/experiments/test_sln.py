"""End to end: the SLN experiment's tiny preset, its records, figures and claims."""

import json

import numpy as np
import pytest

from experiments import sln, sln_claims
from noisejax import claims as claims_lib, experiment


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("sln")
  config = sln.get_config("tiny")
  claims = experiment.execute("sln", config, workdir, sln.PARTS)
  return workdir, config, claims


def test_every_claim_is_measured_and_saved(tiny):
  workdir, _, claims = tiny
  ids = [c.id for c in claims]
  for name in ("methods/symmetric_sln_beats_ce", "methods/symmetric_lc_beats_each_baseline",
               "methods/symmetric_sigma_inverted_u", "methods/coteaching_costs_about_twice",
               "sgd_noise/eq1_does_not_help", "sgd_noise/sln_minimum_flatter",
               "theory/prop1_exact", "theory/prop3_monte_carlo"):
    assert name in ids
  saved = json.loads((workdir / "claims.json").read_text())
  assert [c["id"] for c in saved] == ids
  theory = {c.id: c for c in claims if c.id.startswith("theory/")}
  assert all(c.passed for c in theory.values())  # exact identities hold at any size
  assert theory["theory/prop1_exact"].measured < 1e-12


def test_paired_runs_and_claims_follow_from_the_record(tiny):
  workdir, config, claims = tiny
  record = experiment.load_record(workdir / "records" / "methods")
  sym = record["symmetric"]
  v = sym["variants"]
  assert set(v) == {"CE", "SLN", "SLN-MO", "SLN-MO-LC", "LC reversed", *sln_claims.BASELINES}
  for name, variant in v.items():
    assert variant["curves"]["test_error"].shape == (config.seeds, config.optim.epochs + 1), name
    np.testing.assert_allclose(variant["final_acc"], 1 - variant["curves"]["test_error"][
        :, -config.last_evals:].mean(1), rtol=1e-6)
  # CE and SLN of one seed train on the same label draw: the same noisy samples.
  ps = sym["per_sample"]
  np.testing.assert_array_equal(ps["CE"]["is_noisy"], ps["SLN"]["is_noisy"])
  assert ps["CE"]["is_noisy"].mean() == pytest.approx(sym["noise_rate"], abs=1e-6)
  assert not np.array_equal(ps["CE"]["is_noisy"][0], ps["CE"]["is_noisy"][1])  # seeds differ
  # SLN and SLN-MO are one run: its raw and its averaged model differ.
  assert not np.allclose(v["SLN"]["curves"]["test_error"], v["SLN-MO"]["curves"]["test_error"])
  by_id = {c.id: c for c in claims}
  diff = claims_lib.SeedStats.of(v["SLN"]["final_acc"] - v["CE"]["final_acc"])
  measured = by_id["methods/symmetric_sln_beats_ce"].measured
  assert measured["mean"] == pytest.approx(diff.mean)
  assert by_id["methods/symmetric_sln_beats_ce"].passed == (diff.ci_low > 0)
  seconds = record["seconds_per_epoch"]
  assert set(seconds) == set(config.timing_methods)
  ratio = by_id["methods/coteaching_costs_about_twice"].measured["Co-teaching"]
  assert ratio == pytest.approx(seconds["Co-teaching"] / seconds["CE"])


def test_figures_and_replot(tiny):
  workdir, config, claims = tiny
  pngs = sorted(p.name for p in workdir.glob("*.png"))
  assert "symmetric_fig1_curves.png" in pngs and "fig2_landscapes.png" in pngs, pngs
  assert all((workdir / p).stat().st_size > 5_000 for p in pngs)
  again = experiment.execute("sln", config, workdir, sln.PARTS, replot=True)
  assert [(c.id, c.measured) for c in again] == [(c.id, c.measured) for c in claims]

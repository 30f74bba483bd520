"""The reproduce command: argument errors, the claims table, where results go."""

from experiments import reproduce
from noisejax import claims


def test_unknown_experiment_is_a_one_line_error(capsys):
  assert reproduce.main(["--only", "u_curve,bogus"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "config.only='bogus'" in err[0] and "u_curve" in err[0]
  assert "bench_persample" in err[0]


def test_claims_table_lists_pass_fail_and_crashes():
  table = reproduce.claims_table({
      "u_curve": ("ok", [claims.Claim("a/b", "sln", "it holds", "> 1", 2.0, True),
                         claims.Claim("a/c", "sln", "it fails", "< 1", {"x": 3}, False)], 12.0),
      "ntk_angles": ("RuntimeError: boom", [], 1.0)})
  assert "| u_curve | `a/b`: it holds | sln | > 1 | 2.0 | PASS |" in table
  assert '| u_curve | `a/c`: it fails | sln | < 1 | {"x": 3} | FAIL |' in table
  assert "| ntk_angles | — | — | — | RuntimeError: boom | CRASHED |" in table
  piped = reproduce.claims_table({"u_curve": ("ok", [claims.Claim(
      "a/d", "sln", "|x| is small", "max |x| < 1", 0.5, True)], 1.0)})
  assert "`a/d`: \\|x\\| is small | sln | max \\|x\\| < 1 | 0.5 | PASS |" in piped


def test_measured_values_are_rounded_for_reading():
  assert reproduce.rounded({"a": 0.06300000101327896, "b": [1.23456789, 3], "c": "x"}) == {
      "a": 0.063, "b": [1.235, 3], "c": "x"}


def test_only_quick_writes_into_the_committed_figures(tmp_path):
  assert reproduce.destination("quick", tmp_path) == reproduce.ROOT / "figures"
  assert reproduce.destination("paper", tmp_path) == reproduce.ROOT / "figures" / "paper"
  assert reproduce.destination("tiny", tmp_path) == tmp_path


def test_tiny_preset_of_one_experiment(tmp_path):
  assert reproduce.main(["--preset", "tiny", "--only", "u_curve", "--workdir",
                         str(tmp_path)]) == 0
  table = (tmp_path / "CLAIMS.md").read_text()
  assert "`u_curve/best_test_below_noise`" in table and (tmp_path / "u_curve" / "u_curve.png").exists()

"""The README's commands: the test command is what CI runs; its Python example runs."""

import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_block(marker: str, language: str) -> str:
  text = (ROOT / "README.md").read_text()
  match = re.search(rf"<!-- {marker} -->\s*```{language}\n(.+?)\n```", text, re.S)
  assert match, f"README.md must hold a {language} block after <!-- {marker} -->"
  return match.group(1).strip()


def test_ci_runs_the_readme_test_command():
  ci_lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
  assert readme_block("test-command", "bash") in ci_lines


def test_readme_lists_every_reproduced_experiment():
  from experiments import reproduce
  readme = (ROOT / "README.md").read_text()
  for name in list(reproduce.EXPERIMENTS) + list(reproduce.BENCHMARKS):
    assert f"python -m experiments.{name}" in readme, name


def test_python_example_trains_on_noisy_labels():
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(readme_block("python-example", "python"), "README.md", "exec"), {})
  lines = out.getvalue().strip().splitlines()
  clean, noisy, test = (float(v) for v in re.findall(r"[0-9.]+", lines[0]))
  assert clean < 0.1 and test < 0.2   # it learned the digits from the 70% clean labels
  assert noisy > 0.5                  # ... and had not yet memorized the flipped ones

"""The README's test command is exactly what CI runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_test_command() -> str:
  text = (ROOT / "README.md").read_text()
  match = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", text, re.S)
  assert match, "README.md must hold the test command after <!-- test-command -->"
  return match.group(1).strip()


def test_ci_runs_the_readme_test_command():
  ci_lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
  assert readme_test_command() in ci_lines


def test_readme_lists_every_reproduced_experiment():
  from experiments import reproduce
  readme = (ROOT / "README.md").read_text()
  for name in reproduce.EXPERIMENTS:
    assert f"python -m experiments.{name}" in readme, name

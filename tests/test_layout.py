"""The code base's shape: no import cycle in noisejax/, thin experiment modules."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXEMPT = ("__init__.py", "reproduce.py")  # and the benchmarks (bench_*.py)


def import_graph() -> dict:
  """module → the noisejax modules it imports (at module level or inside functions)."""
  files = {}
  for path in (ROOT / "noisejax").rglob("*.py"):
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    files[name.removesuffix(".__init__")] = path
  graph = {}
  for name, path in files.items():
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("noisejax"):
        subs = {f"{node.module}.{a.name}" for a in node.names} & set(files)
        deps |= subs if len(subs) == len(node.names) else subs | {node.module}
      elif isinstance(node, ast.Import):
        deps |= {a.name for a in node.names}
    graph[name] = (deps & set(files)) - {name}
  return graph


def test_no_import_cycle_in_the_library():
  graph, cycles, done = import_graph(), [], set()

  def visit(module, path):
    for dep in sorted(graph[module]):
      if dep in path:
        cycles.append(path[path.index(dep):] + [dep])
      elif dep not in done:
        visit(dep, path + [dep])
    done.add(module)

  for module in sorted(graph):
    if module not in done:
      visit(module, [module])
  assert not cycles, cycles
  assert "noisejax.experiment" not in graph["noisejax.train"]  # training knows no runner


def test_experiment_modules_are_at_most_350_lines():
  long = {p.name: n for p in (ROOT / "experiments").glob("*.py")
          if p.name not in EXEMPT and not p.name.startswith("bench_")
          and (n := len(p.read_text().splitlines())) > 350}
  assert not long, long

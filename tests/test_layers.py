"""The package's layering (ARCHITECTURE.md) holds: import-linter's contracts in pyproject.toml
pass, and no function-local import remains except lazy imports of optional heavy extras."""
import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# optional extras; imagecodecs, a 150 ms import only JPEG XL needs; matplotlib, a 0.4 s import
# only the audit's plots need (every CLI command would pay it at start)
OPTIONAL_EXTRAS = {"torch", "diffusers", "transformers", "safetensors", "ray", "httpx", "skimage", "s3fs", "gcsfs",
                   "imagecodecs", "matplotlib"}


def test_import_contracts_hold():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                          "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "broken" in run.stdout and ", 0 broken" in run.stdout


def function_local_imports() -> list[str]:
    """Imports below module level (inside a def or class), with the top-level package they import."""
    found = []
    for path in sorted((ROOT / "soclake").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        found += [(path, inner.lineno, a.name.split(".")[0]) for a in inner.names]
                    elif isinstance(inner, ast.ImportFrom):
                        found.append((path, inner.lineno, (inner.module or "").split(".")[0]))
    return found


def test_only_optional_extras_are_imported_inside_functions():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {mod}" for p, line, mod in function_local_imports()
           if mod not in OPTIONAL_EXTRAS]
    assert bad == [], "function-local imports hide cycles; move them to the top of the module:\n" + "\n".join(bad)


def test_every_lazy_extra_import_says_why():
    for path, line, _ in function_local_imports():
        lines = path.read_text().splitlines()
        context = " ".join(lines[max(0, line - 3):line])
        assert "#" in context, f"{path.relative_to(ROOT)}:{line}: a lazy import of an optional extra needs a comment"


# modules a plan, pixel or text may pass through without being decided by them: I/O, errors,
# registries, the lake's connection (its SQL is hashed where it decides: sql/queries, filters)
NOT_DECIDING = {"soclake", "soclake.errors", "soclake.resources", "soclake.registry", "soclake.faults",
                "soclake.storage", "soclake.paths", "soclake.parallel", "soclake.lake", "soclake.lake.lake",
                "soclake.lake.schemas", "soclake.lake.sqlfiles", "soclake.lake.packs", "soclake.lake.sandbox", "soclake.spec",
                "soclake.spec.model", "soclake.spec.rules", "soclake.stages.base"}


def test_code_version_covers_every_module_that_decides_a_plan_or_a_pixel():
    import grimp

    from soclake.spec.identity import code_files
    graph = grimp.build_graph("soclake")
    deciding = set()
    for top in ("soclake.plan", "soclake.render", "soclake.stages.relight", "soclake.stages.refexp"):
        for module in {top, *graph.find_descendants(top)}:
            deciding |= {module, *graph.find_upstream_modules(module)}
    deciding = {m for m in deciding if m.startswith("soclake")} - NOT_DECIDING
    hashed = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
              for f in code_files() if f.suffix == ".py"}
    assert deciding - hashed == set(), "add these modules to soclake/spec/identity.py CODE_FILES"

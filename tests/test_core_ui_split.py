"""The engine must never import the UI: importing every gptcore module leaves
textual and tui unloaded (checked in a fresh interpreter)."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import gptcore

REPO = Path(__file__).resolve().parents[1]


def test_gptcore_never_imports_textual_or_tui():
    names = [m.name for m in pkgutil.walk_packages(gptcore.__path__, "gptcore.")]
    assert "gptcore.cli" in names and "gptcore.model" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_engine_modules_never_import_the_cli():
    """gptcore/commands is a front end like the app: no engine module reaches up into it
    (so no import cycle between the Trainer and `gpt-tui train`)."""
    front_ends = ("gptcore.commands", "gptcore.cli", "gptcore.__main__")
    names = [
        m.name
        for m in pkgutil.walk_packages(gptcore.__path__, "gptcore.")
        if not m.name.startswith(front_ends)
    ]
    assert "gptcore.training.trainer" in names and "gptcore.training.resume" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('gptcore.commands'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


HEAVY_LIBRARIES = ("torch", "numpy", "tiktoken", "safetensors", "matplotlib")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """What a module imports when it is imported (its module-level statements,
    `if TYPE_CHECKING:` blocks left out), as absolute module names."""
    out: set[str] = set()
    package = (
        _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    )
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(inner, ast.Import):
                out.update(a.name for a in inner.names)
            elif isinstance(inner, ast.ImportFrom):
                base = inner.module or ""
                if inner.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - inner.level + 1]
                        + ([base] if base else [])
                    )
                out.add(base)
                out.update(f"{base}.{a.name}" for a in inner.names)
    return out


def test_in_function_imports_are_only_of_modules_that_load_heavy_libraries() -> None:
    """An import inside a function keeps start-up fast, so it is only for a module
    whose import loads torch, numpy, tiktoken, safetensors or matplotlib; everything
    else the project imports at the top of the module."""
    files = [*(REPO / "gptcore").rglob("*.py"), *(REPO / "tui").rglob("*.py")]
    graph = {_module_name(p): _top_level_imports(p) for p in files}

    def heavy(module: str, seen: set[str]) -> bool:
        if module.split(".")[0] in HEAVY_LIBRARIES:
            return True
        if module in seen or module not in graph:
            return False
        seen.add(module)
        return any(heavy(m, seen) for m in graph[module])

    light = []
    for path in files:
        if path == REPO / "tui" / "launch.py":  # the console script: no app for a subcommand
            continue
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.ImportFrom):
                    continue
                base = node.module or ""
                if node.level:
                    keep = len(package.split(".")) - node.level + 1
                    base = ".".join(package.split(".")[:keep] + ([base] if base else []))
                if base.split(".")[0] not in ("gptcore", "tui"):
                    continue
                targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in graph]
                if not any(heavy(t, set()) for t in targets or [base]):
                    light.append(f"{path.relative_to(REPO)}:{node.lineno} {base}")
    assert light == [], light

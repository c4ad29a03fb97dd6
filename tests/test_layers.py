"""The rooms of fastals import only downwards (docs/ARCHITECTURE.md draws them).

Read from the source with `ast` (nothing is imported): every ``import`` of a fastals module,
at module level or inside a function, must go to a room on the same floor or below, apart
from the few upward imports listed in ``UPWARD`` with their reason. Imports under
``if TYPE_CHECKING:`` (type hints only, never run) are not counted.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fastals"

# (floor, room prefix): the longest matching prefix names a module's room. Floors count
# from the bottom; a room may import its own floor and the floors below.
ROOMS = [
    (0, "fastals.exceptions"),
    (0, "fastals._arrays"),
    (0, "fastals._files"),
    (0, "fastals._typing"),
    (1, "fastals._validation"),
    (1, "fastals._kernels"),
    (1, "fastals.reference"),
    (2, "fastals._threads"),
    (2, "fastals.data"),
    (3, "fastals.similarity"),
    (4, "fastals.models"),
    (5, "fastals.id_recommender"),
    (5, "fastals.ann"),
    (5, "fastals.evaluation"),
    (5, "fastals.datasets"),
    (5, "fastals.tuning"),
    (6, "fastals.spark"),
    (7, "fastals"),  # the package's front door: public names only, loaded on first use
    (8, "fastals.cli"),  # the command line, a user of the public API
    (8, "fastals.serve"),  # the HTTP service, beside the command line (which starts it)
    (9, "fastals.__main__"),
]

# Upward imports that are there on purpose, each loaded on first use only.
UPWARD = {
    # fastals.data re-exports the names that moved above the models, loaded when first asked
    ("fastals.data", "fastals.id_recommender"),
    # the TF-IDF / BM25 formula runs in the similarity room (its kernels), called lazily
    ("fastals.data.weighting", "fastals.similarity"),
}

# Never, not even inside a function: reading data must not need a compiled kernel.
FORBIDDEN = {("fastals.data", "fastals._kernels")}

# The reference is the kernels' oracle: it must stand on numpy alone.
REFERENCE_MAY_IMPORT = ("fastals.reference",)


def room_of(module):
    best = None
    for floor, prefix in ROOMS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[1]):
                best = (floor, prefix)
    return best


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path):
    """(imported fastals module, line) for every import statement in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    hints_only = set()  # imports under `if TYPE_CHECKING:` never run
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            hints_only |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in hints_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from fastals import data`: the submodule is what is imported
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names
                      if (PACKAGE.parent / Path(*f"{target}.{alias.name}".split("."))).exists()
                      or (PACKAGE.parent / Path(*f"{target}.{alias.name}".split(".")))
                      .with_suffix(".py").exists()]
    return [(target, line) for target, line in found
            if target == "fastals" or target.startswith("fastals.")]


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_room():
    assert SOURCES
    homeless = [module_name(p) for p in SOURCES if room_of(module_name(p)) is None]
    assert not homeless


def _allowed(source, target):
    if any((source == a or source.startswith(a + ".")) and
           (target == b or target.startswith(b + ".")) for a, b in UPWARD):
        return True
    if any((source == a or source.startswith(a + ".")) and
           (target == b or target.startswith(b + ".")) for a, b in FORBIDDEN):
        return False
    src_floor, src_room = room_of(source)
    dst = room_of(target)
    if dst is None:
        return False
    if src_room == "fastals.reference":
        return dst[1] in REFERENCE_MAY_IMPORT or dst[1] == "fastals.exceptions"
    return dst[0] <= src_floor


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_go_downwards(path):
    source = module_name(path)
    wrong = [f"line {line}: {source} imports {target} ({room_of(target)})"
             for target, line in imports_of(path) if not _allowed(source, target)]
    assert not wrong, "\n".join(wrong)


def test_the_check_can_fail():
    """An import from the models into the data room would be refused."""
    assert not _allowed("fastals.data.ids", "fastals.models.base")
    assert not _allowed("fastals.models.base", "fastals.evaluation")
    assert not _allowed("fastals.reference.implicit_als", "fastals._kernels.dispatch")
    assert not _allowed("fastals.data.weighting", "fastals._kernels._similarity")
    assert not _allowed("fastals.models.knn", "fastals")
    assert _allowed("fastals.models.implicit_als", "fastals._kernels.dispatch")

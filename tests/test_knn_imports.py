"""The neighbourhood models reach the similarity kernels only through fastals.similarity."""
import ast
from pathlib import Path

import fastals.models.knn as knn

SOURCE = Path(knn.__file__).read_text(encoding="utf-8")


def imports(tree):
    """(module, name) for every import in the module (name None for ``import module``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield from ((node.module or "", alias.name) for alias in node.names)


def test_knn_imports_no_kernel_module_and_no_private_similarity_name():
    found = list(imports(ast.parse(SOURCE)))
    kernels = [(module, name) for module, name in found
               if module.startswith("fastals._kernels") or (module == "fastals" and
                                                            name == "_kernels")]
    assert not kernels, f"knn.py imports kernel modules: {kernels}"
    private = [name for module, name in found
               if module == "fastals.similarity" and name and name.startswith("_")]
    assert not private, f"knn.py imports private names of fastals.similarity: {private}"
    reached = [node.attr for node in ast.walk(ast.parse(SOURCE))
               if isinstance(node, ast.Attribute) and node.attr == "_kernels"]
    assert not reached, "knn.py reaches fastals._kernels through an attribute"

"""Import rules of pegasus_server.storage (design rules 1 and 4)."""
import ast
import pathlib

import pytest

STORAGE = pathlib.Path(__file__).resolve().parents[2] / "pegasus_server" / "storage"
MODULES = sorted(STORAGE.glob("*.py"))


def _imports(path):
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_storage_imports(path):
    imported = _imports(path)
    assert not imported & {"gevent", "socket", "kazoo", "thriftpy2", "loguru"}, imported
    if path.name != "rocks.py":
        assert "rocksdict" not in imported


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_storage_modules_have_docstrings(path):
    assert ast.get_docstring(ast.parse(path.read_text())), path.name


def test_engine_module_knows_nothing_of_pegasus():
    assert _imports(STORAGE / "engine.py") <= {"__future__", "abc", "bisect", "os", "struct",
                                               "typing"}

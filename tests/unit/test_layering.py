"""Import rules of design.md: one import site per heavy dependency, sans-IO cores free of I/O."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = os.path.join(ROOT, "pegasus_server")

# dependency -> the only modules (relative to the repo) allowed to import it
ONLY_IN = {
    "rocksdict": {"pegasus_server/storage/rocks.py"},
    "thriftpy2": {"pegasus_server/rpc/thrift.py"},
    "kazoo": {"pegasus_server/meta/zk_store.py"},
    "pyhdfs": {"pegasus_server/backup/hdfs.py"},
}
# sans-IO cores: none of these may be imported
SANS_IO = {
    "pegasus_server/rpc/codec.py", "pegasus_server/rpc/thrift.py", "pegasus_server/rpc/catalogue.py",
    "pegasus_server/meta/state.py", "pegasus_server/meta/model.py", "pegasus_server/meta/store.py",
    "pegasus_server/remote_command.py", "pegasus_server/metrics.py", "pegasus_server/base.py", "pegasus_server/errors.py",
    "pegasus_server/config.py", "pegasus_server/meta/guardian.py", "pegasus_server/meta/balancer.py",
    "pegasus_server/replica/prepare_list.py", "pegasus_server/replica/events.py",
    "pegasus_server/replica/pacifica.py", "pegasus_server/replica/mutation.py",
    "pegasus_server/replica/wire.py",
}
IO_MODULES = {"gevent", "socket", "rocksdict", "kazoo", "pyhdfs", "threading", "asyncio"}


def _modules():
    for dirpath, _, files in os.walk(os.path.join(ROOT, "pegasus_server")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                yield os.path.relpath(path, ROOT), path


def _imports(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


MODULES = sorted(_modules())


@pytest.mark.parametrize("rel,path", MODULES, ids=[m[0] for m in MODULES])
def test_import_rules(rel, path):
    imported = set(_imports(path))
    for dep, allowed in ONLY_IN.items():
        if dep in imported:
            assert rel in allowed, f"{rel} imports {dep}; only {sorted(allowed)} may"
    if rel in SANS_IO:
        bad = imported & IO_MODULES
        assert not bad, f"sans-IO module {rel} imports {sorted(bad)}"


@pytest.mark.parametrize("rel,path", MODULES, ids=[m[0] for m in MODULES])
def test_module_has_docstring(rel, path):
    tree = ast.parse(open(path).read(), path)
    if os.path.basename(path) == "__init__.py" and not tree.body:
        return
    assert ast.get_docstring(tree), f"{rel} has no module docstring"

"""Command implementations, one module per group; importing this package registers them all in
``pegasus_shell.commands.REGISTRY``."""
from pegasus_shell.ops import cluster, data, local, misc, scan, stats, tables  # noqa: F401

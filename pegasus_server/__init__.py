"""pegasus-py server package: meta server, replica server, storage, replication.

Owns nothing by itself; see the sub-packages. Imports nothing heavy at package import time.
"""
__version__ = "0.1.0"

"""Storage of one partition replica: key/value layout, the Engine seam, the rrdb operations.

Modules: ``keys`` (storage keys, CRC64, partitioning) · ``values`` (value header, TTL, epoch) ·
``engine`` (Engine, WriteBatch, MemoryEngine) · ``rocks`` (RocksEngine, the only rocksdict import)
· ``rules`` (status codes, filters, checks, integer parsing, limits) · ``view`` (PartitionView) ·
``reads`` · ``writes`` · ``scanner`` · ``app`` (StorageApp facade). Importing the package imports
nothing heavy; import the submodules you need.
"""

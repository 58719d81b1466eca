"""A small table client over the peer client: routing by CRC64, retries on routing errors.

Used by tools, the shell and our own integration and chaos tests (the official clients are used
for compatibility; this one exists so our tools need nothing else). It resolves a table with
``RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX``, routes a key to ``crc64(hash_key) % count`` (or the
sort key's CRC when the hash key is empty, like the Java and Python clients), and on
ERR_OBJECT_NOT_FOUND / ERR_INVALID_STATE / a lost connection re-queries the meta and retries until
its deadline. Data-level statuses (in the response body) are returned, never raised.
"""
from __future__ import annotations

import time
from typing import List, Optional, Sequence, Tuple

import gevent

from pegasus_server import errors
from pegasus_server.errors import RpcError
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import Address, RpcClient, parse_address
from pegasus_server.storage import keys

RETRY_ERRORS = frozenset({errors.ERR_OBJECT_NOT_FOUND, errors.ERR_INVALID_STATE,
                          errors.ERR_NETWORK_FAILURE, errors.ERR_TIMEOUT,
                          errors.ERR_NOT_ENOUGH_MEMBER, errors.ERR_CAPACITY_EXCEEDED})


class TableClient:
    def __init__(self, metas: Sequence[str] | str, table: str, timeout: float = 10.0,
                 client: Optional[RpcClient] = None):
        if isinstance(metas, str):
            metas = metas.split(",")
        self.metas: List[Address] = [parse_address(m) for m in metas]
        self.table = table
        self.timeout = timeout
        self.client = client or RpcClient()
        self.app_id = 0
        self.partition_count = 0
        self.partitions = []
        self._meta_index = 0

    # ------------------------------------------------------------------ routing
    def refresh(self) -> None:
        last = None
        for _ in range(len(self.metas)):
            meta = self.metas[self._meta_index % len(self.metas)]
            try:
                resp = self.client.call(meta, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                                        thrift.layer2.query_cfg_request(app_name=self.table,
                                                                        partition_indices=[]),
                                        timeout=3.0)
            except RpcError as e:
                last = e
                self._meta_index += 1
                continue
            if resp.err == errors.ERR_FORWARD_TO_OTHERS:
                self._meta_index += 1
                last = RpcError(resp.err)
                continue
            if resp.err != errors.ERR_OK:
                raise RpcError(resp.err, f"query table {self.table}")
            self.app_id = resp.app_id
            self.partition_count = resp.partition_count
            self.partitions = sorted(resp.partitions, key=lambda p: p.pid.partition_index)
            return
        raise last or RpcError(errors.ERR_NETWORK_FAILURE, "no meta answered")

    def _refresh_until_known(self) -> None:
        """The first resolution of the table, retried until ``timeout`` while no meta leads
        (every meta forwards) or none answers (a meta failover)."""
        deadline = time.time() + self.timeout
        while True:
            try:
                self.refresh()
                return
            except RpcError as e:
                if e.err not in RETRY_ERRORS and e.err != errors.ERR_FORWARD_TO_OTHERS or \
                        time.time() + 0.2 > deadline:
                    raise
            gevent.sleep(0.2)

    def partition_of(self, hash_key: bytes, sort_key: bytes = b"") -> int:
        if not self.partition_count:
            self._refresh_until_known()
        h = keys.crc64(hash_key if hash_key else sort_key)
        return h % self.partition_count

    def call_partition(self, pidx: int, name: str, arg, partition_hash: int = 0):
        deadline = time.time() + self.timeout
        delay = 0.05
        while True:
            if not self.partitions:
                self._refresh_until_known()
            pc = self.partitions[pidx]
            try:
                if pc.primary.is_invalid:
                    raise RpcError(errors.ERR_OBJECT_NOT_FOUND, "no primary")
                return self.client.call((pc.primary.host, pc.primary.port), name, arg,
                                        timeout=max(0.1, min(5.0, deadline - time.time())),
                                        app_id=self.app_id, partition_index=pidx,
                                        partition_hash=partition_hash)
            except RpcError as e:
                if e.err not in RETRY_ERRORS or time.time() + delay > deadline:
                    raise
            gevent.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                self.refresh()
            except RpcError:
                pass

    def _single(self, name: str, hash_key: bytes, sort_key: bytes, arg):
        pidx = self.partition_of(hash_key, sort_key)
        return self.call_partition(pidx, name, arg, keys.crc64(hash_key or sort_key))

    # ------------------------------------------------------------------ operations
    def set(self, hash_key: bytes, sort_key: bytes, value: bytes, ttl_seconds: int = 0):
        expire = 0
        if ttl_seconds > 0:
            from pegasus_server.storage.values import epoch_now
            expire = epoch_now(time.time()) + ttl_seconds
        req = thrift.rrdb.update_request(key=keys.encode_key(hash_key, sort_key), value=value,
                                         expire_ts_seconds=expire)
        return self._single("RPC_RRDB_RRDB_PUT", hash_key, sort_key, req)

    def get(self, hash_key: bytes, sort_key: bytes) -> Tuple[int, bytes]:
        """(rocksdb status, value): status 0 found, 1 not found."""
        resp = self._single("RPC_RRDB_RRDB_GET", hash_key, sort_key,
                            keys.encode_key(hash_key, sort_key))
        return resp.error, resp.value or b""

    def remove(self, hash_key: bytes, sort_key: bytes):
        return self._single("RPC_RRDB_RRDB_REMOVE", hash_key, sort_key,
                            keys.encode_key(hash_key, sort_key))

    def close(self) -> None:
        self.client.close()

"""Small value types shared by every layer: Gpid, RpcAddress, HostPort.

Owns the Python representation of the IDL placeholder types that carry values (gpid, rpc_address,
host_port); the wire encoding lives in ``rpc/thrift.py``. Must not import gevent, rocksdict,
thriftpy2 or anything of this package beyond the standard library.
"""
from __future__ import annotations

import functools
import ipaddress
from typing import NamedTuple

_U64 = 0xFFFF_FFFF_FFFF_FFFF


class Gpid(NamedTuple):
    """A partition id: app (table) id, 1-based; partition index, 0-based."""

    app_id: int
    partition_index: int

    def to_i64(self) -> int:
        """Wire value: partition_index in the high word, app_id in the low word (signed i64)."""
        v = ((self.partition_index & 0xFFFFFFFF) << 32) | (self.app_id & 0xFFFFFFFF)
        return v - (1 << 64) if v >= (1 << 63) else v

    @classmethod
    def from_i64(cls, v: int) -> "Gpid":
        v &= _U64
        app = v & 0xFFFFFFFF
        pidx = (v >> 32) & 0xFFFFFFFF
        if app >= 1 << 31:
            app -= 1 << 32
        if pidx >= 1 << 31:
            pidx -= 1 << 32
        return cls(app, pidx)

    def __str__(self) -> str:
        return f"{self.app_id}.{self.partition_index}"

    @classmethod
    def parse(cls, text: str) -> "Gpid":
        a, p = text.split(".")
        return cls(int(a), int(p))


@functools.lru_cache(maxsize=4096)
def _ip_int(host: str) -> int:
    return int(ipaddress.IPv4Address(host))


class RpcAddress(NamedTuple):
    """An IPv4 endpoint as upstream's ``rpc_address``; ``RpcAddress.INVALID`` is "no address"."""

    host: str
    port: int

    @property
    def is_invalid(self) -> bool:
        return not self.host and self.port == 0

    def to_u64(self) -> int:
        if self.is_invalid:
            return 0
        return (_ip_int(self.host) << 32) | ((self.port & 0xFFFF) << 16) | 1

    def to_i64(self) -> int:
        v = self.to_u64()
        return v - (1 << 64) if v >= (1 << 63) else v

    @classmethod
    def from_u64(cls, v: int) -> "RpcAddress":
        v &= _U64
        if v & 3 != 1:
            return INVALID_ADDRESS
        ip = (v >> 32) & 0xFFFFFFFF
        return cls(str(ipaddress.IPv4Address(ip)), (v >> 16) & 0xFFFF)

    @classmethod
    def parse(cls, text: str) -> "RpcAddress":
        """'ip:port' (dotted IPv4; 'localhost' is taken as 127.0.0.1)."""
        host, port = text.rsplit(":", 1)
        if host == "localhost":
            host = "127.0.0.1"
        ipaddress.IPv4Address(host)  # raises ValueError on anything else
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if not self.is_invalid else "0.0.0.0:0"


INVALID_ADDRESS = RpcAddress("", 0)
RpcAddress.INVALID = INVALID_ADDRESS  # type: ignore[attr-defined]


class HostPort(NamedTuple):
    """upstream's ``host_port``: a host name (or dotted IP) and a port; type 1 = valid, 0 = invalid."""

    host: str
    port: int
    type: int = 1

    @property
    def is_invalid(self) -> bool:
        return self.type == 0

    @classmethod
    def from_address(cls, addr: RpcAddress) -> "HostPort":
        if addr.is_invalid:
            return INVALID_HOST_PORT
        return cls(addr.host, addr.port, 1)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


INVALID_HOST_PORT = HostPort("", 0, 0)

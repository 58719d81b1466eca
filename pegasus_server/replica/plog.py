"""The private mutation log ("plog") of one replica: files, blocks, group commit, replay, GC.

Owns the on-disk log under ``<replica_dir>/plog`` (replication.md §4.1, §4.3, §4.4): naming,
block framing and checksums, appending batches of mutations (group commit), replaying after a
restart with detection and repair of a torn or corrupt tail, file rolling and garbage collection.
The mutation bytes themselves belong to ``replica/mutation.py``. Must not import gevent, sockets,
threads or storage code: the standard library, loguru, ``base``, ``errors`` and ``mutation`` only. Nothing here is thread-safe; the driver calls one
``PrivateLog`` from one greenlet or worker thread at a time (``append`` blocks in ``pwrite`` and,
with ``sync="batch"``, in ``fdatasync``, so drivers run it in a threadpool).

Layers:

* pure (no I/O): ``crc32c``, ``file_name``/``parse_file_name``, ``build_header_block``,
  ``build_blocks`` (bytes for a batch), ``FileScan`` (iterate a file's bytes, stop at the first
  bad block and say why);
* I/O: ``Replay`` (iterate a directory, truncate and report), ``PrivateLog`` (the appender).

On-disk format — upstream's (§4.3, checked against upstream ``log_file.cpp``, ``log_block.h``,
``mutation_log.cpp`` and three real upstream log files), with one documented departure:

* file ``log.<index>.<start_global_offset>``; offsets are global across the replica's files, a
  new file starts at the previous file's end; a new file is started before a batch once the
  current one holds ``file_size_limit`` bytes (upstream ``log_private_file_size_mb`` = 32 MiB);
* a file is a sequence of blocks: 16-byte header ``{u32 magic 0xDEADBEEF, i32 body_length,
  u32 body_checksum, u32 local_offset (block start within the file)}`` + body;
* the first block's body is the file header ``{u32 magic 0xDEADBEEF, i32 version,
  i64 start_global_offset, i32 count, count x (u64 gpid, i64 max_decree,
  i64 valid_start_offset)}``; a private log writes count = 1: its gpid with the max decree
  logged in all *earlier* files (GC and replay-skipping read it) — the spec omits this map;
* later bodies are back-to-back mutations (§4.2), each mutation's ``log_offset`` equal to its
  global offset; a batch larger than ``MAX_BLOCK_BYTES`` (1 MiB) becomes several blocks, a new
  block starting once the current one exceeds 1 MiB (upstream ``log_appender``);
* checksums are CHAINED within a file, as upstream does (the spec says only "CRC-32C of the
  body"): block k's checksum = checksum(body_k) continued from block k−1's value, starting at 0
  for the header block, so equal to the checksum of all bodies of the file so far.
* Departure: the checksum function. Upstream uses CRC-32C (Castagnoli); the standard library
  only has zlib's CRC-32 (IEEE) in C, and pure-Python CRC-32C runs at ~10 MB/s against ~1 GB/s.
  Our files therefore carry ``version`` = ``0x50590001`` ("PY", 1) meaning chained zlib CRC-32;
  ``version`` 1 means upstream's chained CRC-32C. Readers accept both (so real upstream logs
  replay and dump), writers write CRC-32 unless ``checksum="crc32c"`` (byte-compatible with
  upstream, slow). Upstream's reader ignores the version and would reject our files on the
  checksum; no C++ node ever reads a Python replica's plog (D2).

Group commit: ``PrivateLog.append(mutations)`` writes the whole batch (plus a new file's header
block when it rolls) with ONE ``pwrite`` and, under ``sync="batch"``, one ``fdatasync`` (and
an ``fsync`` of the directory when a file was created). ``sync="none"`` (upstream's default
``plog_force_flush = false``) survives a process crash but not an OS crash or power loss; the
three replicas are the durability (§4.1). A failed write or sync rolls the file back to its
previous end when it can and marks the log broken: every later ``append`` raises.

Replay stops at the first block that is torn or fails a check (magic, length, local offset,
checksum, file header, mutation parse, log offset, file continuity): nothing at or after it is
yielded. With ``truncate=True`` the file is truncated at that block (a file without a valid
header block is renamed ``<name>.removed``, as upstream does with bad files, or deleted when it
is empty) and every later file is renamed ``<name>.removed`` (kept for inspection; nothing
deletes them); the reason is returned (``ReplayResult.problem``) and logged
as a loguru warning. A ``PrivateLog`` opened on the result appends right after the cut.
Second departure: upstream skips an incomplete last block without cutting it (new writes go to
a new file) and refuses to open the replica on a checksum error; we cut in both cases, because
an acknowledged mutation can only sit before the first bad block and the replica re-learns the
rest from its primary.
"""
from __future__ import annotations

import errno
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from loguru import logger

from pegasus_server.base import Gpid
from pegasus_server.errors import PegasusError

from . import mutation as mu
from .mutation import Mutation, MutationFormatError

BLOCK_MAGIC = 0xDEADBEEF
_BLOCK = struct.Struct("<IiII")          # magic, body length, body checksum, local offset
BLOCK_HEADER_SIZE = _BLOCK.size          # 16
_FILE_HEADER = struct.Struct("<Iiqi")    # magic, version, start_global_offset, count
_FILE_ENTRY = struct.Struct("<Qqq")      # gpid, max_decree, valid_start_offset
MAX_BLOCK_BYTES = 1 << 20                # upstream log_appender::DEFAULT_MAX_BLOCK_BYTES
DEFAULT_FILE_SIZE_LIMIT = 32 << 20       # log_private_file_size_mb = 32
_MAX_BODY = 0x7FFFFFFF

FILE_VERSION_UPSTREAM = 1                # chained CRC-32C
FILE_VERSION_PY_CRC32 = 0x50590001       # chained zlib CRC-32 (ours)

SYNC_POLICIES = ("none", "batch")
_FILE_RE = re.compile(r"^log\.(\d+)\.(\d+)$")
REMOVED_SUFFIX = ".removed"


class PlogError(PegasusError):
    """The log cannot be used: an I/O failure (the log is then broken) or misuse."""


# ------------------------------------------------------------------------------------------
# Checksums

def _crc32c_table() -> Tuple[int, ...]:
    table = []
    for i in range(256):
        k = i
        for _ in range(8):
            k = (k >> 1) ^ 0x82F63B78 if k & 1 else k >> 1
        table.append(k)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), continuable like ``zlib.crc32``: crc32c(a + b) ==
    crc32c(b, crc32c(a)). Pure Python (~10 MB/s): for reading upstream logs."""
    t = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for b in bytes(data):
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# checksum name -> (file header version, continuable checksum function)
CHECKSUMS: Dict[str, Tuple[int, Callable]] = {
    "crc32": (FILE_VERSION_PY_CRC32, zlib.crc32),
    "crc32c": (FILE_VERSION_UPSTREAM, crc32c),
}
_CHECKSUM_BY_VERSION = {version: (name, fn) for name, (version, fn) in CHECKSUMS.items()}

# problem kind -> what it means (every replay stop has one of these kinds)
PROBLEM_KINDS = {
    "torn-header": "fewer bytes than a block header before end of file (torn write)",
    "torn-body": "block body extends past end of file (torn write)",
    "bad-magic": "block header magic is not 0xDEADBEEF (garbage or a zero-filled tail)",
    "bad-length": "negative block body length",
    "bad-local-offset": "block header local_offset differs from the block's position",
    "checksum-mismatch": "block body checksum differs (torn or corrupt data)",
    "bad-file-header": "first block is not a valid file header for this file name",
    "bad-mutation": "a block with a valid checksum does not parse as mutations at their offsets",
    "discontinuity": "file does not start where the previous file ends",
}


# ------------------------------------------------------------------------------------------
# Pure layer: names, headers, blocks

def file_name(index: int, start_offset: int) -> str:
    return f"log.{index}.{start_offset}"


def parse_file_name(name: str) -> Optional[Tuple[int, int]]:
    """``(index, start_offset)`` of ``log.<index>.<start_offset>``; None for anything else
    (``*.removed`` and foreign files are ignored)."""
    m = _FILE_RE.match(name)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class FileHeader:
    version: int
    start_offset: int
    # gpid -> (max decree logged in earlier files, valid_start_offset)
    logs: Dict[Gpid, Tuple[int, int]]
    size: int                      # bytes of the header inside the first block body

    @property
    def checksum(self) -> str:
        return _CHECKSUM_BY_VERSION[self.version][0]

    def prev_max_decree(self, gpid: Optional[Gpid] = None) -> Optional[int]:
        if gpid is not None:
            e = self.logs.get(Gpid(*gpid))
            return None if e is None else e[0]
        return max((e[0] for e in self.logs.values()), default=None)


def encode_file_header(start_offset: int, version: int, logs: Dict[Gpid, Tuple[int, int]]) -> bytes:
    parts = [_FILE_HEADER.pack(BLOCK_MAGIC, version, start_offset, len(logs))]
    for gpid, (max_decree, valid_start) in logs.items():
        parts.append(_FILE_ENTRY.pack(Gpid(*gpid).to_i64() & 0xFFFF_FFFF_FFFF_FFFF,
                                      max_decree, valid_start))
    return b"".join(parts)


def decode_file_header(buf, pos: int, end: int) -> FileHeader:
    """Raises ValueError when ``buf[pos:end]`` does not start with a file header."""
    if pos + _FILE_HEADER.size > end:
        raise ValueError("file header truncated")
    magic, version, start, count = _FILE_HEADER.unpack_from(buf, pos)
    if magic != BLOCK_MAGIC:
        raise ValueError(f"file header magic {magic:#x}")
    if version not in _CHECKSUM_BY_VERSION:
        raise ValueError(f"unknown file header version {version:#x}")
    if count < 0 or pos + _FILE_HEADER.size + count * _FILE_ENTRY.size > end:
        raise ValueError(f"bad file header entry count {count}")
    logs = {}
    p = pos + _FILE_HEADER.size
    for _ in range(count):
        g, max_decree, valid_start = _FILE_ENTRY.unpack_from(buf, p)
        logs[Gpid.from_i64(g)] = (max_decree, valid_start)
        p += _FILE_ENTRY.size
    return FileHeader(version, start, logs, p - pos)


def _block(body: bytes, local_offset: int, crc: int) -> bytes:
    return _BLOCK.pack(BLOCK_MAGIC, len(body), crc, local_offset & 0xFFFFFFFF) + body


def build_header_block(start_offset: int, gpid: Gpid, prev_max_decree: int,
                       valid_start_offset: int = 0, checksum: str = "crc32") -> Tuple[bytes, int]:
    """The first block of a new file; returns ``(bytes, running checksum)``."""
    version, fn = CHECKSUMS[checksum]
    body = encode_file_header(start_offset, version,
                              {Gpid(*gpid): (prev_max_decree, valid_start_offset)})
    crc = fn(body, 0)
    return _block(body, 0, crc), crc


@dataclass(frozen=True)
class BuiltBatch:
    data: bytes                 # one or more complete blocks
    offsets: List[int]          # global log_offset of each mutation
    crc: int                    # running checksum after the last block


def build_blocks(mutations: Sequence[Mutation], *, global_offset: int, file_start_offset: int,
                 crc: int, checksum: str = "crc32",
                 max_block_bytes: int = MAX_BLOCK_BYTES) -> BuiltBatch:
    """Frame ``mutations`` as blocks starting at ``global_offset`` in the file that starts at
    ``file_start_offset``, chaining the checksum from ``crc``. A block takes mutations while it
    is at most ``max_block_bytes`` long (header included), then a new block starts."""
    fn = CHECKSUMS[checksum][1]
    out = []
    offsets: List[int] = []
    block_start = global_offset
    i, n = 0, len(mutations)
    while i < n:
        parts = []
        size = 0
        while i < n and (not parts or BLOCK_HEADER_SIZE + size <= max_block_bytes):
            off = block_start + BLOCK_HEADER_SIZE + size
            enc = mutations[i].encode(off)
            offsets.append(off)
            parts.append(enc)
            size += len(enc)
            i += 1
        if size > _MAX_BODY:
            raise PlogError(f"block body of {size} bytes does not fit a log block")
        body = b"".join(parts)
        crc = fn(body, crc)
        out.append(_block(body, block_start - file_start_offset, crc))
        block_start += BLOCK_HEADER_SIZE + size
    return BuiltBatch(b"".join(out), offsets, crc)


@dataclass(frozen=True)
class BlockProblem:
    kind: str                   # a key of PROBLEM_KINDS
    local_offset: int           # where the bad block starts in its file
    detail: str


class FileScan:
    """Iterate the mutations in one file's bytes (pure). Iteration stops before the first bad
    block; afterwards ``good_end`` (bytes of valid blocks), ``crc`` (running checksum there),
    ``header``, ``problem`` (None if the bytes ended cleanly) and counters describe the file.
    A block's mutations are yielded only after the whole block passed every check."""

    def __init__(self, buf, start_offset: int):
        self.buf = buf
        self.start_offset = start_offset
        self.header: Optional[FileHeader] = None
        self.good_end = 0
        self.crc = 0
        self.problem: Optional[BlockProblem] = None
        self.count = 0
        self.blocks = 0
        self.max_decree: Optional[int] = None
        self.max_committed: Optional[int] = None

    @property
    def checksum(self) -> Optional[str]:
        return self.header.checksum if self.header else None

    def __iter__(self) -> Iterator[Mutation]:
        buf, n = self.buf, len(self.buf)
        view = memoryview(buf)
        pos, crc, fn = 0, 0, None
        if n == 0:
            self.problem = BlockProblem("torn-header", 0, "empty file: no file header")
            return
        while pos < n:
            problem, ms, body_end, crc = self._check_block(view, pos, n, crc, fn)
            if problem is not None:
                self.problem = problem
                return
            if pos == 0:
                fn = _CHECKSUM_BY_VERSION[self.header.version][1]
            pos = self.good_end = body_end
            self.crc = crc
            self.blocks += 1
            for m in ms:
                self.count += 1
                if self.max_decree is None or m.decree > self.max_decree:
                    self.max_decree = m.decree
                if self.max_committed is None or m.last_committed_decree > self.max_committed:
                    self.max_committed = m.last_committed_decree
            yield from ms

    def _check_block(self, view, pos, n, crc, fn):
        """-> (problem or None, mutations, body_end, new crc)."""
        def bad(kind, detail):
            return BlockProblem(kind, pos, detail), (), pos, crc

        if n - pos < BLOCK_HEADER_SIZE:
            return bad("torn-header", f"{n - pos} bytes left, block header needs 16")
        magic, length, body_crc, local = _BLOCK.unpack_from(view, pos)
        if magic != BLOCK_MAGIC:
            return bad("bad-magic", f"magic {magic:#010x}")
        if length < 0:
            return bad("bad-length", f"body length {length}")
        body_start = pos + BLOCK_HEADER_SIZE
        body_end = body_start + length
        if body_end > n:
            return bad("torn-body", f"body of {length} bytes, {n - body_start} present")
        if local != pos & 0xFFFFFFFF:
            return bad("bad-local-offset", f"local_offset {local} at position {pos}")
        first = body_start
        if pos == 0:
            try:
                header = decode_file_header(view, body_start, body_end)
            except ValueError as e:
                return bad("bad-file-header", str(e))
            if header.start_offset != self.start_offset:
                return bad("bad-file-header", f"header start offset {header.start_offset}, "
                                              f"file name says {self.start_offset}")
            fn = _CHECKSUM_BY_VERSION[header.version][1]
            first = body_start + header.size
        new_crc = fn(view[body_start:body_end], crc)
        if new_crc != body_crc:
            return bad("checksum-mismatch", f"stored {body_crc:#010x}, computed {new_crc:#010x}")
        ms = []
        p = first
        try:
            while p < body_end:
                m, q = mu.decode(view, p, body_end)
                if m.log_offset != self.start_offset + p:
                    return bad("bad-mutation", f"mutation {m.name} has log_offset "
                                               f"{m.log_offset}, its position is "
                                               f"{self.start_offset + p}")
                ms.append(m)
                p = q
        except MutationFormatError as e:
            return bad("bad-mutation", str(e))
        if pos == 0:
            self.header = header
        return None, ms, body_end, new_crc


# ------------------------------------------------------------------------------------------
# I/O layer: directory scanning and replay

@dataclass
class LogFileInfo:
    index: int
    start_offset: int
    path: str
    end_offset: int                       # global offset after the file's last valid byte
    prev_max_decree: Optional[int]        # from the file header (None: header not read)
    max_decree: Optional[int] = None      # of this file's own mutations (None: unknown/none)
    checksum: str = "crc32"
    crc: int = 0                          # running checksum at end_offset (for appending)

    @property
    def size(self) -> int:
        return self.end_offset - self.start_offset


@dataclass(frozen=True)
class TailProblem:
    """Why a replay stopped early, and what was done about it."""

    kind: str
    path: str
    local_offset: int
    global_offset: int
    detail: str
    dropped_bytes: int                     # bytes cut (or to cut) from ``path``
    removed_files: Tuple[str, ...] = ()    # later files renamed aside (or to rename)
    repaired: bool = False                 # False: read-only replay, nothing changed

    def __str__(self) -> str:
        action = "truncated" if self.repaired else "NOT repaired (read-only)"
        s = (f"{self.kind} in {os.path.basename(self.path)} at local offset "
             f"{self.local_offset} (global {self.global_offset}): {self.detail}; "
             f"{self.dropped_bytes} bytes dropped, {action}")
        if self.removed_files:
            s += f"; later files set aside: {', '.join(map(os.path.basename, self.removed_files))}"
        return s


@dataclass
class ReplayResult:
    dir: str
    files: List[LogFileInfo]               # the valid files, oldest first, after repair
    end_offset: int                        # where the next append goes
    next_index: int                        # index for the next new file
    count: int = 0                         # mutations yielded
    max_decree: int = 0                    # over scanned mutations and skipped files' headers
    max_committed_decree: int = 0
    skipped_files: int = 0                 # not scanned (all decrees <= durable_decree)
    problem: Optional[TailProblem] = None

    @property
    def repaired(self) -> bool:
        return self.problem is None or self.problem.repaired


def list_files(dir: str) -> List[Tuple[int, int, str]]:
    """``(index, start_offset, path)`` of the log files in ``dir``, by index."""
    try:
        names = os.listdir(dir)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        p = parse_file_name(name)
        if p is not None:
            out.append((p[0], p[1], os.path.join(dir, name)))
    out.sort()
    return out


def read_file_header(path: str) -> Optional[FileHeader]:
    """The header of a log file if its first block is intact (checksum included), else None."""
    parsed = parse_file_name(os.path.basename(path))
    if parsed is None:
        return None
    with open(path, "rb") as f:
        head = f.read(4096)
        if len(head) >= BLOCK_HEADER_SIZE:
            length = _BLOCK.unpack_from(head, 0)[1]
            if 0 <= length and BLOCK_HEADER_SIZE + length > len(head):
                head += f.read(BLOCK_HEADER_SIZE + length - len(head))
    if len(head) < BLOCK_HEADER_SIZE:
        return None
    length = _BLOCK.unpack_from(head, 0)[1]
    scan = FileScan(head[:BLOCK_HEADER_SIZE + max(length, 0)], parsed[1])
    for _ in scan:
        pass
    return scan.header


def fsync_path(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_aside(path: str) -> str:
    new = path + REMOVED_SUFFIX
    n = 1
    while os.path.exists(new):
        new = f"{path}{REMOVED_SUFFIX}.{n}"
        n += 1
    os.rename(path, new)
    return new


class Replay:
    """Iterate the mutations of a plog directory in log order::

        r = plog.Replay(dir)              # or Replay(dir, durable_decree=d) to skip old files
        for m in r:
            ...
        r.result                          # ReplayResult, with .problem if the tail was bad

    ``truncate=True`` repairs a bad tail as the module docstring says; ``truncate=False`` only
    reports it (tools). ``durable_decree``: files whose mutations are all <= it (known from the
    next file's header) are not read and not checked."""

    def __init__(self, dir: str, *, truncate: bool = True,
                 durable_decree: Optional[int] = None):
        self.dir = dir
        self.truncate = truncate
        self.durable_decree = durable_decree
        self.current: Optional[LogFileInfo] = None   # file being scanned (for tools)
        self.current_header: Optional[FileHeader] = None
        self._result: Optional[ReplayResult] = None

    @property
    def result(self) -> ReplayResult:
        if self._result is None:
            raise PlogError("replay not finished: iterate it to the end first")
        return self._result

    def __iter__(self) -> Iterator[Mutation]:
        entries = list_files(self.dir)
        res = ReplayResult(self.dir, [], 0, 1 + max((e[0] for e in entries), default=0))
        if entries:
            res.end_offset = entries[0][1]
        headers: Dict[int, Optional[FileHeader]] = {}

        def header_of(k):
            if k not in headers:
                headers[k] = read_file_header(entries[k][2])
            return headers[k]

        # files that need no replay: a prefix whose decrees the next header bounds
        first = 0
        if self.durable_decree is not None:
            while first + 1 < len(entries):
                idx, start, path = entries[first]
                nxt = header_of(first + 1)
                size = os.path.getsize(path)
                if (nxt is None or nxt.prev_max_decree() is None
                        or nxt.prev_max_decree() > self.durable_decree
                        or start + size != entries[first + 1][1]):
                    break
                own = header_of(first)
                res.files.append(LogFileInfo(idx, start, path, start + size,
                                             own.prev_max_decree() if own else None))
                res.max_decree = max(res.max_decree, nxt.prev_max_decree())
                res.end_offset = start + size
                first += 1
            res.skipped_files = first

        for k in range(first, len(entries)):
            idx, start, path = entries[k]
            if res.files and start != res.end_offset:
                self._stop(res, entries, k, BlockProblem(
                    "discontinuity", 0, f"file starts at {start}, previous file ends at "
                                        f"{res.end_offset}"), size=os.path.getsize(path))
                return
            if not res.files:
                res.end_offset = start
            with open(path, "rb") as f:
                buf = f.read()
            scan = FileScan(buf, start)
            info = LogFileInfo(idx, start, path, start, None)
            self.current, self.current_header = info, None
            for m in scan:
                self.current_header = scan.header
                res.count += 1
                yield m
            if scan.header is not None:
                info.prev_max_decree = scan.header.prev_max_decree()
                info.checksum = scan.header.checksum
                self.current_header = scan.header
                res.max_decree = max(res.max_decree, info.prev_max_decree or 0)
            info.end_offset = start + scan.good_end
            info.max_decree = scan.max_decree
            info.crc = scan.crc
            if scan.max_decree is not None:
                res.max_decree = max(res.max_decree, scan.max_decree)
            if scan.max_committed is not None:
                res.max_committed_decree = max(res.max_committed_decree, scan.max_committed)
            if scan.problem is not None:
                if scan.header is not None:
                    res.files.append(info)
                    res.end_offset = info.end_offset
                self._stop(res, entries, k, scan.problem, size=len(buf),
                           keep=scan.header is not None)
                return
            res.files.append(info)
            res.end_offset = info.end_offset
        self.current = None
        self._result = res

    def _stop(self, res: ReplayResult, entries, k: int, problem: BlockProblem, *, size: int,
              keep: bool = False) -> None:
        """Record (and with ``truncate`` repair) a bad block at ``problem.local_offset`` of
        file ``k``: truncate it there, or set it aside when no valid header remains (``keep``
        False), and set aside every later file."""
        path = entries[k][2]
        start = entries[k][1]
        later = [e[2] for e in entries[k + 1:]]
        removed: List[str] = []
        dropped = size - problem.local_offset if keep else size
        if self.truncate:
            if keep:
                os.truncate(path, problem.local_offset)
                fsync_path(path)
            elif size == 0:                  # created, never written: nothing to keep
                os.unlink(path)
                removed.append(path)
            else:
                removed.append(_set_aside(path))
            removed.extend(_set_aside(p) for p in later)
            fsync_path(self.dir, directory=True)
        else:
            removed = ([] if keep else [path]) + later
        tp = TailProblem(problem.kind, path, problem.local_offset, start + problem.local_offset,
                         problem.detail, dropped, tuple(removed), self.truncate)
        res.problem = tp
        logger.warning("plog {}: replay stopped: {}", self.dir, tp)
        self.current = None
        self._result = res


def replay(dir: str, **kw) -> Replay:
    """``Replay(dir, **kw)``: iterate it for the mutations, then read ``.result``."""
    return Replay(dir, **kw)


def read_all(dir: str, **kw) -> Tuple[List[Mutation], ReplayResult]:
    """Replay ``dir`` into a list (tests, tools, small logs)."""
    r = Replay(dir, **kw)
    ms = list(r)
    return ms, r.result


# ------------------------------------------------------------------------------------------
# I/O layer: the appender

@dataclass(frozen=True)
class AppendResult:
    offsets: List[int]          # global log_offset of each appended mutation
    start_offset: int           # global offset where this write began
    end_offset: int             # global end of the log after it
    nbytes: int                 # bytes written (blocks + a new file's header block)
    synced: bool                # fdatasync'ed before returning
    path: str                   # file written


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        done += n


_fdatasync = getattr(os, "fdatasync", os.fsync)


def sync_policy(plog_force_flush: bool) -> str:
    """Config ``[replication] plog_force_flush`` -> ``PrivateLog`` ``sync`` policy."""
    return "batch" if plog_force_flush else "none"


class PrivateLog:
    """Appender of one replica's private log. Open it on a finished, repaired ``Replay``::

        r = Replay(dir); for m in r: ...          # replay first
        log = PrivateLog.open(dir, gpid, r.result, sync="none")
        res = log.append(batch)                   # one pwrite (+ one fdatasync if "batch")

    ``append`` returns once the batch is in the OS ("none") or on disk ("batch")."""

    def __init__(self, dir: str, gpid: Gpid, replay: ReplayResult, *, sync: str = "none",
                 file_size_limit: int = DEFAULT_FILE_SIZE_LIMIT, checksum: str = "crc32",
                 max_block_bytes: int = MAX_BLOCK_BYTES, valid_start_offset: int = 0):
        if sync not in SYNC_POLICIES:
            raise ValueError(f"sync policy {sync!r} not in {SYNC_POLICIES}")
        if checksum not in CHECKSUMS:
            raise ValueError(f"checksum {checksum!r} not in {sorted(CHECKSUMS)}")
        if not replay.repaired:
            raise PlogError(f"{dir}: replay found a bad tail it did not repair; "
                            "replay with truncate=True first")
        self.dir = dir
        self.gpid = Gpid(*gpid)
        self.sync = sync
        self.file_size_limit = file_size_limit
        self.checksum = checksum
        self.max_block_bytes = max_block_bytes
        self.valid_start_offset = valid_start_offset
        self._files: List[LogFileInfo] = list(replay.files)
        self._end = replay.end_offset
        self._next_index = replay.next_index
        self.max_decree = replay.max_decree
        self.max_committed_decree = replay.max_committed_decree
        self._fd: Optional[int] = None
        self._closed = False
        self._broken: Optional[BaseException] = None
        if self._files:
            cur = self._files[-1]
            size = os.path.getsize(cur.path)
            if size != cur.size:
                raise PlogError(f"{cur.path}: {size} bytes on disk, replay ended at {cur.size}")
            self._fd = os.open(cur.path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))

    @classmethod
    def open(cls, dir: str, gpid: Gpid, replay: Optional[ReplayResult] = None,
             **options) -> "PrivateLog":
        """Open for appending; without ``replay`` the directory is replayed (and repaired)
        here, the mutations discarded."""
        if not os.path.isdir(dir):
            os.makedirs(dir)
            if options.get("sync") == "batch":      # make the new directory's entry durable
                fsync_path(os.path.dirname(os.path.abspath(dir)), directory=True)
        if replay is None:
            r = Replay(dir)
            for _ in r:
                pass
            replay = r.result
        return cls(dir, gpid, replay, **options)

    # -- state

    @property
    def end_offset(self) -> int:
        return self._end

    @property
    def start_offset(self) -> int:
        return self._files[0].start_offset if self._files else self._end

    @property
    def files(self) -> List[LogFileInfo]:
        return list(self._files)

    @property
    def broken(self) -> Optional[BaseException]:
        return self._broken

    @property
    def size(self) -> int:
        return self._end - self.start_offset

    # -- appending

    def append(self, mutations: Sequence[Mutation]) -> AppendResult:
        """Append a batch (group commit): one write, and one fdatasync under ``sync="batch"``.
        Raises ``PlogError`` if the log is broken or the write/sync fails (then broken)."""
        if self._broken is not None:
            raise PlogError(f"{self.dir}: log is broken by an earlier I/O error: "
                            f"{self._broken}")
        if self._closed:
            raise PlogError(f"{self.dir}: log is closed")
        for m in mutations:
            if m.gpid != self.gpid:
                raise ValueError(f"mutation {m.name} does not belong to {self.gpid}")
        if not mutations:
            path = self._files[-1].path if self._files else ""
            return AppendResult([], self._end, self._end, 0, False, path)
        rolled = self._fd is None or self._files[-1].size >= self.file_size_limit
        prev = (self._fd, list(self._files), self._end, self._next_index)
        try:
            header = self._roll() if rolled else b""
            cur = self._files[-1]
            batch = build_blocks(mutations, global_offset=self._end + len(header),
                                 file_start_offset=cur.start_offset,
                                 crc=cur.crc,
                                 checksum=cur.checksum, max_block_bytes=self.max_block_bytes)
            data = header + batch.data if header else batch.data
            _pwrite_all(self._fd, data, self._end - cur.start_offset)
            if self.sync == "batch":
                _fdatasync(self._fd)
                if rolled:
                    fsync_path(self.dir, directory=True)
        except PlogError:
            self._rollback(prev, rolled)
            raise
        except OSError as e:
            self._rollback(prev, rolled)
            self._broken = e
            logger.error("plog {}: append failed, log is broken: {}", self.dir, e)
            raise PlogError(f"{self.dir}: append failed: {e}") from e
        if rolled and prev[0] is not None:
            os.close(prev[0])
        start = self._end
        self._end += len(data)
        cur.end_offset = self._end
        cur.crc = batch.crc
        top = max(m.decree for m in mutations)
        cur.max_decree = top if cur.max_decree is None else max(cur.max_decree, top)
        self.max_decree = max(self.max_decree, top)
        self.max_committed_decree = max(self.max_committed_decree,
                                        max(m.last_committed_decree for m in mutations))
        return AppendResult(batch.offsets, start, self._end, len(data), self.sync == "batch",
                            cur.path)

    def _roll(self) -> bytes:
        """Create the next file; returns its header block (written with the batch)."""
        index = self._next_index
        path = os.path.join(self.dir, file_name(index, self._end))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o644)
        header, crc = build_header_block(self._end, self.gpid, self.max_decree,
                                         self.valid_start_offset, self.checksum)
        if self._files:
            logger.info("plog {}: switching to {} (previous file {} bytes)", self.dir,
                        os.path.basename(path), self._files[-1].size)
        self._fd = fd
        self._next_index = index + 1
        self._files.append(LogFileInfo(index, self._end, path, self._end, self.max_decree,
                                       None, self.checksum, crc))
        return header

    def _rollback(self, prev, rolled: bool) -> None:
        """Undo a failed append: drop a just-created file, or cut the file back."""
        old_fd, old_files, old_end, old_index = prev
        try:
            if rolled and len(self._files) > len(old_files):
                if self._fd is not None and self._fd != old_fd:
                    os.close(self._fd)
                os.unlink(self._files[-1].path)
            elif old_files and old_fd is not None:
                os.ftruncate(old_fd, old_end - old_files[-1].start_offset)
        except OSError as e:
            logger.error("plog {}: rollback after failed append failed: {}", self.dir, e)
        self._fd, self._files, self._end, self._next_index = old_fd, old_files, old_end, old_index

    def flush(self) -> None:
        """fdatasync the current file (for ``sync="none"`` callers that want a barrier)."""
        if self._fd is not None:
            _fdatasync(self._fd)

    def close(self) -> None:
        self._closed = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "PrivateLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- garbage collection

    def gc(self, durable_decree: int, *, reserve_max_bytes: int = 0,
           reserve_max_seconds: float = 0, now: Optional[float] = None) -> List[str]:
        """Delete the oldest files whose mutations all have decree <= ``durable_decree`` (known
        from the next file's header), never the current file, oldest first (no holes).
        Like upstream, newer deletable files are kept while they fit in both
        ``reserve_max_bytes`` and ``reserve_max_seconds`` of age (either 0: keep none; every
        newer file counts against the size budget). Returns the deleted paths."""
        files = self._files
        deletable = 0
        for k in range(len(files) - 1):
            bound = files[k + 1].prev_max_decree
            if bound is None or bound > durable_decree:
                break
            deletable = k + 1
        if deletable and reserve_max_bytes > 0 and reserve_max_seconds > 0:
            now = time.time() if now is None else now
            reserved = sum(f.size for f in files[deletable:])
            keep_from = deletable
            for k in range(deletable - 1, -1, -1):
                f = files[k]
                if (reserved + f.size > reserve_max_bytes
                        or now - os.path.getmtime(f.path) > reserve_max_seconds):
                    break
                reserved += f.size
                keep_from = k
            deletable = keep_from
        removed = []
        for f in files[:deletable]:
            try:
                os.unlink(f.path)
            except FileNotFoundError:
                pass
            except OSError as e:
                logger.error("plog {}: gc cannot remove {}: {}", self.dir, f.path, e)
                break
            removed.append(f.path)
        if removed:
            del self._files[:len(removed)]
            logger.info("plog {}: gc removed {} file(s) up to decree {}: {}", self.dir,
                        len(removed), durable_decree,
                        ", ".join(os.path.basename(p) for p in removed))
        return removed

"""Printing a replica's private-log directory (``replica/plog.py`` format, ours or upstream's):
per file its header, then one line per mutation (gpid, ballot, decree, last committed decree,
timestamp, log offset, each update's RPC name and size, optionally decoded), then a summary and
any torn or corrupt tail. Used by ``tools/plog_dump.py`` and the shell's ``mlog_dump``.

Reads files only (``truncate`` repairs the tail as a replica restart would); no sockets.
"""
from __future__ import annotations

import os
import sys

from pegasus_server.replica import mutation as mu
from pegasus_server.replica import plog


def _updates(m, decode: bool) -> str:
    parts = []
    for u in m.updates:
        s = f"{u.code}({len(u.data)} B)"
        if decode and not u.is_empty_write:
            try:
                s += f" {mu.decode_request(u.code, u.data)!r}"
            except (ValueError, mu.MutationFormatError) as e:
                s += f" <undecodable: {e}>"
        parts.append(s)
    return ", ".join(parts)


def dump(dir: str, *, truncate: bool = False, decode: bool = False, quiet: bool = False,
         out=sys.stdout) -> int:
    r = plog.Replay(dir, truncate=truncate)
    current = None
    for m in r:
        if r.current is not current:
            current = r.current
            h = r.current_header
            print(f"# file {os.path.basename(current.path)}: index {current.index}, start offset "
                  f"{current.start_offset}, checksum {h.checksum if h else '?'}, "
                  f"max decree in earlier files {h.prev_max_decree() if h else '?'}", file=out)
        if not quiet:
            print(f"gpid={m.gpid} ballot={m.ballot} decree={m.decree} "
                  f"lcd={m.last_committed_decree} ts={m.timestamp_us} offset={m.log_offset} "
                  f"updates=[{_updates(m, decode)}]", file=out)
    res = r.result
    print(f"# {res.count} mutations in {len(res.files)} file(s), global offsets "
          f"[{res.files[0].start_offset if res.files else res.end_offset}, {res.end_offset}), "
          f"max decree {res.max_decree}, max committed {res.max_committed_decree}", file=out)
    for f in res.files:
        print(f"#   {os.path.basename(f.path)}: [{f.start_offset}, {f.end_offset}) "
              f"{f.size} B, checksum {f.checksum}, max decree "
              f"{'-' if f.max_decree is None else f.max_decree}", file=out)
    if res.problem is not None:
        print(f"# TAIL PROBLEM: {res.problem}", file=out)
        return 1
    print("# tail: clean", file=out)
    return 0

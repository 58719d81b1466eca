#!/usr/bin/env python3
"""Print the mutations of a replica's private log directory, and any tail problem.

Usage: plog_dump.py [--truncate] [--decode] [--quiet] DIR

Reads ``DIR/log.<index>.<start_offset>`` files (ours or upstream's; replica/plog.py describes
the format) in order and prints, per file, its header, then one line per mutation: gpid,
ballot, decree, last committed decree, timestamp, log offset and each update's RPC name and
payload size. Replay stops at the first torn or corrupt block; the problem is printed at the
end. Read-only unless ``--truncate`` is given (then the tail is cut as a replica restart would
do). Exit status: 0 clean, 1 tail problem found, 2 usage or I/O error.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pegasus_server.replica import mutation as mu  # noqa: E402
from pegasus_server.replica import plog  # noqa: E402


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="plog_dump.py",
        description="Print each mutation of a private-log directory and any torn/corrupt tail.")
    ap.add_argument("dir", metavar="DIR", help="plog directory (holds log.<index>.<offset>)")
    ap.add_argument("--truncate", action="store_true",
                    help="repair: cut the file at the first bad block and set later files "
                         "aside (default: read-only)")
    ap.add_argument("--decode", action="store_true",
                    help="also decode each update's request with the thrift codec")
    ap.add_argument("--quiet", action="store_true", help="only file lines and the summary")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.dir):
        print(f"plog_dump: {args.dir}: not a directory", file=sys.stderr)
        return 2
    try:
        return dump(args.dir, truncate=args.truncate, decode=args.decode, quiet=args.quiet)
    except OSError as e:
        print(f"plog_dump: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

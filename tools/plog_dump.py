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

from pegasus_server.replica.log_dump import dump  # noqa: E402


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

"""Local tools of the shell (shell.md §2.7) that need no server: the conversions of Pegasus's
storage key and value encodings (``rdb_key_str2hex``, ``rdb_key_hex2str``,
``rdb_value_hex2str``) and ``mlog_dump`` (print a replica's private-log directory).

Keys and values are shown C-escaped in double quotes; input keys are C-unescaped."""
from __future__ import annotations

import io
import os

from pegasus_server.replica.log_dump import dump
from pegasus_server.storage import keys, values
from pegasus_shell.commands import Arg, Opt, command
from pegasus_shell.context import ShellError, UsageError
from pegasus_shell.escaping import EscapeError, quoted, unescape
from pegasus_shell.output import emit


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{text!r} is not hexadecimal") from None


def _bytes(text: str) -> bytes:
    try:
        return unescape(text)
    except EscapeError as e:
        raise UsageError(str(e)) from None


@command("rdb_key_str2hex", "misc", "The storage key of a record, in hexadecimal",
         args=[Arg("hash_key"), Arg("sort_key")])
def cmd_rdb_key_str2hex(ctx, a):
    emit(ctx, keys.encode_key(_bytes(a.hash_key), _bytes(a.sort_key)).hex() + "\n")


@command("rdb_key_hex2str", "misc", "The hash key and sort key of a storage key in hexadecimal",
         args=[Arg("rdb_key_in_hex")])
def cmd_rdb_key_hex2str(ctx, a):
    raw = _hex(a.rdb_key_in_hex)
    try:
        hk, sk = keys.restore_key(raw)
    except ValueError as e:
        raise ShellError(f"not a storage key: {e}") from None
    emit(ctx, f"hash_key: {quoted(hk, ctx.escape_all)}\nsort_key: {quoted(sk, ctx.escape_all)}\n")


@command("rdb_value_hex2str", "misc",
         "The expiry, time tag and user data of a stored value in hexadecimal",
         args=[Arg("value_in_hex")],
         opts=[Opt("-v", "--data_version", type=int, default=values.DATA_VERSION_MAX,
                   metavar="0|1", help="the table's data version (default 1)")])
def cmd_rdb_value_hex2str(ctx, a):
    if a.data_version not in values.HEADER_SIZE:
        raise UsageError(f"data_version must be one of {sorted(values.HEADER_SIZE)}")
    raw = _hex(a.value_in_hex)
    try:
        expire_ts, timetag, data = values.decode_value(raw, a.data_version)
    except ValueError as e:
        raise ShellError(f"not a stored value of data version {a.data_version}: {e}") from None
    lines = [f"expire_ts: {expire_ts}" + (" (never)" if expire_ts == 0 else
                                            " (seconds since 2016-01-01 00:00:00 UTC)")]
    if a.data_version >= 1:
        ts, cluster_id, deleted = values.split_timetag(timetag)
        lines.append(f"timetag: {timetag} (timestamp_us {ts}, cluster_id {cluster_id}, "
                     f"delete_flag {str(deleted).lower()})")
    lines.append(f"user_data: {quoted(data, ctx.escape_all)}")
    emit(ctx, "\n".join(lines) + "\n")


@command("mlog_dump", "misc", "Print the mutations of a replica's private-log directory",
         opts=[Opt("-i", "--input", metavar="log_dir", required=True,
                   help="the plog directory (holds log.<index>.<offset> files)"),
               Opt("-o", "--output", metavar="file", help="write the output to this file"),
               Opt("-d", "--detailed", flag=True, help="also decode every update's request")])
def cmd_mlog_dump(ctx, a):
    if not os.path.isdir(a.input):
        raise ShellError(f"{a.input}: not a directory")
    out = io.StringIO()
    try:
        rc = dump(a.input, decode=a.detailed, out=out)
    except OSError as e:
        raise ShellError(f"cannot read {a.input}: {e}") from None
    emit(ctx, out.getvalue(), a.output)
    return rc

"""C-style escaping of keys and values, as upstream's shell (``pegasus::utils::c_escape_string`` /
``c_unescape_string``): arguments typed by the user are unescaped (``\\x00``, ``\\n``, ``\\\\``
...), binary data is shown escaped inside double quotes. With ``escape_all`` every byte outside
printable ASCII is shown as ``\\xHH``; without it bytes >= 0x80 are left alone, so UTF-8 text
reads as text.
"""
from __future__ import annotations

_SIMPLE = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord('"'): '\\"',
           ord("'"): "\\'", ord("\\"): "\\\\"}
_UNESCAPE = {"n": 10, "r": 13, "t": 9, '"': 34, "'": 39, "\\": 92, "0": 0, "a": 7, "b": 8,
             "f": 12, "v": 11, "?": 63}


class EscapeError(ValueError):
    pass


def escape(data: bytes, escape_all: bool = False) -> str:
    out = []
    raw = bytearray()

    def flush_raw():
        if raw:
            out.append(raw.decode("utf-8", "backslashreplace"))
            raw.clear()
    for b in data:
        if b in _SIMPLE:
            flush_raw()
            out.append(_SIMPLE[b])
        elif 0x20 <= b < 0x7F:
            raw.append(b)
        elif b >= 0x80 and not escape_all:
            raw.append(b)
        else:
            flush_raw()
            out.append("\\x%02x" % b)
    flush_raw()
    text = "".join(out)
    # bytes >= 0x80 that are not valid UTF-8 came back as \x.. escapes from backslashreplace
    return text


def unescape(text: str) -> bytes:
    """``\\xHH``, ``\\n`` & co. become their bytes; other text is UTF-8."""
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        if i + 1 >= n:
            raise EscapeError("a backslash ends the argument")
        e = text[i + 1]
        if e in ("x", "X"):
            h = text[i + 2:i + 4]
            if len(h) != 2 or any(ch not in "0123456789abcdefABCDEF" for ch in h):
                raise EscapeError(f"bad escape \\{e}{h}: expected two hex digits")
            out.append(int(h, 16))
            i += 4
        elif e in _UNESCAPE:
            out.append(_UNESCAPE[e])
            i += 2
        else:
            raise EscapeError(f"unknown escape \\{e}")
    return bytes(out)


def quoted(data: bytes, escape_all: bool = False) -> str:
    return '"' + escape(data, escape_all) + '"'

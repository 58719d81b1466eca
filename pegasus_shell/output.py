"""Output of shell commands: upstream's sectioned tables, ``-j`` JSON, ``-o FILE``, progress bars.

A command builds a ``Report`` (named sections, each a key/value table or a table with columns)
and renders it once: as aligned text (``[section]`` headers, columns padded, as upstream's
``table_printer``), or with ``-j`` as JSON (a key/value section is an object, a table a list of
row objects). ``-o FILE`` writes the rendering to FILE instead of the terminal.

``Progress`` draws a bar on standard error while a long command runs (scans, copies, counts),
only when standard error is a terminal; it never writes into the command's output.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, List, Optional, Sequence, TextIO


class Section:
    def __init__(self, name: str, columns: Optional[Sequence[str]] = None):
        self.name = name
        self.columns = list(columns) if columns else None   # None: key/value pairs
        self.rows: List[list] = []

    def add(self, *values) -> "Section":
        self.rows.append(list(values))
        return self


class Report:
    def __init__(self):
        self.sections: List[Section] = []

    def kv(self, name: str) -> Section:
        s = Section(name)
        self.sections.append(s)
        return s

    def table(self, name: str, columns: Sequence[str]) -> Section:
        s = Section(name, columns)
        self.sections.append(s)
        return s

    # ------------------------------------------------------------------ rendering
    def text(self) -> str:
        blocks = []
        for s in self.sections:
            lines = [f"[{s.name}]"] if s.name else []
            if s.columns is None:
                width = max((len(str(k)) for k, _ in s.rows), default=0)
                lines += [f"{str(k):<{width}} : {_cell(v)}" for k, v in s.rows]
            else:
                cells = [list(s.columns)] + [[_cell(v) for v in r] for r in s.rows]
                widths = [max(len(r[i]) for r in cells) for i in range(len(s.columns))]
                for r in cells:
                    lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks) + "\n"

    def json(self) -> str:
        out = {}
        for s in self.sections:
            if s.columns is None:
                out[s.name] = {str(k): _plain(v) for k, v in s.rows}
            else:
                out[s.name] = [{c: _plain(v) for c, v in zip(s.columns, r)} for r in s.rows]
        return json.dumps(out, indent=4, ensure_ascii=False) + "\n"

    def render(self, as_json: bool = False) -> str:
        return self.json() if as_json else self.text()


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _plain(v: Any):
    return v if isinstance(v, (bool, int, float, str, type(None), list, dict)) else str(v)


def emit(ctx, text: str, output_file: Optional[str] = None) -> None:
    """Write a command's output to ``-o FILE`` (replaced) or to the shell's output."""
    if output_file:
        with open(output_file, "w") as f:
            f.write(text)
        ctx.out.write(f"output written to {output_file}\n")
    else:
        ctx.out.write(text)
    ctx.out.flush()


class Progress:
    """``with Progress("scanning", total) as p: p.update(n)``; ``total`` None: a counter."""

    def __init__(self, label: str, total: Optional[int] = None, stream: TextIO = None,
                 min_interval: float = 0.1):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval = min_interval
        self._last = 0.0

    def __enter__(self) -> "Progress":
        self._draw(force=True)
        return self

    def update(self, n: int = 1, total: Optional[int] = None) -> None:
        self.done += n
        if total is not None:
            self.total = total
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            line = f"\r{self.label} [{bar:<30}] {self.done}/{self.total} ({frac * 100:.0f}%)"
        else:
            line = f"\r{self.label}: {self.done}"
        self.stream.write(line)
        self.stream.flush()

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

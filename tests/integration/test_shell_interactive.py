"""The interactive pegasus_shell driven through a pseudo-terminal (pexpect) as a user types:
the banner and prompt, Tab completion of commands, table names, options and option values,
history (arrow keys, kept across sessions), Ctrl-C at the prompt and during a long command,
Ctrl-D to leave."""
import os
import sys

import pexpect
import pytest

from onebox import META_BASE_PORT  # tools/, on the path via conftest

META_TEXT = f"127.0.0.1:{META_BASE_PORT + 1}"
PROMPT = ">>> "
UP = "\x1b[A"


@pytest.fixture
def history(tmp_path):
    return str(tmp_path / "history")


def spawn(history):
    env = dict(os.environ, PEGASUS_SHELL_HISTORY=history, TERM="xterm", COLUMNS="200")
    child = pexpect.spawn(sys.executable, ["-m", "pegasus_shell", "--meta", META_TEXT],
                          env=env, encoding="utf-8", timeout=30, dimensions=(50, 200))
    child.expect("The cluster name is: onebox")
    child.expect_exact(PROMPT)
    return child


def run(child, line):
    child.sendline(line)
    child.expect_exact(PROMPT)
    return child.before


def leave(child):
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_commands_and_completion(cluster, history):
    child = spawn(history)
    try:
        child.send("cluster_i\t")
        child.expect_exact("cluster_info ")              # the completed word is echoed
        child.send("\r")
        child.expect(r"\[cluster_info\]")
        child.expect("cluster_name\\s+: onebox")
        child.expect_exact(PROMPT)
        child.send("use te\t")
        child.expect_exact("temp ")                       # table names from the meta
        child.send("\r")
        child.expect_exact("OK")
        child.expect_exact(PROMPT)
        child.send("ls --det\t")
        child.expect_exact("--detailed ")                 # options of the command
        child.send("--status av\t")
        child.expect_exact("available ")                  # choices of an option
        child.send("\r")
        child.expect(r"\[healthy_info\]")
        child.expect_exact(PROMPT)
        child.send("help cluster_\t")
        child.expect_exact("cluster_info ")               # command names as arguments
        child.send("\r")
        child.expect_exact("Show the cluster")
        child.expect_exact(PROMPT)
        out = run(child, 'set sh_hk sh_sk "two words"')
        assert "OK" in out
        out = run(child, "get sh_hk sh_sk")
        assert '"two words"' in out
        out = run(child, "nonsense")
        assert "invalid subcommand 'nonsense'" in out
        out = run(child, "set only_one")
        assert "USAGE: set" in out                        # the shell is still there
        out = run(child, "version")
        assert "Pegasus Shell" in out
    finally:
        leave(child)


def test_history_within_and_across_sessions(cluster, history):
    child = spawn(history)
    try:
        run(child, "use temp")
        run(child, "set hist_hk sk first")
        child.send(UP + "\r")                             # the set again
        child.expect_exact("OK")
        child.expect_exact(PROMPT)
        run(child, "timeout 4321")
    finally:
        leave(child)
    lines = open(history).read().splitlines()
    assert lines[-4:] == ["use temp", "set hist_hk sk first", "set hist_hk sk first",
                          "timeout 4321"]
    child = spawn(history)                                # a new session
    try:
        child.send(UP + "\r")                             # the newest line of the last one
        child.expect_exact("set timeout to 4321 ms")
        child.expect_exact(PROMPT)
        child.send(UP + UP + UP + "\r")                   # timeout, timeout, set
        child.expect_exact("no table selected")          # (this session has no `use`)
        child.expect_exact(PROMPT)
    finally:
        leave(child)


def test_ctrl_c_clears_the_line_and_ctrl_d_leaves(cluster, history):
    child = spawn(history)
    try:
        child.send("half typed")
        child.expect_exact("half typed")      # on the line (echoed) before Ctrl-C clears it
        child.sendcontrol("c")
        child.expect_exact(PROMPT)
        out = run(child, "version")
        assert "Pegasus Shell" in out and "half typed" not in out
    finally:
        leave(child)


def test_ctrl_c_stops_a_long_command_not_the_shell(cluster, history):
    child = spawn(history)
    try:
        child.sendline("nodes -q -i 60000")                # samples twice, a minute apart
        child.expect_exact("nodes -q -i 60000\r\n")          # the line is submitted: the
        child.sendcontrol("c")                             # command runs (a minute at least)
        child.expect_exact("interrupted")                  # (the command, or the line before it)
        child.expect_exact(PROMPT)
        out = run(child, "version")
        assert "Pegasus Shell" in out
    finally:
        leave(child)


def test_progress_bar_on_a_count(cluster, history):
    child = spawn(history)
    try:
        run(child, "use temp")
        for i in range(20):
            run(child, f"set progress_hk{i} sk v")
        child.sendline("count_data -c")
        child.expect_exact("counting rows")                # the bar, on the terminal
        child.expect_exact(PROMPT)
        assert "interrupted" not in child.before
    finally:
        leave(child)

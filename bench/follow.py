#!/usr/bin/env python3
"""Follow cost, the measuring half of bench/follow.sh (bench/peers.py imports its followers).

A fast writer (`cat BODY >> FILE`, then one matching line) appends a realistic log to a file
that a follower watches from its end; per follower: seconds from the start of the write to the
follower's reaction to the match, and the CPU seconds the follower spent meanwhile (utime +
stime of every thread: /proc/PID/stat before the write, /proc or the child's rusage after).
Followers: lookout (`run --stdout`, no after-lines, no after-window: the alert leaves at the
match) and `tail -n0 -F FILE | grep -E --line-buffered -m1 PATTERN` (tail and grep summed).
Usage: follow.py LOOKOUT_BIN WORKDIR FOLLOWDIR SIZE_MIB ROUNDS   (prints a Markdown table)
"""
import os
import re
import select
import signal
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
PATIENCE = 60.0  # seconds any one wait may take before the run is declared broken
BENCH = os.path.dirname(os.path.abspath(__file__))

# (pattern for lookout, for python's re check; grep's flags and pattern; the line that matches;
#  divisor of the size: a pattern without a literal runs on a smaller log)
SHAPES = [
    ("ERROR crashed", ["-E"], "ERROR crashed", "ERROR crashed: segfault in worker", 1),
    (r"\d+ crashed", ["-E"], "[0-9]+ crashed", "worker 17 crashed: segfault", 1),
    ("error|fail|panic", ["-E"], "error|fail|panic", "kernel panic: segfault in worker", 1),
    ("(?i)error crashed", ["-E", "-i"], "error crashed", "Error Crashed: segfault in worker", 1),
    ("[xyz]{5}", ["-E"], "[xyz]{5}", "token xyzzy rejected", 16),
]


def log_line(text):
    """The appended match, shaped like the body's lines."""
    return f"2026-11-29T11:00:00.000Z raspberrypi app[1]: {text}"


def cpu_s(pid):
    """utime + stime of a whole process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def rusage_s(pid):
    """Reaps a child and returns its CPU seconds from the kernel's own accounting."""
    _, _, ru = os.wait4(pid, 0)
    return ru.ru_utime + ru.ru_stime


class Lines:
    """Lines out of a pipe, each awaited at most `patience` seconds (a clear error, not a hang)."""

    def __init__(self, stream, what):
        self.fd, self.what, self.buf = stream.fileno(), what, b""

    def readline(self, patience=PATIENCE):
        deadline = time.monotonic() + patience
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                sys.exit(f"{self.what}: no line within {patience:.0f} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                sys.exit(f"{self.what}: the output ended")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")


def wait_until(what, cond, patience=PATIENCE):
    """Polls cond() until it holds; a clear error after `patience` seconds."""
    deadline = time.monotonic() + patience
    while not cond():
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what} after {patience:.0f} s")
        time.sleep(0.01)


def start_writer(body, line, path):
    """The fast writer: the body, then the match, appended by a child of its own."""
    script = 'cat "$1" >> "$2" && printf "%s\\n" "$3" >> "$2"'
    return subprocess.Popen(["sh", "-c", script, "sh", body, path, line])


def writer_alone(body, path):
    """Seconds the writer takes with nobody following (the pace of the others' writer)."""
    open(path, "w").close()
    s = time.monotonic()
    subprocess.run(["sh", "-c", 'cat "$1" >> "$2"', "sh", body, path], check=True)
    e = time.monotonic() - s
    os.unlink(path)
    return e


def has_inotify_watch(pid):
    """Whether a process holds an inotify descriptor with a watch: GNU tail following."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                if "inotify wd:" in f.read():
                    return True
    except OSError:
        pass
    return False


def lookout_root(work, name, settings="DEFAULT_LOG_LINES_AFTER=0\nLOG_LINES_AFTER_WINDOW_MS=0\n"):
    """A fresh root for one agent, with its config.sh."""
    root = os.path.join(work, name)
    subprocess.run(["rm", "-rf", root], check=True)
    os.makedirs(os.path.join(root, "usr/share/mender-monitor/config"))
    with open(os.path.join(root, "usr/share/mender-monitor/config/config.sh"), "w") as f:
        f.write(settings)
    return root


def add_check(binary, root, name, pattern, path):
    """`create` and `enable` of one log check, as a user would."""
    for args in (["create", "log", name, "--", pattern, path], ["enable", "log", name]):
        subprocess.run([binary, "--root", root, *args], check=True, stdout=subprocess.DEVNULL)


def start_agent(binary, root, checks):
    """`run --stdout` with stdout a pipe; returns once every check says it started."""
    log = os.path.join(root, "agent.log")
    agent = subprocess.Popen([binary, "--root", root, "run", "--stdout"], stdout=subprocess.PIPE,
                             stderr=open(log, "w"))

    def started():
        if agent.poll() is not None:
            sys.exit(f"the agent exited: see {log}")
        return open(log).read().count(": started") >= checks

    wait_until("the agent's checks to start", started)
    return agent


def stop(proc):
    """SIGTERM to one process we started, then reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def follow_lookout(binary, work, fdir, body, pattern, text):
    """lookout following an empty file while the writer appends: (seconds, CPU seconds)."""
    path = os.path.join(fdir, "follow-lookout.log")
    open(path, "w").close()
    root = lookout_root(work, "follow-root")
    add_check(binary, root, "bench", pattern, path)
    agent = start_agent(binary, root, 1)
    try:
        c0 = cpu_s(agent.pid)
        s = time.monotonic()
        writer = start_writer(body, log_line(text), path)
        alert = Lines(agent.stdout, "lookout").readline(600)
        e = time.monotonic() - s
        cpu = cpu_s(agent.pid) - c0
        writer.wait()
    finally:
        stop(agent)
        os.unlink(path)
    if text not in alert:
        sys.exit(f"lookout, {pattern!r}: unexpected alert: {alert[:300]}")
    return e, cpu


def follow_tailgrep(fdir, body, grep_args, grep_pattern, text):
    """`tail -n0 -F | grep --line-buffered -m1` on an empty file: (seconds, CPU seconds)."""
    path = os.path.join(fdir, "follow-tail.log")
    open(path, "w").close()
    tail = subprocess.Popen(["tail", "-n0", "-F", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    grep = subprocess.Popen(["grep", *grep_args, "--line-buffered", "-m1", "--", grep_pattern],
                            stdin=tail.stdout, stdout=subprocess.PIPE)
    tail.stdout.close()
    try:
        wait_until("tail to watch the file", lambda: has_inotify_watch(tail.pid))
        c0 = cpu_s(tail.pid) + cpu_s(grep.pid)
        s = time.monotonic()
        writer = start_writer(body, log_line(text), path)
        out = Lines(grep.stdout, "tail|grep").readline(600)
        e = time.monotonic() - s
        grep_cpu = rusage_s(grep.pid)
        grep.returncode = 0  # reaped above
        writer.wait()
        # Not Popen.send_signal: it polls first and would reap a tail that SIGPIPE ended, and its
        # rusage with it. Unreaped, its pid cannot have been reused.
        os.kill(tail.pid, signal.SIGTERM)
        tail_cpu = rusage_s(tail.pid)
        tail.returncode = 0
    finally:
        for p in (grep, tail):
            if p.returncode is None:
                p.kill()
                p.wait()
        os.unlink(path)
    if text not in out:
        sys.exit(f"tail|grep, {grep_pattern!r}: unexpected output: {out[:300]}")
    return e, grep_cpu + tail_cpu - c0


def check_body(body, shapes):
    """The body must match none of the patterns: its first block (the log repeats it) is read."""
    with open(body, "rb") as f:
        head = f.read(16 << 20).decode(errors="replace")
    for pattern, _, _, text, _ in shapes:
        rx = re.compile(pattern.replace(r"\d", "[0-9]"))
        if rx.search(head):
            sys.exit(f"the generated log matches {pattern!r} before the end")
        if not rx.search(log_line(text)):
            sys.exit(f"the appended line does not match {pattern!r}")


def make_body(work, size_mib):
    """A realistic log of size_mib MiB without a match (bench/genlog.py), page-cached."""
    path = os.path.join(work, f"body-{size_mib}.log")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(BENCH, "genlog.py"), path, str(size_mib), ""], check=True)
        subprocess.run(["cat", path], check=True, stdout=subprocess.DEVNULL)
    return path


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main():
    binary, work, fdir, size_mib, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    rows = []
    for pattern, grep_args, grep_pattern, text, divisor in SHAPES:
        mib = max(1, size_mib // divisor)
        body = make_body(work, mib)
        check_body(body, [(pattern, None, None, text, None)])
        gib = (os.path.getsize(body) + len(log_line(text)) + 1) / (1 << 30)
        runs = {"writer": [], "lookout": [], "tail": []}
        for _ in range(rounds):
            runs["writer"].append((writer_alone(body, os.path.join(fdir, "alone.log")), None))
            runs["lookout"].append(follow_lookout(binary, work, fdir, body, pattern, text))
            runs["tail"].append(follow_tailgrep(fdir, body, grep_args, grep_pattern, text))
        grep_shown = "grep " + " ".join(grep_args) + f" '{grep_pattern}'"
        for who, label in (("writer", "the writer alone"), ("lookout", "lookout"), ("tail", f"tail -F | {grep_shown}")):
            secs = ", ".join(f"{s:.2f}" for s, _ in runs[who])
            cells = [f"`{pattern}`", label, str(mib), secs]
            if who == "writer":
                cells += ["", ""]
            else:
                cpus = [c for _, c in runs[who]]
                cells += [", ".join(f"{c:.2f}" for c in cpus), f"{median(cpus) / gib:.2f}"]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    print("| pattern | follower | MiB written | seconds to the alert (runs) | follower CPU s (runs) | CPU s per GiB (median) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()

"""What the side-by-side benchmarks share: reading a server's CPU time and memory from
/proc (all its processes: lwsd's supervisor and workers, nginx's master and worker),
waiting for a port, and starting/stopping a server in its own session."""

import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def cpu_seconds(pids):
    """utime + stime of `pids`, in seconds (clock-tick resolution)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / CLK_TCK


def rss_bytes(pids):
    """Resident set size of `pids`, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE  # resident pages
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def wait_port(port, timeout=10):
    t = time.time()
    while time.time() - t < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


class Server:
    """A server process in its own session, ready once `port` answers. With `fd_limit`,
    started through `sh -c 'ulimit -n N && exec ...'` (exec keeps the pid)."""

    def __init__(self, name, argv, port, settle=0.3, fd_limit=None):
        self.name, self.port = name, port
        if fd_limit:
            argv = ["sh", "-c", f"ulimit -n {fd_limit} && exec " + " ".join(argv)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_port(port)
        except RuntimeError:
            self.stop()
            raise
        time.sleep(settle)

    def pids(self):
        return tree(self.proc.pid)

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

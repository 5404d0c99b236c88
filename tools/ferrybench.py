#!/usr/bin/env python3
"""ferrybench: ferry side by side with direct loopback, HAProxy and nginx stream.

One run starts every subject once and interleaves the timed workloads in rounds
(the subject order rotates from round to round), then reports medians:

  direct    no proxy: the limit of this machine
  haproxy   HAProxy `mode tcp`            (--workers N: nbthread N)
  nginx     nginx `stream` module         (--workers N: worker_processes N)
  ferry     ferry (--ferry PATH)          (--workers N: `workers: N`)
  ferry-16k     (only when asked for with --only) the same ferry with `buffer_max: 16KiB`: rings
                that never grow, the buffer size HAProxy and nginx use by default
  ferry-eager   (only when asked for with --only) the same ferry with `coalesce: off`: a busy
                worker blocks as soon as it runs out of events, never waiting for more to gather
  ferry-splice  the same ferry with `defaults: {splice: true}` (splice(2) through pipes,
                borrowed per burst: an idle spliced pair holds only its two sockets)

Workloads (everything on 127.0.0.0/8):
  tput1 / tput1r   iperf3, 1 stream, client->server / server->client (-R)
  tput8 / tput8r   iperf3, 8 parallel streams, both directions
  rps              wrk, 64 keep-alive connections, 1 KiB HTTP responses (req/s, p99)
  cps              wrk, a new TCP connection per request (Connection: close)
  idle             5000 connections held after one small exchange each:
                   proxy RSS growth per connection (whole process tree)
  active           9000 concurrent connections, all exchanging echoed data at once;
                   any connect failure, reset, early EOF, stall or wrong byte is an error
  integrity        concurrent streams of pseudo-random data both ways, verified byte
                   by byte and by SHA-256 at the receiving end (plus one half-close check)

For every proxy the tool also reads the proxy's own CPU time (utime+stime from
/proc over its process tree) and reports it per GB moved, per request and per
connection.  It prints a markdown table, then ferry's ratios to HAProxy with the
performance targets marked PASS/FAIL.  Only the Python standard library is used.
"""
import argparse
import ctypes
import datetime
import errno
import hashlib
import json
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
SUBJECTS = ["direct", "haproxy", "nginx", "ferry", "ferry-splice", "ferry-16k", "ferry-eager"]
DEFAULT_SUBJECTS = ["direct", "haproxy", "nginx", "ferry", "ferry-splice"]
PROXIES = ["haproxy", "nginx", "ferry", "ferry-splice", "ferry-16k", "ferry-eager"]
FERRIES = ("ferry", "ferry-splice", "ferry-16k", "ferry-eager")
TIMED = ["tput1", "tput1r", "tput8", "tput8r", "rps", "cps"]
WORKLOADS = ["idle"] + TIMED + ["active", "integrity"]
ROUTES = ["iperf", "http", "echo", "integ"]
TICK = os.sysconf("SC_CLK_TCK")
IP_BIND_ADDRESS_NO_PORT = 24
PROC_TIMEOUT = 60  # generic bound for short helper commands


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- /proc

def process_tree(pid):
    """pid and all its descendants (children of every thread)."""
    out, frontier, seen = [], [pid], set()
    for _ in range(10000):  # bounded walk
        if not frontier:
            break
        p = frontier.pop()
        if p in seen:
            continue
        seen.add(p)
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                try:
                    with open(f"/proc/{p}/task/{tid}/children") as f:
                        frontier += [int(x) for x in f.read().split()]
                except OSError:
                    pass
        except OSError:
            pass
    return out


def cpu_times(pids):
    """(utime, stime) consumed so far by these processes (all their threads), in seconds."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return user / TICK, system / TICK


def cpu_seconds(pids):
    """utime+stime consumed so far by these processes (all their threads)."""
    return sum(cpu_times(pids))


def rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def fd_count(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return n


def tcp_table():
    """[(local_ip_hex, local_port, state_hex)] from /proc/net/tcp."""
    rows = []
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                ip, port = parts[1].split(":")
                rows.append((ip, int(port, 16), parts[3]))
    except OSError:
        pass
    return rows


def listening_ports():
    """Local ports of the IPv4 TCP sockets in LISTEN state, asked of the kernel
    through sock_diag (only listeners come back, however many connections
    sit in TIME_WAIT); /proc/net/tcp if netlink is unavailable."""
    try:
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4)  # NETLINK_SOCK_DIAG
    except OSError:
        return {p for _, p, st in tcp_table() if st == "0A"}
    ports = set()
    try:
        nl.settimeout(5)
        req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 1 << 10) + bytes(48)
        nl.send(struct.pack("=IHHII", 16 + len(req), 20, 0x301, 1, 0) + req)
        for _ in range(100000):
            data = nl.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, typ = struct.unpack_from("=IH", data, off)
                if typ == 3 or length < 16:  # NLMSG_DONE
                    return ports
                if typ == 2:  # NLMSG_ERROR
                    raise OSError("sock_diag error")
                ports.add(struct.unpack_from("!H", data, off + 20)[0])
                off += (length + 3) & ~3
    except OSError:
        return {p for _, p, st in tcp_table() if st == "0A"}
    finally:
        nl.close()
    return ports


def listening(port):
    return port in listening_ports()


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def pick_ports(n):
    """n free TCP ports on 127.0.0.1, outside the ephemeral range so that no
    client connection can take one of them before its server binds it."""
    lo, hi = ephemeral_range()
    if lo > 12000:
        lo_c, hi_c = 10000, lo - 1
    else:
        lo_c, hi_c = hi + 1, 65535
        if hi_c - lo_c < 1000:
            lo_c, hi_c = 1024, 65535
    used = listening_ports()
    rng = random.SystemRandom()
    chosen = []
    for _ in range(5000):
        if len(chosen) == n:
            break
        p = rng.randint(lo_c, hi_c)
        if p in used or p in chosen:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            chosen.append(p)
        except OSError:
            pass
        finally:
            s.close()
    if len(chosen) < n:
        raise RuntimeError("could not find free ports")
    return chosen


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --------------------------------------------------------------------------- processes

_libc = None


def _child_setup():
    # die with the benchmark even if it is killed with SIGKILL
    try:
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Procs:
    """Every process the benchmark starts, each in its own session so that its
    whole group can be stopped."""

    def __init__(self):
        self.procs = []
        global _libc
        if _libc is None:
            try:
                _libc = ctypes.CDLL(None, use_errno=True)
            except OSError:
                _libc = False

    def start(self, argv, log_path=None, stdout=None, env=None):
        err = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env,
                                 stdout=stdout or subprocess.DEVNULL,
                                 stderr=err, start_new_session=True,
                                 preexec_fn=_child_setup if _libc else None)
        finally:
            if log_path:
                err.close()
        self.procs.append(p)
        return p

    def run(self, argv, timeout):
        """Run to completion; (returncode, stdout, stderr); killed on timeout."""
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True,
                             preexec_fn=_child_setup if _libc else None)
        self.procs.append(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(p)
            out, err = p.communicate(timeout=10)
            raise RuntimeError(f"{argv[0]} timed out after {timeout}s")
        finally:
            if p.poll() is None:
                self.kill(p)
            self.procs.remove(p)
        return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    @staticmethod
    def kill(p, sig=signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, p, timeout=5.0):
        """SIGTERM the group, SIGKILL after timeout; returns (rc, stopped_cleanly)."""
        clean = True
        if p.poll() is None:
            self.kill(p, signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                clean = False
                self.kill(p)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        # anything left in the group (e.g. nginx workers)
        self.kill(p)
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode, clean

    def stop_all(self):
        for p in list(reversed(self.procs)):
            if p.poll() is None:
                self.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in list(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            self.kill(p)
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


def wait_listening(ports, proc=None, timeout=15.0, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} during startup")
        lp = listening_ports()
        if all(p in lp for p in ports):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what}: ports {ports} not listening after {timeout}s")


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- data

_POOL = None
POOL_SIZE = 4 << 20
CHUNK = 65536


def pool():
    global _POOL
    if _POOL is None:
        _POOL = random.Random(0xFE77).randbytes(POOL_SIZE + CHUNK)
    return _POOL


def stream_chunk(seed, i):
    """Chunk i (64 KiB) of the deterministic pseudo-random stream `seed`: a tag
    with (seed, index) so misordering shows, then a slice of the random pool at
    an offset that depends on both."""
    off = ((seed * 0x9E3779B1) ^ (i * 0x85EBCA77)) % POOL_SIZE
    return struct.pack("!QQ", seed, i) + pool()[off:off + CHUNK - 16]


class StreamSender:
    """Yields the stream in pieces of irregular size (1 B .. 64 KiB)."""

    def __init__(self, seed, total):
        self.seed, self.total = seed, total
        self.sizes = random.Random(seed ^ 0x5A5A5A)
        self.sha = hashlib.sha256()

    def pieces(self):
        sent, i = 0, 0
        while sent < self.total:
            c = stream_chunk(self.seed, i)[:self.total - sent]
            i += 1
            self.sha.update(c)
            mv = memoryview(c)
            pos = 0
            while pos < len(c):
                r = self.sizes.random()
                n = (self.sizes.randint(1, 64) if r < 0.05 else
                     self.sizes.randint(65, 4096) if r < 0.2 else len(c))
                yield mv[pos:pos + n]
                pos += n
            sent += len(c)


class StreamChecker:
    """Compares received bytes with the expected stream as they arrive and
    hashes them; remembers the first wrong offset."""

    def __init__(self, seed, total):
        self.seed, self.total = seed, total
        self.sha = hashlib.sha256()
        self.got = 0
        self.bad_at = -1
        self._chunk, self._ci = b"", -1

    def feed(self, data):
        """Feed at most the remaining bytes; returns how many were consumed."""
        take = min(len(data), self.total - self.got)
        mv = memoryview(data)[:take]
        self.sha.update(mv)
        pos = 0
        while pos < take:
            ci, co = divmod(self.got + pos, CHUNK)
            if ci != self._ci:
                self._chunk, self._ci = stream_chunk(self.seed, ci), ci
            n = min(take - pos, CHUNK - co)
            if self.bad_at < 0 and mv[pos:pos + n] != self._chunk[co:co + n]:
                exp = self._chunk[co:co + n]
                seg = bytes(mv[pos:pos + n])
                k = next(j for j in range(n) if seg[j] != exp[j])
                self.bad_at = self.got + pos + k
            pos += n
        self.got += take
        return take

    def done(self):
        return self.got >= self.total


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


# Integrity protocol, client -> server header:
#   magic "FBI1", mode (B: both ways at once, H: client half-closes after its
#   upload and only then gets its download), seed, up_len, down_len.
# After the upload the sender appends the SHA-256 of what it sent.  The server
# sends: download, SHA-256 of the download, verdict byte (0 ok, 1 wrong bytes,
# 2 digest mismatch, 3 short), first wrong offset (-1 if none); then it closes.
HDR = struct.Struct("!4scxxxQQQ")
TRAILER = struct.Struct("!32sBq")


def _send_stream(sock, sender, errs, half_close=False, digest=True):
    try:
        for piece in sender.pieces():
            sock.sendall(piece)
        if digest:
            sock.sendall(sender.sha.digest())
        if half_close:
            sock.shutdown(socket.SHUT_WR)
    except Exception as e:  # reported by the caller
        errs.append(f"send: {type(e).__name__}: {e}")


def _recv_stream(sock, checker):
    buf = bytearray(CHUNK)
    rng = random.Random(checker.seed ^ 0x777)
    while not checker.done():
        want = min(rng.choice((1, 100, 1500, 16384, CHUNK, CHUNK)), checker.total - checker.got)
        n = sock.recv_into(buf, want)
        if n == 0:
            raise EOFError(f"EOF after {checker.got} of {checker.total} bytes")
        checker.feed(memoryview(buf)[:n])


def _read_to_eof(sock, limit=1 << 20):
    extra = 0
    for _ in range(100000):
        d = sock.recv(65536)
        if not d:
            return extra
        extra += len(d)
        if extra > limit:
            break
    return extra


# --------------------------------------------------------------------------- helper servers

def serve(echo_ports, integ_port):
    """Backend for the echo and integrity workloads (runs as a child process)."""
    raise_nofile()
    stats = {"conns": 0, "ok": 0, "errors": []}
    lock = threading.Lock()

    def integ_conn(sock):
        sock.settimeout(60)
        mode = b"?"
        try:
            hdr = recv_exact(sock, HDR.size)
            if hdr[:4] == b"STAT":
                with lock:
                    sock.sendall(json.dumps(stats).encode())
                return
            magic, mode, seed, up_len, down_len = HDR.unpack(hdr)
            if magic != b"FBI1":
                raise ValueError(f"bad header {hdr!r}")
            with lock:
                stats["conns"] += 1
            sender = StreamSender(seed ^ 0xD0D0D0D0, down_len)
            serrs = []
            t = None
            if mode == b"B":
                t = threading.Thread(target=_send_stream, args=(sock, sender, serrs, False, False),
                                     daemon=True)
                t.start()
            checker = StreamChecker(seed, up_len)
            verdict, peer_digest = 0, b""
            try:
                _recv_stream(sock, checker)
                peer_digest = recv_exact(sock, 32)
            except EOFError:
                verdict = 3
            if verdict == 0 and checker.bad_at >= 0:
                verdict = 1
            elif verdict == 0 and peer_digest != checker.sha.digest():
                verdict = 2
            if mode == b"H":
                extra = _read_to_eof(sock)  # the client's FIN must arrive here
                if extra:
                    verdict = verdict or 1
                t = threading.Thread(target=_send_stream, args=(sock, sender, serrs, False, False),
                                     daemon=True)
                t.start()
            t.join(120)
            if t.is_alive():
                serrs.append("download stalled")
            # the sender has appended its digest; now the verdict on the upload
            sock.sendall(TRAILER.pack(sender.sha.digest(), verdict, checker.bad_at))
            sock.shutdown(socket.SHUT_WR)
            extra = _read_to_eof(sock) if mode == b"B" else 0
            with lock:
                if verdict == 0 and not serrs and not extra:
                    stats["ok"] += 1
                elif len(stats["errors"]) < 1000:
                    stats["errors"].append(
                        f"mode={mode.decode()} seed={seed} up={up_len} verdict={verdict} bad_at={checker.bad_at} "
                        f"got={checker.got} extra={extra} {serrs}")
        except Exception as e:
            with lock:
                if len(stats["errors"]) < 1000:
                    stats["errors"].append(f"mode={mode.decode(errors='replace')} {type(e).__name__}: {e}")
        finally:
            sock.close()

    def integ_accept(ls):
        for _ in range(1 << 40):  # ends with the process
            try:
                s, _ = ls.accept()
            except OSError:
                continue
            threading.Thread(target=integ_conn, args=(s,), daemon=True).start()

    ils = socket.socket()
    ils.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ils.bind(("127.0.0.1", integ_port))
    ils.listen(1024)
    threading.Thread(target=integ_accept, args=(ils,), daemon=True).start()

    # echo: one epoll loop, reads stop while a reply is pending
    ep = select.epoll()
    lsocks = {}
    for port in echo_ports:
        els = socket.socket()
        els.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        els.bind(("127.0.0.1", port))
        els.listen(4096)
        els.setblocking(False)
        ep.register(els.fileno(), select.EPOLLIN)
        lsocks[els.fileno()] = els
    conns, pending = {}, {}
    IN, OUT = select.EPOLLIN, select.EPOLLOUT
    parent, end = os.getppid(), time.monotonic() + 24 * 3600
    while os.getppid() == parent and time.monotonic() < end:  # never outlives the benchmark
        for fd, ev in ep.poll(1.0, 1024):
            els = lsocks.get(fd)
            if els is not None:
                for _ in range(256):
                    try:
                        s, _ = els.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    s.setblocking(False)
                    conns[s.fileno()] = s
                    ep.register(s.fileno(), IN)
                continue
            s = conns.get(fd)
            if s is None:
                continue
            try:
                if fd in pending:
                    data = pending.pop(fd)
                else:
                    try:
                        data = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    if not data:
                        raise EOFError
                try:
                    n = s.send(data)
                except (BlockingIOError, InterruptedError):
                    n = 0
                if n < len(data):
                    pending[fd] = data[n:]
                    ep.modify(fd, OUT)
                elif ev & OUT:
                    ep.modify(fd, IN)
            except (OSError, EOFError):
                ep.unregister(fd)
                pending.pop(fd, None)
                conns.pop(fd).close()


# --------------------------------------------------------------------------- subjects

class Setup:
    def __init__(self, args, procs, work):
        self.args, self.procs, self.work = args, procs, work
        self.back = {}       # route -> backend port
        self.front = {}      # subject -> {route: port}
        self.proc = {}       # subject -> Popen
        self.logs = {}       # subject -> log path
        self.events = {}     # subject -> [notes about crashes/restarts]
        self.iperf_proc = None

    # backends -------------------------------------------------------------
    def start_backends(self, subjects):
        a, w = self.args, self.work
        pi, ph, pg = pick_ports(3)
        self.back = {"iperf": pi, "http": ph, "integ": pg}
        # one echo port per subject: the many short-lived connections of one
        # subject (and their TIME_WAIT) never share 4-tuples with another's
        self.back_echo = dict(zip(subjects, pick_ports(len(subjects))))
        self.start_iperf_server()
        www = os.path.join(w, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "1k"), "wb") as f:
            f.write(random.Random(1).randbytes(1024))
        os.chmod(www, 0o755)
        nw = a.backend_workers
        conf = os.path.join(w, "backend-nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""{self._nginx_common("backend", nw)}
http {{
  access_log off; server_tokens off; default_type application/octet-stream;
  keepalive_requests 100000000; keepalive_timeout 300s; client_header_timeout 300s;
  open_file_cache max=16 inactive=3600s; open_file_cache_valid 3600s;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  client_body_temp_path {w}/tmp/body; proxy_temp_path {w}/tmp/proxy;
  fastcgi_temp_path {w}/tmp/fastcgi; uwsgi_temp_path {w}/tmp/uwsgi; scgi_temp_path {w}/tmp/scgi;
  server {{ listen 127.0.0.1:{ph} backlog=4096 reuseport; root {www}; }}
}}
""")
        os.makedirs(os.path.join(w, "tmp"), exist_ok=True)
        p = self.procs.start(["nginx", "-p", w, "-c", conf, "-e", f"{w}/backend-nginx.err"])
        wait_listening([ph], p, what="backend nginx")
        self.backend_nginx = p
        eports = list(self.back_echo.values())
        p = self.procs.start([sys.executable, os.path.abspath(__file__), "--serve",
                              ",".join(map(str, eports)), str(pg)],
                             log_path=os.path.join(w, "helper.err"))
        wait_listening(eports + [pg], p, what="echo/integrity backend")
        self.helper = p

    def start_iperf_server(self):
        if self.iperf_proc is not None:
            self.procs.stop(self.iperf_proc, timeout=2)
        port = self.back["iperf"]
        self.iperf_proc = self.procs.start(["iperf3", "-s", "-p", str(port), "-B", "127.0.0.1"],
                                           log_path=os.path.join(self.work, "iperf3.err"))
        wait_listening([port], self.iperf_proc, what="iperf3 server")

    def _nginx_common(self, name, workers):
        w = self.work
        user = "user root;" if os.geteuid() == 0 else ""
        master = "on" if workers > 1 or name != "backend" else "off"
        return f"""daemon off; master_process {master}; worker_processes {workers}; {user}
error_log {w}/{name}-nginx.err error; pid {w}/{name}-nginx.pid;
worker_rlimit_nofile {max(1024, self.nofile - 100)};
events {{ worker_connections {max(1024, self.nofile - 500)}; }}"""

    # proxies --------------------------------------------------------------
    def start_subject(self, s):
        bp = dict(self.back, echo=self.back_echo[s])
        if s == "direct":
            self.front[s] = bp
            return
        if s not in self.front:
            self.front[s] = dict(zip(ROUTES, pick_ports(len(ROUTES))))
        fp, w, n = self.front[s], self.work, self.args.workers
        logp = os.path.join(w, f"{s}.log")
        self.logs[s] = logp
        if s == "haproxy":
            maxconn = min(9800, (self.nofile - 200) // 2)
            conf = os.path.join(w, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write(f"""global
  nbthread {n}
  maxconn {maxconn}
defaults
  mode tcp
  maxconn {maxconn}
  timeout connect 5s
  timeout client 300s
  timeout server 300s
""")
                for r in ROUTES:
                    f.write(f"listen {r}\n  bind 127.0.0.1:{fp[r]}\n  server s1 127.0.0.1:{bp[r]}\n")
            argv = ["haproxy", "-db", "-f", conf]
        elif s == "nginx":
            conf = os.path.join(w, "proxy-nginx.conf")
            with open(conf, "w") as f:
                f.write(f"load_module {NGINX_STREAM_MODULE};\n{self._nginx_common('proxy', n)}\n")
                f.write("stream {\n  proxy_connect_timeout 5s; proxy_timeout 300s;\n")
                for r in ROUTES:
                    f.write(f"  server {{ listen 127.0.0.1:{fp[r]} backlog=4096; "
                            f"proxy_pass 127.0.0.1:{bp[r]}; }}\n")
                f.write("}\n")
            argv = ["nginx", "-p", w, "-c", conf, "-e", f"{w}/proxy-nginx.err"]
        elif s in FERRIES:
            # a directory of its own: ferry watches the config's directory
            os.makedirs(os.path.join(w, f"{s}-conf"), exist_ok=True)
            conf = os.path.join(w, f"{s}-conf", "ferry.yaml")
            splice = {"ferry-splice": ", splice: true",
                      "ferry-16k": ", buffer_max: 16KiB"}.get(s, "")
            with open(conf, "w") as f:
                f.write(f"workers: {n}\nshutdown_timeout: 2s\n"
                        + ("coalesce: off\n" if s == "ferry-eager" else "")
                        + 
                        f"log: {{level: {self.args.ferry_log_level}, format: text, "
                        f"access: {'true' if self.args.ferry_access_log else 'false'}}}\n"
                        f"defaults: {{connect_timeout: 5s, idle_timeout: 300s{splice}}}\nroutes:\n")
                for r in ROUTES:
                    f.write(f"  - name: {r}\n    listen: 127.0.0.1:{fp[r]}\n"
                            f"    backends:\n      - 127.0.0.1:{bp[r]}\n")
            argv = [self.args.ferry, "-c", conf]
        else:
            raise ValueError(s)
        with open(logp, "a") as f:
            f.write(f"--- start {datetime.datetime.utcnow().isoformat()}Z\n")
        env = None
        if s.startswith("ferry") and self.args.ferry_env:
            env = dict(os.environ)
            for kv in self.args.ferry_env:
                k, _, v = kv.partition("=")
                env[k] = v
        p = self.procs.start(argv, log_path=logp, env=env)
        try:
            wait_listening(list(fp.values()), p, what=s)
        except RuntimeError as e:
            raise RuntimeError(f"{e}; log: {tail(logp)} {tail(os.path.join(w, 'proxy-nginx.err'))}")
        self.proc[s] = p

    def pids(self, s):
        p = self.proc.get(s)
        return process_tree(p.pid) if p else []

    def ensure_alive(self, s):
        """Restart a subject that died (bounded); notes the death."""
        p = self.proc.get(s)
        if p is None or p.poll() is None:
            return
        note = f"{s} exited with status {p.returncode}: {tail(self.logs.get(s, ''), 3)}"
        self.events.setdefault(s, []).append(note)
        log("!! " + note)
        if len(self.events[s]) > 3:
            raise RuntimeError(f"{s} keeps dying")
        self.procs.stop(p, timeout=1)
        self.start_subject(s)


# --------------------------------------------------------------------------- workloads

def run_iperf(setup, port, seconds, parallel, reverse):
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J",
            "-P", str(parallel), "--connect-timeout", "5000"]
    if reverse:
        argv.append("-R")
    last = ""
    for attempt in range(3):
        rc, out, err = setup.procs.run(argv, timeout=seconds + 30)
        try:
            data = json.loads(out)
            if "error" in data:
                raise ValueError(data["error"])
            recv = data["end"]["sum_received"]
            return {"gbps": recv["bits_per_second"] / 1e9, "bytes": recv["bytes"]}
        except (ValueError, KeyError) as e:
            last = f"{e}; {err.strip()[-200:]}"
            log(f"   iperf3 attempt {attempt + 1} failed ({last}); restarting the iperf3 server")
            setup.start_iperf_server()
            time.sleep(0.5)
    raise RuntimeError(f"iperf3 failed: {last}")


def parse_wrk(text):
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),\s+([\d.]+)(\w+) read", text)
    if not m:
        raise RuntimeError(f"cannot parse wrk output: {text[-300:]}")
    reqs = int(m.group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = None
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if m:
        p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    errors = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(v):
                errors[k] = int(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors["non2xx"] = int(m.group(1))
    return {"rps": rps, "p99_ms": p99, "requests": reqs, "errors": errors}


def run_wrk(setup, port, seconds, conns, close):
    argv = ["wrk", "-t", "1", "-c", str(conns), "-d", f"{seconds}s", "--latency",
            "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://127.0.0.1:{port}/1k")
    rc, out, err = setup.procs.run(argv, timeout=seconds + 30)
    if rc != 0:
        raise RuntimeError(f"wrk exited {rc}: {err.strip()[-200:]}")
    return parse_wrk(out)


def src_addresses(n):
    """Enough 127.0.0.x source addresses that n connections to one destination
    fit in half the ephemeral range per address."""
    lo, hi = ephemeral_range()
    per = max(1000, (hi - lo + 1) // 2)
    k = min(32, max(1, -(-n // per)))
    return [f"127.0.0.{i}" for i in range(1, k + 1)]


class _Conn:
    __slots__ = ("sock", "fd", "idx", "state", "out", "exp", "got", "seq", "ex", "t0", "src")


def hold_connections(port, n, *, active_seconds, msg_max, pids, settle=0.0,
                     ramp_timeout=120.0, inflight=256):
    """Open n connections to 127.0.0.1:port (an echo service), one echoed
    exchange each; once all are up, sample the proxy; then, for
    active_seconds, every connection echoes messages back to back. Returns
    counts, errors, and the samples taken while all were open."""
    rng = random.Random(n)
    P = pool()
    srcs = src_addresses(n)
    ep = select.epoll()
    conns = {}
    res = {"n": n, "established": 0, "failed": 0, "exchanges": 0, "errors": {}, "examples": [],
           "sources": len(srcs)}
    IN, OUT = select.EPOLLIN, select.EPOLLOUT
    state = {"started": 0, "pending": 0}

    def fail(c, kind, detail=""):
        res["errors"][kind] = res["errors"].get(kind, 0) + 1
        if len(res["examples"]) < 8:
            res["examples"].append(f"conn {c.idx} (src {c.src}, {c.ex} exchanges, {c.state}): {kind} {detail}".strip())
        if c.state in ("connecting", "first"):
            state["pending"] -= 1
        elif c.state in ("ready", "wait", "done"):
            res["dropped"] = res.get("dropped", 0) + 1
        res["failed"] += 1
        c.state = "dead"
        try:
            ep.unregister(c.fd)
        except OSError:
            pass
        c.sock.close()
        conns.pop(c.fd, None)

    def new_message(c, size):
        c.seq += 1
        off = rng.randrange(POOL_SIZE)
        c.exp = struct.pack("!II", c.idx, c.seq) + P[off:off + max(0, size - 8)]
        c.out = memoryview(c.exp)
        c.got = 0
        c.t0 = time.monotonic()

    def flush(c):
        try:
            k = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            k = 0
        c.out = c.out[k:]
        ep.modify(c.fd, IN | OUT if len(c.out) else IN)

    def open_one():
        i = state["started"]
        state["started"] += 1
        state["pending"] += 1
        s = socket.socket()
        c = _Conn()
        c.sock, c.fd, c.idx, c.state, c.seq, c.ex = s, s.fileno(), i, "connecting", 0, 0
        c.src = srcs[i % len(srcs)]
        c.out, c.exp, c.got, c.t0 = memoryview(b""), b"", 0, time.monotonic()
        conns[c.fd] = c
        s.setblocking(False)
        try:
            if c.src != "127.0.0.1":
                s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((c.src, 0))
            rc = s.connect_ex(("127.0.0.1", port))
        except OSError as e:
            ep.register(c.fd, IN)
            fail(c, "connect", os.strerror(e.errno or 0))
            return
        ep.register(c.fd, IN | OUT)
        if rc not in (0, errno.EINPROGRESS):
            fail(c, "connect", os.strerror(rc))

    def on_event(c, ev):
        if c.state == "connecting":
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return fail(c, "connect", os.strerror(err))
            if not ev & OUT:
                return
            c.state = "first"
            new_message(c, 64)
            return flush(c)
        if ev & OUT and len(c.out):
            flush(c)
        if ev & (IN | select.EPOLLHUP | select.EPOLLERR):
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                return fail(c, "reset" if e.errno == errno.ECONNRESET else "recv", os.strerror(e.errno or 0))
            if not data:
                return fail(c, "eof", f"after {c.got} of {len(c.exp)} echoed bytes")
            if c.state not in ("first", "wait") or c.got + len(data) > len(c.exp) - len(c.out):
                return fail(c, "unexpected_bytes", f"{len(data)} bytes")
            if data != c.exp[c.got:c.got + len(data)]:
                return fail(c, "wrong_bytes", f"at offset {c.got} of message {c.seq}")
            c.got += len(data)
            if c.got == len(c.exp):
                if c.state == "first":
                    state["pending"] -= 1
                    res["established"] += 1
                    c.state = "ready"
                else:
                    c.ex += 1
                    res["exchanges"] += 1
                    c.state = "ready"
                if phase[0] == "active":
                    c.state = "wait"
                    new_message(c, rng.randint(8, msg_max))
                    flush(c)

    phase = ["ramp"]
    t_start = time.monotonic()
    deadline = t_start + ramp_timeout
    last_scan = t_start
    active_end = drain_end = settle_end = 0.0
    for _ in range(10_000_000):  # bounded; exits through the phases below
        now = time.monotonic()
        if phase[0] == "ramp":
            while state["started"] < n and state["pending"] < inflight:
                open_one()
            if state["started"] >= n and state["pending"] <= 0:
                res["ramp_s"] = now - t_start
                phase[0] = "settle"
                settle_end = now + settle
                continue
            if now > deadline:
                for c in list(conns.values()):
                    if c.state in ("connecting", "first"):
                        fail(c, "timeout", f"not established after {ramp_timeout:.0f}s")
                continue
            if now - last_scan > 1.0:
                last_scan = now
                for c in list(conns.values()):
                    if c.state in ("connecting", "first") and now - c.t0 > 30:
                        fail(c, "timeout", "no connection/echo within 30s")
        elif phase[0] == "settle":
            # keep polling while everything is held, so drops are noticed
            if now >= settle_end:
                res["rss"] = rss_bytes(pids)
                res["fds"] = fd_count(pids)
                res["open"] = len(conns)
                if active_seconds <= 0:
                    break
                phase[0] = "active"
                res["cpu0"] = cpu_seconds(pids)
                active_end = time.monotonic() + active_seconds
                for c in list(conns.values()):
                    if c.state == "ready":
                        c.state = "wait"
                        new_message(c, rng.randint(8, msg_max))
                        flush(c)
                continue
        elif phase[0] == "active" and now >= active_end:
            phase[0] = "drain"
            drain_end = now + 30
            res["active_s"] = active_seconds
            res["rss_active"] = rss_bytes(pids)
        elif phase[0] == "drain":
            waiting = [c for c in conns.values() if c.state == "wait"]
            if not waiting:
                break
            if now > drain_end:
                for c in waiting:
                    fail(c, "stall", f"echo of message {c.seq} incomplete ({c.got}/{len(c.exp)}) for 30s")
                break
        for fd, ev in ep.poll(0.05, 4096):
            c = conns.get(fd)
            if c is not None:
                on_event(c, ev)
    if "cpu0" in res:
        res["cpu"] = cpu_seconds(pids) - res.pop("cpu0")
    exs = [c.ex for c in conns.values()]
    res["min_exchanges"] = min(exs) if exs else 0
    res["alive_at_end"] = len(conns)
    for c in list(conns.values()):
        c.sock.close()
    ep.close()
    return res


def run_idle(setup, s, n):
    pids = setup.pids(s)
    time.sleep(0.3)
    before = rss_bytes(pids)
    r = hold_connections(setup.front[s]["echo"], n, active_seconds=0, msg_max=64,
                         pids=pids, settle=1.0)
    time.sleep(0.5)
    r["rss_after_close"] = rss_bytes(setup.pids(s))
    r["rss_before"] = before
    held = r["established"] - r.get("dropped", 0)
    r["bytes_per_conn"] = (r["rss"] - before) / held if held and pids else None
    r["ok"] = r["failed"] == 0
    return r


def run_active(setup, s, n, seconds):
    pids = setup.pids(s)
    before = rss_bytes(pids)
    r = hold_connections(setup.front[s]["echo"], n, active_seconds=seconds, msg_max=16384,
                         pids=pids, settle=0.2)
    r["rss_before"] = before
    r["ok"] = (r["failed"] == 0 and r["established"] == n and r["min_exchanges"] >= 1)
    if r["min_exchanges"] < 1 and not r["failed"]:
        r["examples"].append("some connections completed no exchange in the active phase (starved)")
    return r


def integrity_specs(mb):
    big = mb << 20
    specs = [("B", big, big), ("B", big, big), ("B", big, 0), ("B", 0, big),
             ("B", big // 2, big), ("B", big, big // 3), ("B", 0, 0), ("B", 1, 1),
             ("B", 1, 70000), ("B", 70000, 1), ("B", 16383, 16385), ("H", big // 4, big // 4)]
    rng = random.Random(mb)
    small = [("B", rng.choice((0, 1, 5, 1000, 65536, 200000)), rng.choice((0, 1, 7, 1000, 65537, 300000)))
             for _ in range(60)]
    return specs, small


def integrity_client(port, mode, seed, up, down, timeout=60):
    """One connection; returns None if every byte arrived intact, else a reason."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(timeout)
    try:
        s.sendall(HDR.pack(b"FBI1", mode.encode(), seed, up, down))
        serrs = []
        t = threading.Thread(target=_send_stream, args=(s, StreamSender(seed, up), serrs, mode == "H"),
                             daemon=True)
        t.start()
        checker = StreamChecker(seed ^ 0xD0D0D0D0, down)
        try:
            _recv_stream(s, checker)
            tr = recv_exact(s, TRAILER.size)
        except (EOFError, OSError) as e:
            t.join(timeout)
            return f"download: {type(e).__name__}: {e} (got {checker.got}/{down}) {serrs}"
        digest, verdict, bad_at = TRAILER.unpack(tr)
        extra = _read_to_eof(s)
        t.join(timeout)
        if t.is_alive():
            return "upload stalled"
        problems = []
        if serrs:
            problems.append(f"upload: {serrs[0]}")
        if checker.bad_at >= 0:
            problems.append(f"download wrong from byte {checker.bad_at}")
        if digest != checker.sha.digest():
            problems.append("download SHA-256 mismatch")
        if verdict:
            problems.append({1: f"upload wrong from byte {bad_at}", 2: "upload SHA-256 mismatch",
                             3: "upload short"}.get(verdict, f"verdict {verdict}"))
        if extra:
            problems.append(f"{extra} bytes after the end")
        return "; ".join(problems) or None
    finally:
        s.close()


def integrity_stats(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    try:
        s.sendall(b"STAT" + b"\0" * (HDR.size - 4))
        return json.loads(_recv_all(s))
    finally:
        s.close()


def _recv_all(s):
    buf = b""
    for _ in range(10000):
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf


def run_integrity(setup, s, mb):
    port = setup.front[s]["integ"]
    specs, small = integrity_specs(mb)
    before = integrity_stats(setup.back["integ"])
    results = {}
    lock = threading.Lock()
    base = random.Random(s).randrange(1 << 40)

    def one(key, mode, seed, up, down):
        try:
            why = integrity_client(port, mode, seed, up, down)
        except Exception as e:
            why = f"{type(e).__name__}: {e}"
        with lock:
            results[key] = (mode, up, down, why)

    def small_worker(k):
        for j, (mode, up, down) in enumerate(small[k::4]):
            one(f"small{k}.{j}", mode, base + 1000 + k * 100 + j, up, down)

    pids = setup.pids(s)
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    threads = [threading.Thread(target=one, args=(f"big{i}", m, base + i, u, d), daemon=True)
               for i, (m, u, d) in enumerate(specs)]
    threads += [threading.Thread(target=small_worker, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 600
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(pids) - cpu0
    time.sleep(0.2)
    after = integrity_stats(setup.back["integ"])
    total = sum(u + d for m, u, d in specs + small)
    bad = {k: v for k, v in results.items() if v[3] and v[0] == "B"}
    half = [v for v in results.values() if v[0] == "H"]
    missing = len(specs) + len(small) - len(results)
    new_errors = after["errors"][len(before["errors"]):]
    server_errors = [e for e in new_errors if not e.startswith("mode=H")]
    half_server_errors = [e for e in new_errors if e.startswith("mode=H")]
    r = {"connections": len(specs) + len(small), "bytes": total, "seconds": elapsed,
         "mbps": total / elapsed / 1e6 if elapsed else None,
         "cpu_s_per_gb": cpu / (total / 1e9) if pids and total else None,
         "failures": [f"{k} ({m} up={u} down={d}): {why}" for k, (m, u, d, why) in sorted(bad.items())][:10],
         "server_errors": server_errors[:10], "unfinished": missing,
         "ok": not bad and not missing and not server_errors,
         "halfclose_ok": bool(half) and all(v[3] is None for v in half),
         "halfclose_detail": [v[3] for v in half if v[3]] + half_server_errors}
    return r


# --------------------------------------------------------------------------- run

def machine_counters():
    """(busy CPU seconds over all CPUs, context switches) since boot, from /proc/stat."""
    busy, ctxt = 0.0, 0
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        for line in f:
            p = line.split()
            if p[0] == "cpu":
                v = [int(x) for x in p[1:]]
                busy = (sum(v[:8]) - v[3] - v[4]) / tick  # all but idle and iowait
            elif p[0] == "ctxt":
                ctxt = int(p[1])
    return busy, ctxt


def measure(setup, s, w, args):
    pids = setup.pids(s)
    fp = setup.front[s]
    cpu0 = cpu_seconds(pids)
    if w.startswith("tput"):
        r = run_iperf(setup, fp["iperf"], args.seconds, 8 if w.startswith("tput8") else 1, w.endswith("r"))
        cpu = cpu_seconds(pids) - cpu0
        r["cpu_s_per_gb"] = cpu / (r["bytes"] / 1e9) if pids and r["bytes"] else None
    elif w in ("rps", "cps"):
        user0 = cpu_times(pids)[0]
        m0 = machine_counters()
        r = run_wrk(setup, fp["http"], args.seconds, 64, w == "cps")
        m1 = machine_counters()
        cpu = cpu_seconds(pids) - cpu0
        user = cpu_times(pids)[0] - user0
        n = r["requests"]
        r["cpu_us"] = cpu / n * 1e6 if pids and n else None
        # the proxy's own code; the rest is the kernel's TCP, epoll and scheduling work
        r["cpu_user_us"] = user / n * 1e6 if pids and n else None
        # the whole machine: load generator, backend and proxy (and anything else running)
        r["machine_us"] = (m1[0] - m0[0]) / n * 1e6 if n else None
        r["ctxt_per_req"] = (m1[1] - m0[1]) / n if n else None
    elif w == "idle":
        r = run_idle(setup, s, args.idle_conns)
    elif w == "active":
        r = run_active(setup, s, args.active_conns, args.active_seconds)
    elif w == "integrity":
        r = run_integrity(setup, s, args.integrity_mb)
    else:
        raise ValueError(w)
    return r


def short(r, w):
    if "error" in r:
        return "ERROR " + r["error"][:150]
    if w.startswith("tput"):
        return f"{r['gbps']:.2f} Gbit/s  cpu {fmt(r.get('cpu_s_per_gb'), 3)} s/GB"
    if w in ("rps", "cps"):
        return (f"{r['rps']:.0f} req/s  p99 {fmt(r['p99_ms'], 2)} ms  cpu {fmt(r.get('cpu_us'), 1)} us"
                + (f"  errors {r['errors']}" if r["errors"] else ""))
    if w == "idle":
        return f"{fmt(r['bytes_per_conn'], 0)} B/conn, {r['established']}/{r['n']} held, errors {r['errors']}"
    if w == "active":
        return (f"{r['established']}/{r['n']} up in {r.get('ramp_s', 0):.1f}s, {r['exchanges']} exchanges "
                f"(min {r['min_exchanges']}/conn), errors {r['errors']}")
    if w == "integrity":
        return (f"{'ok' if r['ok'] else 'FAILED'} {r['bytes'] / 1e6:.0f} MB in {r['seconds']:.1f}s, "
                f"half-close {'ok' if r['halfclose_ok'] else 'FAILED'}")
    return str(r)


def fmt(v, nd):
    if v is None:
        return "-"
    return f"{v:.{nd}f}"


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


PER_ROUND = {"": "gbps", "_cpu": "cpu_s_per_gb"}
PER_ROUND_HTTP = {"": "rps", "_p99": "p99_ms", "_cpu": "cpu_us", "_ctxt": "ctxt_per_req"}


def summarize(raw, subjects):
    S = {}
    for s in subjects:
        out = {"_rounds": {}}
        for w, runs in raw[s].items():
            good = [r for r in runs if "error" not in r]
            out[w + "_failed_runs"] = len(runs) - len(good)
            if not good:
                continue
            if w in TIMED:
                fields = PER_ROUND if w.startswith("tput") else PER_ROUND_HTTP
                for suffix, field in fields.items():
                    out["_rounds"][w + suffix] = {r["round"]: r.get(field) for r in good
                                                  if r.get(field) is not None}
            if w.startswith("tput"):
                out[w] = median(r["gbps"] for r in good)
                out[w + "_cpu"] = median(r.get("cpu_s_per_gb") for r in good)
            elif w in ("rps", "cps"):
                out[w] = median(r["rps"] for r in good)
                out[w + "_p99"] = median(r["p99_ms"] for r in good)
                out[w + "_cpu"] = median(r.get("cpu_us") for r in good)
                out[w + "_ucpu"] = median(r.get("cpu_user_us") for r in good)
                out[w + "_mcpu"] = median(r.get("machine_us") for r in good)
                out[w + "_ctxt"] = median(r.get("ctxt_per_req") for r in good)
                out[w + "_errors"] = sum(sum(r["errors"].values()) for r in good)
            elif w == "idle":
                r = good[0]
                out["idle"] = r["bytes_per_conn"]
                out["idle_held"] = r["established"] - r.get("dropped", 0)
                out["idle_errors"] = sum(r["errors"].values())
            elif w == "active":
                r = good[0]
                out["active_ok"] = r["ok"]
                out["active_up"] = r["established"]
                out["active_errors"] = sum(r["errors"].values())
                out["active_exchanges"] = r["exchanges"]
                held = r["established"] - r.get("dropped", 0)
                out["active_rss_per_conn"] = ((r["rss"] - r["rss_before"]) / held
                                              if held and r.get("rss") else None)
            elif w == "integrity":
                r = good[0]
                out["integrity_ok"] = r["ok"]
                out["integrity_mb"] = r["bytes"] / 1e6
                out["integrity_cpu"] = r["cpu_s_per_gb"]
                out["halfclose_ok"] = r["halfclose_ok"]
        S[s] = out
    return S


def kfmt(v):
    if v is None:
        return "-"
    return f"{v / 1000:.1f}k" if v >= 10000 else f"{v:.0f}"


TABLE_ROWS = [
    # (workload, key, label, unit, formatter)
    ("tput1", "tput1", "iperf3 1 stream", "Gbit/s", lambda v: fmt(v, 2)),
    ("tput1", "tput1_cpu", "", "proxy CPU s/GB", lambda v: fmt(v, 3)),
    ("tput1r", "tput1r", "iperf3 1 stream -R", "Gbit/s", lambda v: fmt(v, 2)),
    ("tput1r", "tput1r_cpu", "", "proxy CPU s/GB", lambda v: fmt(v, 3)),
    ("tput8", "tput8", "iperf3 8 streams", "Gbit/s", lambda v: fmt(v, 2)),
    ("tput8", "tput8_cpu", "", "proxy CPU s/GB", lambda v: fmt(v, 3)),
    ("tput8r", "tput8r", "iperf3 8 streams -R", "Gbit/s", lambda v: fmt(v, 2)),
    ("tput8r", "tput8r_cpu", "", "proxy CPU s/GB", lambda v: fmt(v, 3)),
    ("rps", "rps", "wrk 64 keep-alive conns, 1 KiB", "req/s", kfmt),
    ("rps", "rps_p99", "", "p99 ms", lambda v: fmt(v, 2)),
    ("rps", "rps_cpu", "", "proxy CPU us/req", lambda v: fmt(v, 1)),
    ("rps", "rps_ucpu", "", "of which user space", lambda v: fmt(v, 1)),
    ("rps", "rps_mcpu", "", "machine CPU us/req", lambda v: fmt(v, 1)),
    ("rps", "rps_ctxt", "", "machine context switches/req", lambda v: fmt(v, 2)),
    ("rps", "rps_errors", "", "errors", str),
    ("cps", "cps", "wrk new conn per request", "req/s", kfmt),
    ("cps", "cps_p99", "", "p99 ms", lambda v: fmt(v, 2)),
    ("cps", "cps_cpu", "", "proxy CPU us/conn", lambda v: fmt(v, 1)),
    ("cps", "cps_ucpu", "", "of which user space", lambda v: fmt(v, 1)),
    ("cps", "cps_mcpu", "", "machine CPU us/conn", lambda v: fmt(v, 1)),
    ("cps", "cps_ctxt", "", "machine context switches/conn", lambda v: fmt(v, 2)),
    ("cps", "cps_errors", "", "errors", str),
    ("idle", "idle", "idle conns held", "RSS bytes/conn", lambda v: fmt(v, 0)),
    ("idle", "idle_held", "", "held", str),
    ("active", "active_ok", "concurrent active conns", "ok", lambda v: "ok" if v else "FAIL"),
    ("active", "active_up", "", "established", str),
    ("active", "active_errors", "", "errors", str),
    ("active", "active_exchanges", "", "echo exchanges", str),
    ("active", "active_rss_per_conn", "", "RSS bytes/active conn", lambda v: fmt(v, 0)),
    ("integrity", "integrity_ok", "integrity (SHA-256)", "ok", lambda v: "ok" if v else "FAIL"),
    ("integrity", "integrity_mb", "", "MB verified", lambda v: fmt(v, 0)),
    ("integrity", "halfclose_ok", "", "half-close", lambda v: "ok" if v else "FAIL"),
]


def print_table(S, subjects, workloads, args):
    print("| workload | metric | " + " | ".join(subjects) + " |")
    print("|---|---|" + "---|" * len(subjects))
    for w, key, label, unit, f in TABLE_ROWS:
        if w not in workloads:
            continue
        if key == "idle":
            unit += f" ({args.idle_conns} held)"
        if key == "active_ok":
            label = f"{args.active_conns} {label}"
        cells = []
        for s in subjects:
            v = S[s].get(key)
            if v is None and S[s].get(w + "_failed_runs"):
                cells.append("ERR")
            else:
                cells.append("-" if v is None else f(v))
        print(f"| {label} | {unit} | " + " | ".join(cells) + " |")


def targets(S, workloads):
    """[(label, ferry, haproxy, ratio_or_None, target_text, passed)]"""
    f, h = S.get("ferry", {}), S.get("haproxy", {})
    rows = []

    def ratio(key, label, op, bound, fmtv):
        """Median of the per-round ratios (ferry and HAProxy ran close together
        in each round, so slow drifts in the machine's load cancel out);
        the ratio of the medians when rounds cannot be paired."""
        a, b = f.get(key), h.get(key)
        if a is None or b is None or not b:
            rows.append((label, fmtv(a), fmtv(b), None, f"{op} {bound:.2f}x", None))
            return
        fa, hb = f.get("_rounds", {}).get(key, {}), h.get("_rounds", {}).get(key, {})
        pairs = [fa[k] / hb[k] for k in fa if k in hb and hb[k]]
        r = statistics.median(pairs) if pairs else a / b
        spread = f"{min(pairs):.2f}-{max(pairs):.2f}" if len(pairs) > 1 else "-"
        ok = r >= bound if op == ">=" else r <= bound
        rows.append((label, fmtv(a), fmtv(b), r, f"{op} {bound:.2f}x", ok, spread))

    if "rps" in workloads:
        ratio("rps", "keep-alive req/s", ">=", 1.15, kfmt)
        ratio("rps_cpu", "keep-alive CPU us/req", "<=", 0.85, lambda v: fmt(v, 1))
        ratio("rps_p99", "keep-alive p99 ms", "<=", 1.00, lambda v: fmt(v, 2))
    if "cps" in workloads:
        ratio("cps", "new-conn req/s", ">=", 1.15, kfmt)
        ratio("cps_cpu", "new-conn CPU us/conn", "<=", 0.85, lambda v: fmt(v, 1))
    for w, name in (("tput1", "1 stream"), ("tput1r", "1 stream -R"), ("tput8", "8 streams"),
                    ("tput8r", "8 streams -R")):
        if w in workloads:
            ratio(w, f"{name} Gbit/s", ">=", 1.00, lambda v: fmt(v, 2))
            ratio(w + "_cpu", f"{name} CPU s/GB", "<=", 1.00, lambda v: fmt(v, 3))
    if "idle" in workloads:
        v = f.get("idle")
        rows.append(("idle RSS bytes/conn", fmt(v, 0), fmt(h.get("idle"), 0), None, "<= 1024 B",
                     None if v is None else v <= 1024 and f.get("idle_errors", 0) == 0))
    if "active" in workloads:
        v = f.get("active_ok")
        rows.append(("concurrent active conns", f"{f.get('active_up', '-')} up, {f.get('active_errors', '-')} errors",
                     f"{h.get('active_up', '-')} up, {h.get('active_errors', '-')} errors", None, "no error", v))
    if "integrity" in workloads:
        v = f.get("integrity_ok")
        rows.append(("integrity (SHA-256)", "ok" if v else ("-" if v is None else "FAIL"),
                     "ok" if h.get("integrity_ok") else ("-" if h.get("integrity_ok") is None else "FAIL"),
                     None, "every byte intact", v))
    if f:
        errs = sum(f.get(k, 0) or 0 for k in ("rps_errors", "cps_errors", "idle_errors", "active_errors"))
        failed = sum(v for k, v in f.items() if k.endswith("_failed_runs"))
        bad_integrity = f.get("integrity_ok") is False
        rows.append(("errors in any ferry workload", f"{errs} errors, {failed} failed runs", "-", None,
                     "none", errs == 0 and failed == 0 and not bad_integrity))
    return rows


def splice_rows(S, workloads, other="ferry-splice", cpu_bound=0.67):
    """ferry-splice against ferry's ring path: splice is worth having only if it cuts CPU per GB
    by a third or more on bulk transfers (and it must not lose throughput). With other="ferry-16k":
    the rings at a fixed 16 KiB against ferry's growing rings (cpu_bound None: shown, no bar)."""
    f, s = S.get("ferry", {}), S.get(other, {})
    rows = []
    for w, name in (("tput1", "1 stream"), ("tput1r", "1 stream -R"), ("tput8", "8 streams"),
                    ("tput8r", "8 streams -R")):
        if w not in workloads:
            continue
        for key, label, op, bound, nd in ((w, f"{name} Gbit/s", ">=", 1.00, 2),
                                          (w + "_cpu", f"{name} CPU s/GB", "<=", cpu_bound, 3)):
            a, b = s.get(key), f.get(key)
            sa, fb = s.get("_rounds", {}).get(key, {}), f.get("_rounds", {}).get(key, {})
            pairs = [sa[k] / fb[k] for k in sa if k in fb and fb[k]]
            r = statistics.median(pairs) if pairs else (a / b if a is not None and b else None)
            spread = f"{min(pairs):.2f}-{max(pairs):.2f}" if len(pairs) > 1 else "-"
            if cpu_bound is None:  # shown for what it is: no bar
                rows.append((label, fmt(a, nd), fmt(b, nd), r, "-", None, spread))
                continue
            ok = None if r is None else (r >= bound if op == ">=" else r <= bound)
            rows.append((label, fmt(a, nd), fmt(b, nd), r, f"{op} {bound:.2f}x", ok, spread))
    if "integrity" in workloads and s:
        v = s.get("integrity_ok")
        rows.append(("integrity (SHA-256)", "ok" if v else ("-" if v is None else "FAIL"),
                     "ok" if f.get("integrity_ok") else "-", None, "every byte intact", v))
    return rows


def eager_rows(S, workloads):
    """ferry (coalesce: auto) against ferry-eager (coalesce: off), request workloads, same rounds."""
    f, e = S.get("ferry", {}), S.get("ferry-eager", {})
    rows = []
    for w, name in (("rps", "keep-alive"), ("cps", "new-conn")):
        if w not in workloads:
            continue
        for key, label, nd in ((w, f"{name} req/s", 0), (w + "_cpu", f"{name} proxy CPU us/req", 1),
                               (w + "_p99", f"{name} p99 ms", 2),
                               (w + "_ctxt", f"{name} machine context switches/req", 2)):
            a, b = f.get(key), e.get(key)
            fa, eb = f.get("_rounds", {}).get(key, {}), e.get("_rounds", {}).get(key, {})
            pairs = [fa[k] / eb[k] for k in fa if k in eb and eb[k]]
            r = statistics.median(pairs) if pairs else (a / b if a is not None and b else None)
            spread = f"{min(pairs):.2f}-{max(pairs):.2f}" if len(pairs) > 1 else "-"
            rows.append((label, fmt(a, nd), fmt(b, nd), r, "-", None, spread))
    return rows


def print_splice(rows, title="ferry splice vs ferry rings (`splice: true`, one route option)",
                 cols=("splice", "rings")):
    print(f"\n### {title}\n")
    print(f"| workload | {cols[0]} | {cols[1]} | ratio | per-round ratios | target | result |")
    print("|---|---|---|---|---|---|---|")
    for label, a, b, r, t, ok, *rest in rows:
        spread = rest[0] if rest else "-"
        res = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        print(f"| {label} | {a} | {b} | {'-' if r is None else f'{r:.2f}x'} | {spread} | {t} | {res} |")


def print_targets(rows, args):
    tag = "one worker each" if args.workers == 1 else f"{args.workers} workers / nbthread {args.workers}"
    print(f"\n### ferry vs HAProxy ({tag})\n")
    print("| target | ferry | haproxy | ratio | per-round ratios | target | result |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        label, a, b, r, t, ok = row[:6]
        spread = row[6] if len(row) > 6 else "-"
        res = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        print(f"| {label} | {a} | {b} | {'-' if r is None else f'{r:.2f}x'} | {spread} | {t} | {res} |")
    print("\nratio = median over rounds of ferry/HAProxy, both measured within the same round; "
          "figures = medians")
    if args.workers != 1:
        print("\n(the targets are set for one worker each; with more workers they are shown for comparison)")


def versions(args):
    v = {}
    try:
        rc, out, err = Procs().run(["haproxy", "-v"], PROC_TIMEOUT)
        m = re.search(r"version (\S+)", out)
        v["haproxy"] = m.group(1) if m else "?"
    except Exception:
        v["haproxy"] = "?"
    try:
        rc, out, err = Procs().run(["nginx", "-v"], PROC_TIMEOUT)
        m = re.search(r"nginx/(\S+)", out + err)
        v["nginx"] = m.group(1) if m else "?"
    except Exception:
        v["nginx"] = "?"
    try:
        rc, out, err = Procs().run([args.ferry, "--version"], PROC_TIMEOUT)
        v["ferry"] = (out.strip() or err.strip()).replace("ferry ", "") or "?"
    except Exception:
        v["ferry"] = "?"
    for tool, argv, pat in (("iperf3", ["iperf3", "--version"], r"iperf (\S+)"),
                            ("wrk", ["wrk", "-v"], r"wrk (\S+)")):
        try:
            rc, out, err = Procs().run(argv, PROC_TIMEOUT)
            m = re.search(pat, out + err)
            v[tool] = m.group(1) if m else "?"
        except Exception:
            v[tool] = "?"
    return v


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    return {"nproc": ncpu, "cpu": model, "kernel": platform.release(),
            "loadavg": os.getloadavg()[0]}


def summarize_log(path, limit=8):
    """Distinct warning/error lines of a proxy log (numbers folded)."""
    counts = {}
    try:
        with open(path, errors="replace") as f:
            for i, line in enumerate(f):
                if i > 2_000_000:
                    break
                if line.startswith("---"):
                    continue
                low = line.lower()
                if not any(k in low for k in (" warn", " error", "alert", "fatal", "emerg", "crit")):
                    continue
                parts = line.split(None, 1)
                body = parts[1] if len(parts) > 1 and re.match(r"\d{4}-\d\d-\d\dT", parts[0]) else line
                key = re.sub(r"\d+", "N", body.strip())[:200]
                counts[key] = counts.get(key, 0) + 1
    except OSError:
        pass
    return sorted(counts.items(), key=lambda kv: -kv[1])[:limit]


def access_causes(path):
    causes = {}
    try:
        with open(path, errors="replace") as f:
            for i, line in enumerate(f):
                if i > 5_000_000:
                    break
                m = re.search(r" access .*cause=(\w+)", line)
                if m:
                    causes[m.group(1)] = causes.get(m.group(1), 0) + 1
    except OSError:
        pass
    return causes


def main():
    ap = argparse.ArgumentParser(
        description="Benchmark ferry against direct loopback, HAProxy and nginx stream, interleaved.",
        epilog="Workloads: " + ",".join(WORKLOADS))
    ap.add_argument("--ferry", default=os.path.join(REPO, "build", "ferry"),
                    help="ferry binary (default: build/ferry of this repository)")
    ap.add_argument("--only", default=",".join(DEFAULT_SUBJECTS), help="subjects, comma-separated "
                    "(direct,haproxy,nginx,ferry)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    ap.add_argument("--seconds", type=int, default=None, help="length of each timed run (default 5; quick 1)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds, median reported (default 3; quick 1)")
    ap.add_argument("--workers", type=int, default=1,
                    help="haproxy nbthread / nginx worker_processes / ferry workers (default 1)")
    ap.add_argument("--json", metavar="FILE", help="write all raw figures and the summary here")
    ap.add_argument("--quick", action="store_true", help="short smoke run (well under 2 minutes)")
    ap.add_argument("--idle-conns", type=int, default=None, help="connections held for idle (default 5000; quick 1000)")
    ap.add_argument("--active-conns", type=int, default=None, help="concurrent active connections (default 9000)")
    ap.add_argument("--active-seconds", type=float, default=None, help="active phase length (default --seconds)")
    ap.add_argument("--integrity-mb", type=int, default=None, help="MiB per big integrity stream (default 64; quick 4)")
    ap.add_argument("--backend-workers", type=int, default=1, help="worker_processes of the HTTP backend nginx")
    ap.add_argument("--ferry-log-level", default="warn", choices=("error", "warn", "info", "debug"))
    ap.add_argument("--ferry-access-log", action="store_true",
                    help="turn ferry's access log on (costs CPU) and count the close causes")
    ap.add_argument("--ferry-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for ferry (repeatable), e.g. FERRY_LISTEN_MODE=reuseport")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument("--report", metavar="FILE", help="print the tables again from a --json file, run nothing")
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.serve:
        signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
        try:
            serve([int(x) for x in args.serve[0].split(",")], int(args.serve[1]))
        except KeyboardInterrupt:
            pass
        return 0

    if args.report:
        return rerender(args.report)
    q = args.quick
    args.seconds = args.seconds or (1 if q else 5)
    args.rounds = args.rounds or 1 if q else (args.rounds or 3)
    args.idle_conns = args.idle_conns or (1000 if q else 5000)
    args.active_conns = args.active_conns or 9000
    args.active_seconds = args.active_seconds if args.active_seconds is not None else (1.0 if q else min(args.seconds, 5))
    args.integrity_mb = args.integrity_mb or (4 if q else 64)
    if args.seconds < 1 or args.rounds < 1 or args.workers < 1:
        ap.error("--seconds, --rounds and --workers must be >= 1")

    subjects = [s for s in args.only.split(",") if s]
    workloads = [w for w in args.workloads.split(",") if w]
    for s in subjects:
        if s not in SUBJECTS:
            ap.error(f"unknown subject {s!r} (choose from {','.join(SUBJECTS)})")
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r} (choose from {','.join(WORKLOADS)})")
    subjects = [s for s in SUBJECTS if s in subjects]
    workloads = [w for w in WORKLOADS if w in workloads]
    if any(s in FERRIES for s in subjects):
        args.ferry = os.path.abspath(args.ferry)
        if not os.access(args.ferry, os.X_OK):
            sys.exit(f"ferrybench: no ferry binary at {args.ferry} (build it, pass --ferry PATH, "
                     "or leave it out with --only direct,haproxy,nginx)")
    for tool in ("iperf3", "wrk", "nginx", "haproxy"):
        if not shutil.which(tool):
            sys.exit(f"ferrybench: {tool} not found (apt-get install iperf3 wrk nginx-light "
                     "libnginx-mod-stream haproxy)")
    if "nginx" in subjects and not os.path.exists(NGINX_STREAM_MODULE):
        sys.exit(f"ferrybench: {NGINX_STREAM_MODULE} missing (apt-get install libnginx-mod-stream)")

    soft, hard = raise_nofile()
    need = args.active_conns + 200
    if "active" in workloads and soft < need:
        log(f"warning: open-file limit {soft} < {need}: the active workload will fail in the client")

    def on_signal(sig, frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "versions": versions(args),
            "settings": {"workers": args.workers, "seconds": args.seconds, "rounds": args.rounds,
                         "idle_conns": args.idle_conns, "active_conns": args.active_conns,
                         "active_seconds": args.active_seconds, "integrity_mb": args.integrity_mb,
                         "backend_workers": args.backend_workers, "nofile": soft,
                         "ferry_env": args.ferry_env,
                         "subjects": subjects, "workloads": workloads, "quick": q}}
    procs = Procs()
    work = tempfile.mkdtemp(prefix="ferrybench-")
    os.chmod(work, 0o755)
    setup = Setup(args, procs, work)
    setup.nofile = soft
    raw = {s: {w: [] for w in workloads} for s in subjects}
    stops = {}
    t_begin = time.monotonic()
    interrupted = False
    try:
        setup.start_backends(subjects)
        for s in subjects:
            setup.start_subject(s)
        log(f"work dir {work}; ports: backends {setup.back}; "
            + "; ".join(f"{s} {setup.front[s]}" for s in subjects if s != "direct"))

        def do(s, w, rnd):
            if s == "direct" and w == "idle":
                return
            try:
                setup.ensure_alive(s)
                r = measure(setup, s, w, args)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                r = {"error": f"{type(e).__name__}: {e}"}
            p = setup.proc.get(s)
            if p is not None and p.poll() is not None:
                r.setdefault("error", f"{s} died during the run (status {p.returncode})")
            r["round"] = rnd
            raw[s][w].append(r)
            log(f"round {rnd} {w:9s} {s:7s} {short(r, w)}")
            time.sleep(0.3)

        # memory first, while every process is fresh
        if "idle" in workloads:
            for s in subjects:
                do(s, "idle", 1)
        timed = [w for w in TIMED if w in workloads]
        for rnd in range(1, args.rounds + 1):
            order = subjects[(rnd - 1) % len(subjects):] + subjects[:(rnd - 1) % len(subjects)]
            for w in timed:
                for s in order:
                    do(s, w, rnd)
        for w in ("active", "integrity"):
            if w in workloads:
                for s in subjects:
                    do(s, w, 1)
                    time.sleep(1.0)
        for s in subjects:
            if s in setup.proc:
                p = setup.proc[s]
                alive = p.poll() is None
                rc, clean = procs.stop(p, timeout=5.0)
                stops[s] = {"was_running": alive, "status": rc, "stopped_within_5s": clean}
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping everything")
    finally:
        procs.stop_all()
    elapsed = time.monotonic() - t_begin
    if interrupted:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 130

    notes = []
    for s in subjects:
        for w in workloads:
            for r in raw[s][w]:
                if "error" in r:
                    notes.append(f"{s} {w}: {r['error']}")
                elif w in ("rps", "cps") and r["errors"]:
                    notes.append(f"{s} {w}: wrk errors {r['errors']}")
                elif w in ("idle", "active") and (r["errors"] or not r.get("ok", True)):
                    notes.append(f"{s} {w}: {r['errors']} {'; '.join(r['examples'][:4])}")
                elif w == "integrity":
                    for x in r["failures"] + r["server_errors"]:
                        notes.append(f"{s} integrity: {x}")
                    if r["unfinished"]:
                        notes.append(f"{s} integrity: {r['unfinished']} connections never finished")
                    for x in r["halfclose_detail"]:
                        notes.append(f"{s} half-close: {x}")
        for e in setup.events.get(s, []):
            notes.append(e)
        st = stops.get(s)
        if st and not st["was_running"]:
            notes.append(f"{s} was not running at the end (status {st['status']})")
        elif st and not st["stopped_within_5s"]:
            notes.append(f"{s} did not stop within 5s of SIGTERM")
        elif st and s.startswith("ferry") and st["status"] != 0:
            notes.append(f"{s} exited with status {st['status']} after SIGTERM (expected 0)")
        if s in setup.logs:
            for line, n in summarize_log(setup.logs[s]):
                notes.append(f"{s} log x{n}: {line}")
    for name in ("proxy-nginx.err", "backend-nginx.err", "helper.err"):
        t = tail(os.path.join(work, name), 1)
        if t:
            try:
                with open(os.path.join(work, name), errors="replace") as f:
                    nlines = sum(1 for _ in f)
            except OSError:
                nlines = 0
            notes.append(f"{name}: {nlines} lines, last: {t[:300]}")
    if args.ferry_access_log and "ferry" in setup.logs:
        notes.append(f"ferry close causes: {access_causes(setup.logs['ferry'])}")
    meta["elapsed_s"] = round(elapsed)
    meta["machine"]["loadavg_end"] = os.getloadavg()[0]
    S, rows = report(meta, raw, notes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "raw": raw, "summary": S, "stops": stops,
                       "targets": [dict(zip(("target", "ferry", "haproxy", "ratio", "goal", "pass", "range"), r))
                                   for r in rows], "notes": notes}, f, indent=1, default=str)
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(meta, raw, notes):
    """Print the header, the table, the verdicts and the notes."""
    st = meta["settings"]
    args = argparse.Namespace(**st)
    subjects, workloads = st["subjects"], st["workloads"]
    elapsed = meta.get("elapsed_s", 0)
    S = summarize(raw, subjects)
    rows = targets(S, workloads) if "ferry" in subjects and "haproxy" in subjects else []
    m, v = meta["machine"], meta["versions"]
    print("## ferry benchmark\n")
    print(f"- date: {meta['date']}")
    print(f"- machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']} (load average {m['loadavg']:.2f} at start"
          + (f", {m['loadavg_end']:.2f} at end)" if "loadavg_end" in m else ")"))
    print(f"- versions: HAProxy {v['haproxy']}, nginx {v['nginx']}, ferry {v['ferry']} "
          f"(iperf3 {v['iperf3']}, wrk {v['wrk']})")
    print(f"- settings: workers {args.workers}, {args.seconds}s per run, median of {args.rounds} "
          f"interleaved round(s), wrk -t1 -c64, idle {args.idle_conns} conns, active {args.active_conns} "
          f"conns for {args.active_seconds:g}s, integrity {args.integrity_mb} MiB streams"
          + (f"; run took {elapsed:.0f}s" if elapsed else ""))
    if st.get("ferry_env"):
        print(f"- ferry environment: {' '.join(st['ferry_env'])}")
    print("- proxy CPU = utime+stime of the proxy's process tree from /proc (\"of which user space\" = utime: "
          "the proxy's own code; the rest is kernel TCP, epoll and scheduling work); `-` = not applicable\n")
    print_table(S, subjects, workloads, args)
    if rows:
        print_targets(rows, args)
    if "ferry" in subjects and "ferry-splice" in subjects:
        print_splice(splice_rows(S, workloads))
    if "ferry" in subjects and "ferry-16k" in subjects:
        print_splice(splice_rows(S, workloads, "ferry-16k", None),
                     "ferry with fixed 16 KiB rings vs growing rings (`buffer_max: 16KiB`)",
                     ("16 KiB", "growing"))
    if "ferry" in subjects and "ferry-eager" in subjects:
        print_splice(eager_rows(S, workloads),
                     "ferry waiting before blocking while that pays vs never (`coalesce: off`)",
                     ("auto", "off"))
    if notes:
        print("\n### notes\n")
        for n in notes[:60]:
            print(f"- {n}")
    return S, rows


def rerender(path):
    with open(path) as f:
        data = json.load(f)
    raw = data["raw"]
    for s in raw:
        for w in raw[s]:
            for i, r in enumerate(raw[s][w]):
                r.setdefault("round", i + 1)
    report(data["meta"], raw, data.get("notes", []))
    return 0


if __name__ == "__main__":
    sys.exit(main())

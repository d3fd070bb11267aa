#!/usr/bin/env python3
"""Soak test for chat-server (issue 4): one bounded run against a mix of
normal users, slow readers, flooders, garbage senders and connect/close churn.

Started by scripts/soak.sh, which builds the server. This script starts the
server itself (on 127.0.0.1, port 0: the kernel picks a free port, the log
says which), drives every client from one `selectors` loop, samples the
server's RSS and CPU from /proc, stops the server with SIGTERM at the end and
prints a report. Exit status 0 only if no invariant broke.

Python 3 standard library only. Talks to 127.0.0.1 only.
"""

import argparse
import collections
import errno
import os
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time

NOTICE = "[SERVER]: "
TOO_FAST = "[SERVER]: You are sending too fast"
TOO_LONG = "[SERVER]: Line too long"
FULL = "[SERVER]: The server is full"


def now():
    return time.monotonic()


class Soak:
    """Shared state: the selector, the clients, counters and broken invariants."""

    def __init__(self, args):
        self.args = args
        self.sel = selectors.DefaultSelector()
        self.rng = random.Random(args.seed)
        self.broken = []  # invariant violations, as text
        self.notes = collections.Counter()  # things seen, for the report
        self.clients = set()
        self.open_peak = 0
        self.slow_by_name = {}
        self.delivered = 0  # lines received by all soak clients
        self.addr = None

    def fail(self, what):
        if len(self.broken) < 50:
            self.broken.append(what)
        self.notes["invariant violations"] += 1


def valid_name_part(name):
    """Names never contain [ ] : * space or control characters (PROTOCOL 2)."""
    return (
        1 <= len(name) <= 32
        and not any(c in "[]:* " for c in name)
        and not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in name)
    )


def check_server_line(line):
    """Returns None if `line` is one of the forms of PROTOCOL.md section 2."""
    if any((ord(c) < 32 and c != "\t") or 0x7F <= ord(c) <= 0x9F for c in line):
        return "control character"
    if line.startswith("[SERVER]"):
        return None if line.startswith(NOTICE) else "malformed notice"
    if line == "/pong" or line.startswith("/pong "):
        return None
    m = re.match(r"^\[PM (?:from|to) ([^\]]*)\]: ", line)
    if m:
        return None if valid_name_part(m.group(1)) else "bad name in PM"
    if line.startswith("* "):
        name = line[2:].split(" ", 1)[0]
        return None if valid_name_part(name) else "bad name in action"
    if ": " in line:
        return None if valid_name_part(line.split(": ", 1)[0]) else "bad name in chat line"
    return "not a server line"


class Client:
    """One non-blocking connection in the selector loop."""

    kind = "client"
    reads = True  # slow readers set this to False once logged in

    def __init__(self, soak, name, rcvbuf=None):
        self.soak = soak
        self.name = name
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closed = False
        self.eof = False
        self.logged_in = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(2.0)
        try:
            self.sock.connect(soak.addr)
        except OSError as e:
            self.sock.close()
            self.closed = True
            soak.notes["connect failed: %s" % e.__class__.__name__] += 1
            return
        self.sock.setblocking(False)
        self.events = 0
        soak.clients.add(self)
        soak.open_peak = max(soak.open_peak, len(soak.clients))
        self.update()

    def update(self):
        if self.closed:
            return
        ev = (selectors.EVENT_READ if self.reads else 0) | (
            selectors.EVENT_WRITE if self.outbuf else 0
        )
        if ev == self.events:
            return
        if self.events == 0:
            self.soak.sel.register(self.sock, ev, self)
        elif ev == 0:
            self.soak.sel.unregister(self.sock)
        else:
            self.soak.sel.modify(self.sock, ev, self)
        self.events = ev

    def send(self, data):
        if self.closed:
            return
        if isinstance(data, str):
            data = data.encode()
        self.outbuf += data
        self.flush()

    def flush(self):
        while self.outbuf and not self.closed:
            try:
                n = self.sock.send(self.outbuf[:262144])
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self.lost("send: %s" % errno.errorcode.get(e.errno, e))
                return
            del self.outbuf[:n]
        self.update()

    def readable(self):
        for _ in range(16):
            try:
                data = self.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.lost("recv: %s" % errno.errorcode.get(e.errno, e))
                return
            if not data:
                self.eof = True
                self.lost("EOF")
                return
            self.inbuf += data
            *lines, rest = self.inbuf.split(b"\n")
            self.inbuf = bytearray(rest)
            for raw in lines:
                self.soak.delivered += 1
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.soak.fail("%s got invalid UTF-8: %r" % (self.name, bytes(raw[:80])))
                    continue
                why = check_server_line(line)
                if why:
                    self.soak.fail("%s got a bad line (%s): %r" % (self.name, why, line[:120]))
                if not self.logged_in and line == "%s%s joined the chat!" % (NOTICE, self.name):
                    self.logged_in = True
                    self.on_login()
                self.on_line(line)
                if self.closed:
                    return

    def close(self, reset=False):
        if self.closed:
            return
        self.closed = True
        if self.events:
            self.soak.sel.unregister(self.sock)
            self.events = 0
        if reset:
            self.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.sock.close()
        self.soak.clients.discard(self)

    def lost(self, why):
        """The server closed us or the connection broke."""
        self.close()
        self.on_lost(why)

    def on_login(self):
        pass

    def on_line(self, line):
        pass

    def on_lost(self, why):
        pass

    def tick(self, t):
        pass


class Normal(Client):
    """Chats at a modest pace; checks it gets every normal user's lines, and
    every flooder's delivered lines, in order, and its pings come back."""

    kind = "normal"

    def __init__(self, soak, name):
        super().__init__(soak, name)
        self.sent = 0
        self.seen = collections.defaultdict(list)  # sender -> seq numbers
        self.next_chat = None
        self.ping_sent = None
        self.ping_n = 0
        self.max_rtt = 0.0
        self.chatting = False
        self.pongs = set()
        self.send(name + "\n")

    def on_login(self):
        self.next_chat = now() + self.soak.rng.uniform(0.2, 1.0)

    def tick(self, t):
        if not self.chatting or self.closed:
            return
        if t >= self.next_chat:
            pad = "x" * self.soak.rng.randint(0, 120)
            self.send("seq %d %s\n" % (self.sent, pad))
            self.sent += 1
            self.soak.notes["normal lines sent"] += 1
            self.next_chat = t + self.soak.rng.uniform(0.3, 1.2)
        if self.ping_sent is None and self.soak.rng.random() < 0.05:
            self.ping_n += 1
            self.ping_sent = t
            self.send("/ping rtt%d\n" % self.ping_n)
        elif self.ping_sent is not None and t - self.ping_sent > 5:
            self.soak.fail("%s: no /pong within 5 s" % self.name)
            self.ping_sent = None

    def on_line(self, line):
        if line.startswith("/pong "):
            tok = line[6:]
            if tok == "rtt%d" % self.ping_n and self.ping_sent is not None:
                self.max_rtt = max(self.max_rtt, now() - self.ping_sent)
                self.ping_sent = None
            self.pongs.add(tok)
            return
        m = re.match(r"^((?:norm|flood)\d+): (?:seq|flood) (\d+)", line)
        if m:
            self.soak.notes["chat lines to normal users"] += 1
            sender, n = m.group(1), int(m.group(2))
            seen = self.seen[sender]
            if sender.startswith("norm") and n != len(seen):
                self.soak.fail(
                    "%s: line %d from %s arrived after %d lines (missed or reordered)"
                    % (self.name, n, sender, len(seen))
                )
            elif seen and n <= seen[-1]:
                self.soak.fail("%s: %s's line %d after %d" % (self.name, sender, n, seen[-1]))
            seen.append(n)
        elif line.startswith(TOO_FAST):
            self.soak.fail("%s (a normal user) was rate limited" % self.name)
        elif line.startswith(NOTICE + "slow") and " has disconnected" in line:
            # A slow reader never reads, so it learns of its drop from us.
            name = line[len(NOTICE):].split(" ", 1)[0]
            slow = self.soak.slow_by_name.pop(name, None)
            if slow is not None:
                why = "too slow" if "too slow to read" in line else line.split(" has ", 1)[1]
                self.soak.notes["slow readers dropped: " + why] += 1
                slow.close()
        elif re.match(r"^\[SERVER\]: (norm|flood)\d+ has disconnected", line):
            self.soak.fail("%s saw: %s" % (self.name, line))

    def on_lost(self, why):
        self.soak.fail("normal user %s lost its connection (%s)" % (self.name, why))


class Flooder(Client):
    """Sends bursts well over --rate; counts its delivered lines and the
    refusal notices: delivered + refused must equal sent."""

    kind = "flooder"

    def __init__(self, soak, name):
        super().__init__(soak, name)
        self.sent = 0
        self.delivered = []
        self.refused = 0
        self.next_burst = None
        self.flooding = False
        self.pongs = set()
        self.send(name + "\n")

    def on_login(self):
        self.next_burst = now() + 0.5

    def tick(self, t):
        if not self.flooding or self.closed or t < self.next_burst:
            return
        rng = self.soak.rng
        burst = []
        for _ in range(rng.randint(20, 70)):
            burst.append("flood %d %s\n" % (self.sent, "f" * rng.randint(200, 4000)))
            self.sent += 1
        self.send("".join(burst))
        self.next_burst = t + rng.uniform(0.7, 1.5)

    def on_line(self, line):
        if line.startswith("/pong "):
            self.pongs.add(line[6:])
        elif line.startswith(self.name + ": flood "):
            self.delivered.append(int(line.split(" ")[2]))
        elif line.startswith(TOO_FAST):
            self.refused += 1

    def on_lost(self, why):
        self.soak.fail("flooder %s lost its connection (%s)" % (self.name, why))


class Slow(Client):
    """Logs in, then never reads (a tiny receive buffer); pings now and then
    so it is not idle. The server must drop it as too slow."""

    kind = "slow"

    def __init__(self, soak, name):
        super().__init__(soak, name, rcvbuf=4096)
        soak.slow_by_name[name] = self
        self.born = now()
        self.next_ping = None
        self.send(name + "\n")

    def on_login(self):
        self.reads = False
        self.update()
        self.next_ping = now() + 5

    def tick(self, t):
        if self.closed:
            return
        if self.next_ping and t >= self.next_ping:
            self.send("/ping awake\n")
            self.next_ping = t + 5
        if self.reads and t - self.born > 10:
            self.soak.fail("slow reader %s could not log in within 10 s" % self.name)
            self.close()


class Garbage(Client):
    """One session of hostile bytes, in one of several modes, then closes."""

    kind = "garbage"
    MODES = ["binary", "endless", "nul", "utf8", "halfopen", "rst", "bytewise"]

    def __init__(self, soak, n):
        self.mode = soak.rng.choice(self.MODES)
        super().__init__(soak, "garbage%d" % n)
        self.n = n
        self.step = 0
        self.deadline = now() + 10
        self.too_long = 0
        self.pong = False
        self.shut_at = None
        soak.notes["garbage sessions: " + self.mode] += 1

    def tick(self, t):
        if self.closed:
            return
        rng = self.soak.rng
        m, s = self.mode, self.step
        self.step += 1
        if m == "binary":
            if s < 40:
                self.send(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))))
            else:
                self.close(reset=rng.random() < 0.5)
        elif m == "endless":
            if s == 0:
                self.total = rng.randint(2, 8) << 20
                self.sent = 0
            if self.sent < self.total:
                if len(self.outbuf) < 1 << 20:
                    self.send(b"z" * (256 << 10))
                    self.sent += 256 << 10
            elif not hasattr(self, "pinged"):
                self.pinged = True
                self.send(b"\n/ping endless\n")
            elif self.pong:
                if self.too_long != 1:
                    self.soak.fail("endless line got %d too-long notices" % self.too_long)
                self.close()
            elif t > self.deadline + 20:
                self.soak.fail("endless line: no /pong after the line")
                self.close()
        elif m == "nul":
            if s == 0:
                self.send(b"g\0ar\0b%d\n" % self.n)
            elif s < 10:
                self.send(b"\0\0 hi \0there\0\n")
            else:
                self.close()
        elif m == "utf8":
            if s == 0:
                self.send(b"\xff\xfe\n\xc3\n\xed\xa0\x80ab\n")
            elif s == 1:
                self.send(b"g\xc3\xa9rb%d\n" % self.n)
            elif s < 6:
                self.send(b"caf\xc3 \xff\xff ok\n")
            else:
                self.close()
        elif m == "halfopen":
            if s == 0:
                self.send(b"half%d\nbye soon\n" % self.n)
            elif s == 5:
                self.sock.shutdown(socket.SHUT_WR)
                self.shut_at = t
            elif self.shut_at and t - self.shut_at > 5:
                self.soak.fail("half-open connection not closed by the server within 5 s")
                self.close()
        elif m == "rst":
            if s == 0:
                self.send(b"rst%d\nhalf a li" % self.n)
            elif s == 3:
                self.close(reset=True)
        elif m == "bytewise":
            msg = b"bw%d\r\nbyte by byte\n" % self.n
            if s < len(msg):
                self.send(msg[s : s + 1])
            else:
                self.close()
        if not self.closed and t > self.deadline + 30:
            self.close()

    def on_line(self, line):
        if line.startswith(TOO_LONG):
            self.too_long += 1
        elif line == "/pong endless":
            self.pong = True

    def on_lost(self, why):
        if self.mode == "halfopen" and self.shut_at is not None:
            self.soak.notes["half-open closed by server"] += 1


class Churn(Client):
    """Connects and leaves at once in one of several ways."""

    kind = "churn"

    def __init__(self, soak, n):
        super().__init__(soak, "churn%d" % n)
        self.way = soak.rng.choice(["close", "name-close", "name-quit", "quit-first", "rst"])
        self.born = now()
        soak.notes["churn connections"] += 1
        if self.way == "close":
            self.close()
        elif self.way == "rst":
            self.close(reset=True)
        elif self.way == "quit-first":
            self.send("/quit\n")
        else:
            self.send(self.name + "\n")

    def on_login(self):
        if self.way == "name-quit":
            self.send("/quit bye\n")
        else:
            self.close()

    def on_line(self, line):
        if line.startswith(FULL):
            self.soak.notes["churn refused: server full"] += 1

    def tick(self, t):
        if not self.closed and t - self.born > 10:
            self.close()


def read_proc(pid):
    """(RSS KiB, CPU seconds) of `pid`, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


def parse_log(path):
    """Counts the server's closes by reason, and its warnings and errors."""
    reasons = collections.Counter()
    levels = collections.Counter()
    samples = {}
    pat = re.compile(r"conn \d+ (?:\(([^)]*)\) )?from \S+: (.+)$")
    with open(path, errors="replace") as f:
        for line in f:
            for lvl in ("WARN", "ERROR"):
                if " %s " % lvl in line:
                    levels[lvl] += 1
                    samples.setdefault(lvl, line.strip())
            if line.rstrip().endswith(": timed out") and "conn " in line:
                reasons["timed out (then closed)"] += 1
                continue
            if "server full" in line:
                reasons["refused: server full"] += 1
                continue
            m = pat.search(line)
            if m:
                who = "had a name" if m.group(1) else "no name when closed"
                reasons["%s (%s)" % (m.group(2), who)] += 1
    return reasons, levels, samples


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", required=True, help="path to chat-server")
    p.add_argument("--log", required=True, help="file for the server's log")
    p.add_argument("--pidfile", help="write the server's PID here")
    p.add_argument("-d", "--duration", type=float, default=180)
    p.add_argument("--max-pending", type=int, default=256 * 1024)
    p.add_argument("--normal", type=int, default=12)
    p.add_argument("--slow", type=int, default=3)
    p.add_argument("--flooders", type=int, default=4)
    p.add_argument("--garbage", type=int, default=3)
    p.add_argument("--churn-per-s", type=float, default=10)
    p.add_argument("--seed", type=int, default=4)
    args = p.parse_args()

    soak = Soak(args)
    log = open(args.log, "w")
    server = subprocess.Popen(
        [
            args.server,
            "--host", "127.0.0.1", "--port", "0", "--no-web",
            "--max-pending", str(args.max_pending),
            "--idle-timeout", "30", "--login-timeout", "10",
            "--max-clients", "400",
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
    )
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % server.pid)
    try:
        return run(soak, server, args)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def run(soak, server, args):
    t0 = now()
    while soak.addr is None:
        with open(args.log, errors="replace") as f:
            m = re.search(r"listening on (\S+):(\d+)", f.read())
        if m:
            soak.addr = (m.group(1), int(m.group(2)))
        elif now() - t0 > 10 or server.poll() is not None:
            print("soak: the server did not start; log:\n" + open(args.log).read())
            return 2
        else:
            time.sleep(0.05)
    print("soak: server pid %d on %s:%d, %g s, seed %d"
          % (server.pid, soak.addr[0], soak.addr[1], args.duration, args.seed), flush=True)

    rss0, _ = read_proc(server.pid)
    samples = []  # (t, rss, cpu)
    normals = [Normal(soak, "norm%d" % i) for i in range(args.normal)]
    flooders = [Flooder(soak, "flood%d" % i) for i in range(args.flooders)]
    slows, garbage = [], []
    slow_gen = garbage_gen = churn_gen = 0
    churn_credit = 0.0

    def loop(t_end, cond=lambda: False):
        nonlocal churn_credit
        last = now()
        next_sample = 0
        while now() < t_end and not cond():
            for key, ev in soak.sel.select(timeout=0.02):
                c = key.data
                if ev & selectors.EVENT_READ:
                    c.readable()
                if ev & selectors.EVENT_WRITE and not c.closed:
                    c.flush()
            t = now()
            for c in list(soak.clients):
                c.tick(t)
            if t >= next_sample:
                next_sample = t + 0.5
                s = read_proc(server.pid)
                if s is None:
                    soak.fail("the server died")
                    return False
                samples.append((t,) + s)
            yield_t = t - last
            last = t
            yield yield_t
        return True

    # Everyone logs in first, so each normal user must see every normal
    # user's lines from the first one on.
    for _ in loop(now() + 15, lambda: all(c.logged_in for c in normals + flooders)):
        pass
    if not all(c.logged_in for c in normals + flooders):
        soak.fail("not every normal user and flooder could log in within 15 s")
    for c in normals:
        c.chatting = True
    for c in flooders:
        c.flooding = True

    t_end = now() + args.duration
    next_report = now() + 30
    for dt in loop(t_end):
        t = now()
        slows = [s for s in slows if not s.closed]
        while len(slows) < args.slow:
            slows.append(Slow(soak, "slow%d" % slow_gen))
            slow_gen += 1
        garbage = [g for g in garbage if not g.closed]
        while len(garbage) < args.garbage:
            garbage.append(Garbage(soak, garbage_gen))
            garbage_gen += 1
        churn_credit += dt * args.churn_per_s
        while churn_credit >= 1:
            churn_credit -= 1
            Churn(soak, churn_gen)
            churn_gen += 1
        if t >= next_report:
            next_report = t + 30
            rss, cpu = samples[-1][1:] if samples else (0, 0)
            print("soak: %3.0f s: %d clients open, %d lines received, server RSS %d KiB, CPU %.1f s"
                  % (args.duration - (t_end - t), len(soak.clients), soak.delivered, rss, cpu),
                  flush=True)

    # Wind down: hostile clients go, the others stop sending; then a two-step
    # barrier: once every normal user and flooder has its own /pong A, all
    # their lines were handled; the /pong B each asks for after that comes
    # after every line they sent was queued to everyone.
    soak.notes["slow readers still connected at the end"] = len(soak.slow_by_name)
    soak.slow_by_name.clear()
    for c in list(soak.clients):
        if c.kind not in ("normal", "flooder"):
            c.close()
    for c in normals:
        c.chatting = False
    for c in flooders:
        c.flooding = False
    live = [c for c in normals + flooders if not c.closed]
    for c in live:
        c.send("/ping endA\n")
    for _ in loop(now() + 30, lambda: all("endA" in c.pongs or c.closed for c in live)):
        pass
    for c in live:
        c.send("/ping endB\n")
    for _ in loop(now() + 30, lambda: all("endB" in c.pongs or c.closed for c in live)):
        pass
    for c in live:
        if "endB" not in c.pongs and not c.closed:
            soak.fail("%s: end barrier timed out" % c.name)

    # Deliveries: every normal user saw every normal user's lines and each
    # flooder's delivered lines, exactly, in order.
    flood_sent = sum(f.sent for f in flooders)
    flood_ok = sum(len(f.delivered) for f in flooders)
    flood_refused = sum(f.refused for f in flooders)
    for f in flooders:
        if len(f.delivered) + f.refused != f.sent:
            soak.fail("%s: sent %d, delivered %d + refused %d (a line vanished)"
                      % (f.name, f.sent, len(f.delivered), f.refused))
    for r in normals:
        for s in normals:
            if r.seen[s.name] != list(range(s.sent)):
                soak.fail("%s saw %d of %s's %d lines (or out of order)"
                          % (r.name, len(r.seen[s.name]), s.name, s.sent))
        for f in flooders:
            if r.seen[f.name] != f.delivered:
                soak.fail("%s saw %d of %s's %d delivered lines (or refused ones)"
                          % (r.name, len(r.seen[f.name]), f.name, len(f.delivered)))

    # Stop the server; it must exit 0.
    alive = read_proc(server.pid) is not None
    if alive:
        s = read_proc(server.pid)
        samples.append((now(),) + s)
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=10)
            if code != 0:
                soak.fail("server exited with status %d on SIGTERM" % code)
        except subprocess.TimeoutExpired:
            soak.fail("server did not exit within 10 s of SIGTERM")
    for c in list(soak.clients):
        c.close()

    peak_rss = max(s[1] for s in samples)
    cpu = samples[-1][2]
    bound = 32 * 1024 + args.max_pending // 1024 * soak.open_peak
    if peak_rss > bound:
        soak.fail("server RSS %d KiB over the bound %d KiB" % (peak_rss, bound))
    reasons, levels, lsamples = parse_log(args.log)
    max_rtt = max((c.max_rtt for c in normals), default=0)

    print()
    print("== soak report (%g s of load, %d samples)" % (args.duration, len(samples)))
    print("deliveries: %d lines received by soak clients in all" % soak.delivered)
    print("  normal users: %d, sent %d lines; %d chat lines reached them; worst /ping round trip %.0f ms"
          % (len(normals), soak.notes["normal lines sent"],
             soak.notes["chat lines to normal users"], max_rtt * 1000))
    print("  flooders: %d, sent %d lines: %d delivered, %d refused with a notice"
          % (len(flooders), flood_sent, flood_ok, flood_refused))
    print("  slow readers started: %d; garbage sessions: %d; churn connections: %d"
          % (slow_gen, garbage_gen, churn_gen))
    for k in sorted(soak.notes):
        if k.startswith(("slow readers", "garbage sessions: ", "half-open",
                         "churn refused", "connect failed")):
            print("    %s: %d" % (k, soak.notes[k]))
    print("drops and closes (server log):")
    for k, v in reasons.most_common():
        print("  %6d  %s" % (v, k))
    print("server log: %d warnings, %d errors" % (levels["WARN"], levels["ERROR"]))
    for lvl, line in lsamples.items():
        print("  first %s: %s" % (lvl, line[:160]))
    print("server: RSS start %d KiB, peak %d KiB (bound %d KiB = 32 MiB + max-pending x %d peak connections), CPU %.1f s (%.0f%% of the run)"
          % (rss0, peak_rss, bound, soak.open_peak, cpu,
             100 * cpu / max(1e-9, samples[-1][0] - samples[0][0])))
    print("server alive until the end: %s; exit on SIGTERM: %s"
          % ("yes" if alive else "NO", "status 0" if server.returncode == 0 else server.returncode))
    if soak.broken:
        print("INVARIANTS BROKEN (%d):" % soak.notes["invariant violations"])
        for b in soak.broken:
            print("  - " + b)
        return 1
    print("invariants: all held (server up, no normal user missed or reordered a line, "
          "flood lines all accounted for, RSS within bound, clean lines only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

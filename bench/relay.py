#!/usr/bin/python3
"""bench/relay.py: a userspace TCP relay that emulates a network path between
a client and a proxy (netem is not available here): a round-trip time R
(R/2 each way) and a bottleneck of B bit/s per direction.

Each direction is a serialisation queue.  Bytes read from one side are cut
into packets of at most --mss bytes; a packet that arrives at time a leaves
the bottleneck at  d = max(a, d_prev) + len*8/B  and is written to the other
side at d + R/2 (order preserved).  The queue is unbounded, like a deep
bottleneck buffer: the sender's socket never sees the path's bandwidth (the
relay drains it at loopback speed), so a proxy behind it cannot measure B
from its socket's TCP state: it has to time something that crosses the
queue (herald sends HTTP/2 PINGs behind its data).

Usage: relay.py --to HOST:PORT --rtt-ms R --bw 20m [--listen 127.0.0.1:0] [--bind ADDR] [--log FILE]
Prints "PORT <n>" on stdout once listening.  --bind: the source address of
the relay's connections to the proxy (e.g. 127.0.1.1, so that the proxy sees
a client network other than 127.0.0.0/24).  --log writes one line per
delivered packet: "<wall-clock time> <conn> <up|down> <bytes>" (wall clock so
it can be matched with a browser's performance.timeOrigin); with --tls-records
also "<time> <conn> <up|down>-rec <type> <length>" for each TLS record as it
enters the relay (to see a server's TLS record sizes).  --selftest runs a ping-pong
accuracy check against a local echo server and prints the result as JSON.
"""
import argparse, asyncio, collections, json, selectors, socket, sys, time


def parse_bw(s):
    s = s.strip().lower()
    mult = {"k": 1e3, "m": 1e6, "g": 1e9}.get(s[-1:], 1)
    return float(s[:-1] if s[-1:] in "kmg" else s) * mult


class Direction:
    """One way of one connection: reader -> bottleneck queue -> delay -> writer."""

    def __init__(self, loop, reader, writer, half_rtt, bw, mss, log=None, tag="", records=False):
        self.loop, self.reader, self.writer = loop, reader, writer
        self.log, self.tag = log, tag
        self.records, self.recbuf, self.skip = records and log, b"", 0
        self.half, self.bw, self.mss = half_rtt, bw, mss
        self.free_at = 0.0          # when the bottleneck finishes the last queued packet
        self.pending = 0            # packets scheduled, not yet written
        self.eof = False
        self.done = loop.create_future()
        self.fifo = collections.deque()   # (deadline, packet, last), in arrival order

    def deliver(self, data, last):
        if not self.writer.is_closing():
            self.writer.write(data)
        if self.log and data:
            self.log.write("%.6f %s %d\n" % (time.time(), self.tag, len(data)))
        self.pending -= 1
        if last:
            self.finish()

    def finish(self):
        if self.eof and self.pending == 0 and not self.done.done():
            try:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
            except OSError:
                pass
            self.done.set_result(None)

    def sniff(self, data):
        """Logs TLS record headers (type, length) found in this direction's byte stream."""
        if self.skip >= len(data):
            self.skip -= len(data)
            return
        buf, self.skip = self.recbuf + data[self.skip:], 0
        while len(buf) >= 5:
            n = int.from_bytes(buf[3:5], "big")
            self.log.write("%.6f %s-rec %d %d\n" % (time.time(), self.tag, buf[0], n))
            if len(buf) < 5 + n:
                self.skip = 5 + n - len(buf)
                buf = b""
                break
            buf = buf[5 + n:]
        self.recbuf = buf

    async def run(self):
        try:
            while True:
                data = await self.reader.read(262144)
                now = self.loop.time()
                if not data:
                    break
                if self.records:
                    self.sniff(data)
                for i in range(0, len(data), self.mss):
                    pkt = data[i:i + self.mss]
                    start = max(now, self.free_at)
                    self.free_at = start + (len(pkt) * 8 / self.bw if self.bw else 0)
                    self.schedule(self.free_at + self.half, pkt, False)
        except (ConnectionError, OSError):
            pass
        self.eof = True
        # EOF travels like a packet: after everything queued, plus R/2.
        self.schedule(max(self.loop.time(), self.free_at) + self.half, b"", True)
        await self.done

    def schedule(self, when, pkt, last):
        """Packets leave in the order they came: one timer for the head of a
        FIFO (asyncio's timers with equal deadlines may fire in any order,
        which with no bandwidth cap would reorder a read's packets)."""
        self.pending += 1
        self.fifo.append((when, pkt, last))
        if len(self.fifo) == 1:
            self.loop.call_at(when, self.drain)

    def drain(self):
        now = self.loop.time()
        while self.fifo and self.fifo[0][0] <= now:
            _, pkt, last = self.fifo.popleft()
            self.deliver(pkt, last)
        if self.fifo:
            self.loop.call_at(self.fifo[0][0], self.drain)


async def handle(creader, cwriter, args, loop):
    host, _, port = args.to.rpartition(":")
    try:
        ureader, uwriter = await asyncio.open_connection(
            host.strip("[]"), int(port), local_addr=(args.bind, 0) if args.bind else None)
    except OSError:
        cwriter.close()
        return
    for w in (cwriter, uwriter):
        s = w.get_extra_info("socket")
        if s is not None:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    half = args.rtt_ms / 2000.0
    bw = parse_bw(args.bw) if args.bw != "0" else 0
    args.conns = getattr(args, "conns", 0) + 1
    up = Direction(loop, creader, uwriter, half, bw, args.mss, args.logf, "%d up" % args.conns, args.tls_records)
    down = Direction(loop, ureader, cwriter, half, bw, args.mss, args.logf, "%d down" % args.conns,
                     args.tls_records)
    await asyncio.gather(up.run(), down.run(), return_exceptions=True)
    for w in (cwriter, uwriter):
        w.close()


async def serve(args):
    loop = asyncio.get_running_loop()
    host, _, port = args.listen.rpartition(":")
    srv = await asyncio.start_server(lambda r, w: handle(r, w, args, loop), host.strip("[]"), int(port))
    print("PORT %d" % srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


def selftest(args):
    """Ping-pong through a relay subprocess to a local echo server: RTT and bulk rate."""
    import subprocess, threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)

    def echo():
        while True:
            c, _ = ls.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=lambda c=c: [c.sendall(d) for d in iter(lambda: c.recv(65536), b"")],
                             daemon=True).start()
    threading.Thread(target=echo, daemon=True).start()
    p = subprocess.Popen([sys.executable, __file__, "--to", "127.0.0.1:%d" % ls.getsockname()[1],
                          "--rtt-ms", str(args.rtt_ms), "--bw", args.bw], stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline().split()[1])
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for _ in range(20):
            t = time.monotonic()
            s.sendall(b"x")
            s.recv(1)
            rtts.append((time.monotonic() - t) * 1000)
        n = 250000
        t = time.monotonic()
        threading.Thread(target=s.sendall, args=(b"y" * n,), daemon=True).start()
        got = 0
        while got < n:
            got += len(s.recv(65536))
        bulk = (time.monotonic() - t) * 1000
        bw = parse_bw(args.bw)
        # n bytes cross the bottleneck twice (there and back) but pipelined:
        # expected ~ R + n*8/B + one packet's serialisation.
        exp = args.rtt_ms + n * 8 / bw * 1000 + args.mss * 8 / bw * 1000
        rtts.sort()
        print(json.dumps({"rtt_ms": args.rtt_ms, "ping_min": round(rtts[0], 3),
                          "ping_median": round(rtts[len(rtts) // 2], 3), "ping_max": round(rtts[-1], 3),
                          "bulk_bytes": n, "bulk_ms": round(bulk, 2), "bulk_expected_ms": round(exp, 2)}))
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--to", help="HOST:PORT of the proxy")
    ap.add_argument("--bind", help="source address of the connections to the proxy")
    ap.add_argument("--rtt-ms", type=float, default=0)
    ap.add_argument("--bw", default="0", help="bit/s per direction, k/m/g suffixes; 0 = unlimited")
    ap.add_argument("--mss", type=int, default=1448, help="packet size for serialisation")
    ap.add_argument("--log", help="log each delivered packet to this file")
    ap.add_argument("--tls-records", action="store_true", help="with --log: also log TLS record sizes")
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    args.logf = open(args.log, "a", buffering=1) if args.log else None
    if args.selftest:
        return selftest(args)
    if not args.to:
        ap.error("--to is required")
    # select() takes its timeout in microseconds; epoll (asyncio's default
    # here) rounds it up to whole milliseconds, which made every packet leave
    # up to 1 ms late.  A relay has a handful of sockets: select is cheap.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(serve(args))
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()


if __name__ == "__main__":
    main()

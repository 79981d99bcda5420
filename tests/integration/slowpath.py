#!/usr/bin/python3
"""A TCP relay that makes a slow network path between a test client and
herald: DELAY ms each way, and towards the client a bottleneck of RATE
bytes/s with an unbounded queue.  It reads herald's socket as fast as herald
writes, so herald's kernel sees a fast, near peer; only something that
crosses the queue (an HTTP/2 PING behind the data) shows the path.

  slowpath.py --to HOST:PORT --rate BYTES_PER_S [--delay-ms D] [--bind ADDR]

--bind: the source address of the connection to herald (another /24 of
127.0.0.0/8 looks like another client network).  Prints "PORT n" once
listening; runs until killed.
"""
import argparse
import asyncio
import selectors

PACKET = 1400  # bytes serialised as one unit


async def pipe(reader, writer, rate, delay):
    """Forward reader -> writer: each packet leaves the bottleneck when the
    ones before it have (at `rate`, or at once when rate is 0), then takes
    `delay` seconds more.  Delivery times strictly grow, so order is kept,
    and EOF follows the last packet."""
    loop = asyncio.get_running_loop()
    busy_until = 0.0
    finished = loop.create_future()

    def deliver(data):
        if data is None:
            try:
                writer.write_eof()
            except OSError:
                pass
            finished.set_result(None)
        elif not writer.is_closing():
            writer.write(data)

    while True:
        try:
            data = await reader.read(65536)
        except OSError:
            data = b""
        now = loop.time()
        for i in range(0, len(data), PACKET):
            c = data[i:i + PACKET]
            # Strictly later than the packet before, even with no rate:
            # asyncio's timers with equal deadlines may run in any order.
            busy_until = max(now, busy_until) + (len(c) / rate if rate else 1e-9)
            loop.call_at(busy_until + delay, deliver, c)
        if not data:
            busy_until = max(now, busy_until) + 1e-9
            loop.call_at(busy_until + delay, deliver, None)
            break
    await finished


async def handle(creader, cwriter, args):
    host, _, port = args.to.rpartition(":")
    try:
        ureader, uwriter = await asyncio.open_connection(
            host, int(port), local_addr=(args.bind, 0) if args.bind else None)
    except OSError:
        cwriter.close()
        return
    delay = args.delay_ms / 1000.0
    await asyncio.gather(pipe(creader, uwriter, 0, delay),
                         pipe(ureader, cwriter, args.rate, delay), return_exceptions=True)
    for w in (cwriter, uwriter):
        w.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--rate", type=float, required=True, help="bytes/s towards the client")
    ap.add_argument("--delay-ms", type=float, default=10)
    ap.add_argument("--bind")
    args = ap.parse_args()
    srv = await asyncio.start_server(lambda r, w: handle(r, w, args), "127.0.0.1", 0)
    print("PORT %d" % srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    # select() wakes to the microsecond; epoll rounds timers up to whole ms.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()

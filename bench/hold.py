#!/usr/bin/env python3
"""Holds N idle keep-alive connections to a server and reports its RSS per connection.

    hold.py --port 8080 --pids 1234[,1235...] -n 10000 --proto h1|h2 [--path /public/x]

Each connection sends one request (HTTP/1.1 keep-alive, or HTTP/2 cleartext with prior
knowledge: preface, SETTINGS, one GET), reads the answer, then stays open and silent. The RSS
of the server's processes (summed: nginx's master and workers) is read from /proc before the
connections open and once they are all held and idle; the difference over N is the memory one
idle connection costs. Prints one line: `proto n rss_before_kb rss_held_kb bytes_per_conn ok`.
Needs `ulimit -n` above N (plus a few) for this process and for the server.
"""

import argparse
import asyncio
import sys


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid):
    """The pid and its direct children (nginx's workers)."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            out += [int(p) for p in f.read().split()]
    except FileNotFoundError:
        pass
    return out


def h2_request(host, path):
    """Preface, an empty SETTINGS, and HEADERS (END_STREAM) for GET path on stream 1."""
    def literal(index, value):  # literal header field without indexing, indexed name
        v = value.encode()
        return bytes([index]) + bytes([len(v)]) + v

    # :method GET (2), :scheme http (6), :path (4), :authority (1)
    block = bytes([0x82, 0x86]) + literal(0x04, path) + literal(0x01, host)
    frame = len(block).to_bytes(3, "big") + bytes([0x1, 0x5]) + (1).to_bytes(4, "big") + block
    settings = (0).to_bytes(3, "big") + bytes([0x4, 0x0]) + (0).to_bytes(4, "big")
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + frame


async def open_one(port, proto, payload, held, sem):
    async with sem:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.write(payload)
        await writer.drain()
        got = b""
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), 10)
                if not chunk:
                    writer.close()
                    return False
                got += chunk
                if proto == "h1" and b"\r\n\r\n" in got:
                    head, _, rest = got.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    if len(rest) >= length:
                        break
                if proto == "h2" and len(got) > 9 + 9 + 30:
                    # SETTINGS, SETTINGS ACK, HEADERS, DATA: enough has come back once a DATA
                    # frame with END_STREAM is seen; a rough check is enough here.
                    if scan_h2_end_stream(got):
                        # Acknowledge the server's SETTINGS, as a real client would.
                        writer.write((0).to_bytes(3, "big") + bytes([0x4, 0x1]) + (0).to_bytes(4, "big"))
                        await writer.drain()
                        break
        except (asyncio.TimeoutError, ConnectionError):
            writer.close()
            return False
        held.append(writer)
        return True


def scan_h2_end_stream(buf):
    i = 0
    while i + 9 <= len(buf):
        length = int.from_bytes(buf[i : i + 3], "big")
        ftype, flags = buf[i + 3], buf[i + 4]
        if i + 9 + length > len(buf):
            return False
        if ftype in (0x0, 0x1) and flags & 0x1:
            return True
        i += 9 + length
    return False


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pids", required=True, help="server pid(s), comma-separated; children are added")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--proto", choices=["h1", "h2"], default="h1")
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--path", default="/public/x")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to wait once all are open")
    a = ap.parse_args()
    pids = []
    for p in a.pids.split(","):
        pids += children(int(p))
    if a.proto == "h1":
        payload = f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\n\r\n".encode()
    else:
        payload = h2_request(a.host, a.path)
    before = rss_kb(pids)
    held = []
    sem = asyncio.Semaphore(200)
    results = await asyncio.gather(*(open_one(a.port, a.proto, payload, held, sem) for _ in range(a.n)))
    ok = sum(results)
    await asyncio.sleep(a.settle)
    after = rss_kb(pids)
    per = (after - before) * 1024 / max(ok, 1)
    print(f"{a.proto} {a.n} {before} {after} {per:.0f} {ok}")
    for w in held:
        w.close()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    asyncio.run(main())
    sys.exit(0)

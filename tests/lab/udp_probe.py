#!/usr/bin/env python3
"""Tiny UDP NAT probe.

  udp_probe.py server BIND_IP PORT [SECONDS]
      echo server: replies "ip:port" of the source address it saw; exits after SECONDS (default 30)

  udp_probe.py client LOCAL_PORT DEST_IP:PORT [DEST_IP:PORT ...]
      sends from a fixed local port to every destination, prints one JSON line
      {"local_port": N, "mappings": {"dest": "seen ip:port" | null}}

  udp_probe.py reach DEST_IP:PORT [TIMEOUT]
      one connected UDP exchange; prints "reply <seen>", "timeout" or "error <errno name>"
      (exit 0 only on reply).  A connected socket surfaces ICMP unreachables as errors.

  udp_probe.py burst DEST_IP:PORT COUNT
      sends COUNT numbered probes (1 ms apart), prints {"sent": N, "replies": M}

  udp_probe.py punch LOCAL_PORT PEER_IP:PORT SECONDS
      simultaneous open: send to the peer every 50 ms from LOCAL_PORT for SECONDS,
      print {"received_from": ["ip:port", ...]} (what reached us through our NAT)
"""
import json
import socket
import sys
import time


def server(ip, port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        s.settimeout(left)
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            return
        s.sendto(f"{addr[0]}:{addr[1]}".encode(), addr)


def client(local_port, dests):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", local_port))
    out = {}
    for d in dests:
        ip, port = d.rsplit(":", 1)
        seen = None
        for _ in range(5):  # retries: tolerate configured loss
            s.sendto(b"probe", (ip, int(port)))
            s.settimeout(0.5)
            try:
                while True:
                    data, addr = s.recvfrom(2048)
                    if addr == (ip, int(port)):
                        seen = data.decode()
                        break
            except socket.timeout:
                continue
            break
        out[d] = seen
    print(json.dumps({"local_port": local_port, "mappings": out}))


def reach(dest, timeout):
    import errno
    ip, port = dest.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, int(port)))
        s.send(b"probe")
        data = s.recv(2048)
        print("reply", data.decode())
        return 0
    except socket.timeout:
        print("timeout")
    except OSError as e:
        print("error", errno.errorcode.get(e.errno, e.errno))
    return 1


def burst(dest, count):
    ip, port = dest.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((ip, int(port)))
    got = 0
    for i in range(count):
        s.send(str(i).encode())
        time.sleep(0.001)
        s.setblocking(False)
        try:
            while True:  # drain as we go so the receive buffer never overflows
                s.recv(2048)
                got += 1
        except (BlockingIOError, OSError):
            pass
        s.setblocking(True)
    s.settimeout(1.0)
    try:
        while True:
            s.recv(2048)
            got += 1
    except (socket.timeout, OSError):
        pass
    print(json.dumps({"sent": count, "replies": got}))


def punch(local_port, peer, seconds):
    ip, port = peer.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", local_port))
    s.setblocking(False)
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            s.sendto(b"punch", (ip, int(port)))
        except OSError:
            pass  # ICMP errors from the peer's router surface here
        time.sleep(0.05)
        try:
            while True:
                data, addr = s.recvfrom(2048)
                seen.add(f"{addr[0]}:{addr[1]}")
        except (BlockingIOError, OSError):
            pass
    print(json.dumps({"local_port": local_port, "received_from": sorted(seen)}))


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "punch":
        punch(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
        sys.exit(0)
    if len(sys.argv) >= 4 and sys.argv[1] == "burst":
        burst(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    if len(sys.argv) >= 3 and sys.argv[1] == "reach":
        sys.exit(reach(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 1.0))
    elif len(sys.argv) >= 4 and sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 30)
    elif len(sys.argv) >= 4 and sys.argv[1] == "client":
        client(int(sys.argv[2]), sys.argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)

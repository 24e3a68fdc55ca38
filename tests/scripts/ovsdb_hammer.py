"""Concurrent OVSDB transactions over a unix socket, recording which ones
the server acknowledged.

usage: ovsdb_hammer.py SOCKET CLIENTS TXNS_PER_CLIENT ACKED_FILE

Each transaction inserts one key into Open_vSwitch.external_ids. A key is
written to ACKED_FILE (one per line, flushed) only after the server's reply
without error arrived. The script stops quietly when the server goes away.
"""
import json
import socket
import sys
import threading

path, clients, per_client, acked_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
acked = open(acked_path, "a", buffering=1)
lock = threading.Lock()


def recv_one(sock, buf, dec):
    while True:
        try:
            obj, end = dec.raw_decode(buf[0])
            buf[0] = buf[0][end:].lstrip()
            return obj
        except ValueError:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            buf[0] += data.decode()


def client(n):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
    except OSError:
        return
    buf = [""]
    dec = json.JSONDecoder()
    for i in range(per_client):
        key = "hammer-%d-%d" % (n, i)
        req = {"id": i, "method": "transact", "params": ["Open_vSwitch", {
            "op": "mutate", "table": "Open_vSwitch", "where": [],
            "mutations": [["external_ids", "insert", ["map", [[key, "v"]]]]]}]}
        try:
            s.sendall(json.dumps(req).encode())
            while True:
                reply = recv_one(s, buf, dec)
                if reply.get("id") == i:
                    break
        except (OSError, ConnectionError):
            return
        results = reply.get("result") or []
        if reply.get("error") is None and results and all("error" not in r for r in results):
            with lock:
                acked.write(key + "\n")


threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()

"""Follows a ferrovs DB through the Python `ovs` IDL (PyPI ovs==4.0.0) and
reports which monitor methods the IDL used.

usage: idl_monitor_cond.py unix:SOCKET BRIDGE
Syncs, adds BRIDGE with ovs-vsctl (--no-wait), waits until the IDL's monitor
shows it, then prints one line "methods: m1 m2 ..." (every request method the
IDL sent, in order, with the database named when there is one), "errors: N"
(error replies received) and "seen BRIDGE".
"""
import subprocess
import sys

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller

remote, bridge = sys.argv[1], sys.argv[2]

sent, errors = [], []
orig_send = ovs.jsonrpc.Connection.send
orig_recv = ovs.jsonrpc.Connection.recv


def send(self, msg):
    if msg.type == ovs.jsonrpc.Message.T_REQUEST:
        db = msg.params[0] if msg.params and isinstance(msg.params[0], str) else ""
        sent.append(f"{msg.method}({db})")
    return orig_send(self, msg)


def recv(self):
    err, msg = orig_recv(self)
    if msg is not None and msg.type == ovs.jsonrpc.Message.T_ERROR:
        errors.append(str(msg.error))
    return err, msg


ovs.jsonrpc.Connection.send = send
ovs.jsonrpc.Connection.recv = recv

# The IDL's schema comes from the server (get_schema), as OpenStack agents do.
helper = ovs.db.idl.SchemaHelper(
    schema_json=__import__("json").loads(
        subprocess.run(
            ["ovsdb-client", "get-schema", remote, "Open_vSwitch"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
)
helper.register_all()
idl = ovs.db.idl.Idl(remote, helper)


def run_until(cond, what):
    for _ in range(300):
        idl.run()
        if cond():
            return
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.timer_wait(100)
        poller.block()
    sys.exit(f"timed out waiting for {what}; methods: {' '.join(sent)}; errors: {errors}")


run_until(lambda: idl.tables["Open_vSwitch"].rows, "the Open_vSwitch row")
subprocess.run(
    ["ovs-vsctl", f"--db={remote}", "--no-wait", "add-br", bridge], check=True
)
run_until(
    lambda: any(b.name == bridge for b in idl.tables["Bridge"].rows.values()),
    f"bridge {bridge} through the monitor",
)
print("methods:", " ".join(sent))
print("errors:", len(errors), errors)
print("seen", bridge)
idl.close()

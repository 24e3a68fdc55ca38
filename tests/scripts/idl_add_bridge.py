"""Adds a bridge through the Python `ovs` IDL (PyPI ovs==4.0.0), the way
OpenStack's agents drive Open vSwitch.

usage: idl_add_bridge.py unix:SOCKET BRIDGE
Prints "committed" after a successful commit_block().
"""
import json
import socket
import sys

import ovs.db.idl
import ovs.poller

remote, bridge = sys.argv[1], sys.argv[2]

# Fetch the schema from the server itself.
s = socket.socket(socket.AF_UNIX)
s.connect(remote[len("unix:"):])
s.sendall(json.dumps({"id": 0, "method": "get_schema", "params": ["Open_vSwitch"]}).encode())
buf, dec = "", json.JSONDecoder()
while True:
    buf += s.recv(1 << 20).decode()
    try:
        reply, _ = dec.raw_decode(buf)
        break
    except ValueError:
        continue
s.close()
schema = reply["result"]

helper = ovs.db.idl.SchemaHelper(schema_json=schema)
helper.register_all()
idl = ovs.db.idl.Idl(remote, helper)
seq = idl.change_seqno
for _ in range(500):
    idl.run()
    if idl.change_seqno != seq and idl.tables["Open_vSwitch"].rows:
        break
    poller = ovs.poller.Poller()
    idl.wait(poller)
    poller.timer_wait(100)
    poller.block()
else:
    sys.exit("IDL never received the Open_vSwitch table")

txn = ovs.db.idl.Transaction(idl)
ovs_row = next(iter(idl.tables["Open_vSwitch"].rows.values()))
iface = txn.insert(idl.tables["Interface"])
iface.name = bridge
iface.type = "internal"
port = txn.insert(idl.tables["Port"])
port.name = bridge
port.interfaces = [iface]
br = txn.insert(idl.tables["Bridge"])
br.name = bridge
br.ports = [port]
ovs_row.addvalue("bridges", br.uuid)
status = txn.commit_block()
if status not in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
    sys.exit("commit failed: %s %s" % (status, txn.get_error()))
print("committed")

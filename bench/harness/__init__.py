"""Side-by-side benchmark harness for ferrovs against Open vSwitch and the Linux bridge.

Entry point: ``bench/run``. One module per scenario family lives in ``scenarios/``;
one module per switch lives in ``switches/``.
"""

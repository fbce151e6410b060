"""Test doubles shared by the tests and the benchmarks: `receiver.FaultyReceiver`, a webhook server that
injects faults and counts what it applied.

They live in the package (not under tests/) because `beacon bench activation` delivers to the receiver;
runtime code never imports them (the `.importlinter` contract fails the build if it does).
"""

"""The fault suite: busline against real servers that restart, crash, stall and lie.

``scripts/faults [--long]`` (or ``python -m tests.faults``) runs every scenario and prints the
report; ``tests/faults/test_faults.py`` runs the short version under pytest (see README.md,
"Reliability: the fault suite")."""

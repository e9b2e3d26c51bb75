"""busline's benchmark suite: busline side by side with plain aio-pika and FastStream.

Run it with ``scripts/bench`` or ``python -m benchmarks`` (``--help`` lists the knobs). Every
(system, workload, repeat) runs in its own subprocess, so event loops never share state and the
peak RSS recorded belongs to one system alone. Systems alternate within each repeat, and the order
rotates between repeats, so a slow drift of the machine or the broker hits every system alike.
"""

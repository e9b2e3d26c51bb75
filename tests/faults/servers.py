"""The fault suite's own servers: a RabbitMQ node, a three-node RabbitMQ cluster and a
PostgreSQL cluster, each on ports nobody else uses.

Restarting the shared broker (5672) or database (5432) would break other people's tests, so
every scenario that stops or restarts a server does it to one of these. The RabbitMQ nodes are
run by ``scripts/services.sh`` (``BUSLINE_RABBIT_PORT``); PostgreSQL is an ``initdb`` of our own
in a temporary folder, stopped and deleted by :meth:`OwnPostgres.close`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.sh"

#: AMQP port of the suite's single node (its Erlang distribution port is this + 20000).
RABBIT_PORT = int(os.environ.get("BUSLINE_FAULTS_RABBIT_PORT", "5697"))
#: AMQP ports of the suite's own cluster (the shared one on 5681-5683 belongs to others).
CLUSTER_PORTS = (5691, 5692, 5693)
PG_PORT = int(os.environ.get("BUSLINE_FAULTS_PG_PORT", "5498"))


class ServerError(RuntimeError):
    """A server command failed; the message carries its output."""


def services(port: int, *args: str, timeout: float = 180.0) -> str:
    """Run ``scripts/services.sh ARGS`` aimed at the RabbitMQ node on ``port``."""
    env = {**os.environ, "BUSLINE_RABBIT_PORT": str(port)}
    proc = subprocess.run(
        ["bash", str(SERVICES), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise ServerError(f"services.sh {' '.join(args)} (port {port}): {proc.stderr.strip()}")
    return proc.stdout


class RabbitNode:
    """One RabbitMQ node of ours, driven through ``scripts/services.sh``."""

    def __init__(self, port: int = RABBIT_PORT) -> None:
        self.port = port
        self.name = f"busline{port}@localhost"

    def url(self, vhost: str = "") -> str:
        """The AMQP URL of ``vhost`` on this node."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    def start(self) -> None:
        """Start the node (or its application after a fast stop); return once it serves."""
        services(self.port, "start-rabbitmq")

    def stop(self, *, fast: bool = False) -> None:
        """Stop the node (``fast``: only the broker application, the VM stays up)."""
        services(self.port, "stop-rabbitmq", *(["--fast"] if fast else []))

    def new_vhost(self) -> str:
        """A fresh vhost (guest may do everything in it); returns its URL."""
        name = f"faults-{uuid.uuid4().hex[:8]}"
        services(self.port, "add-vhosts", name)
        return self.url(name)

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl ARGS`` against this node."""
        return services(self.port, "rabbitmqctl", *args)

    def restart(self, *, fast: bool = False) -> None:
        """Stop and start the node; every client connection is dropped meanwhile."""
        services(self.port, "restart-rabbitmq", *(["--fast"] if fast else []))

    async def astart(self) -> None:
        """:meth:`start` off the event loop, so clients keep reconnecting meanwhile."""
        await asyncio.to_thread(self.start)

    async def arestart(self, *, fast: bool = False) -> None:
        """:meth:`restart` off the event loop."""
        await asyncio.to_thread(self.restart, fast=fast)

    async def astop(self, *, fast: bool = False) -> None:
        """:meth:`stop` off the event loop."""
        await asyncio.to_thread(self.stop, fast=fast)


class RabbitCluster:
    """Three nodes of ours joined into one cluster (like ``services.sh start-cluster``, but on
    ports of the fault suite, so stopping a node never touches someone else's cluster)."""

    def __init__(self, ports: tuple[int, ...] = CLUSTER_PORTS) -> None:
        self.nodes = [RabbitNode(port) for port in ports]

    def start(self) -> None:
        """Start every node and join the second and third to the first (once)."""
        for node in self.nodes:
            node.start()
        first = self.nodes[0].name
        for node in self.nodes[1:]:
            if first in node.ctl("-q", "cluster_status", "--formatter", "json"):
                continue
            node.ctl("-q", "stop_app")
            node.ctl("-q", "reset")
            node.ctl("-q", "join_cluster", first)
            node.ctl("-q", "start_app")

    def stop(self) -> None:
        """Stop every node and forget the cluster (best effort: a failure to stop one does not
        keep the others up).

        The nodes' data is deleted: a clustered node that was not the last to stop waits for
        its peers when it starts, and services.sh starts nodes one at a time, so a cluster kept
        on disk could not start again. Each run joins three fresh nodes instead (~10 s more).
        """
        problems = []
        for node in self.nodes:
            try:
                node.stop()
            except (ServerError, subprocess.TimeoutExpired) as exc:
                problems.append(str(exc))
                continue
            for path in (ROOT / ".services" / "rabbitmq" / "mnesia").glob(f"{node.name}*"):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        if problems:
            raise ServerError("; ".join(problems))

    def leader_of(self, vhost: str, queue: str) -> str:
        """The node name leading quorum queue ``queue`` of ``vhost``."""
        out = self.nodes[0].ctl(
            "-q", "list_queues", "-p", vhost, "name", "leader", "--no-table-headers"
        )
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and parts[0] == queue:
                return parts[1].strip()
        raise ServerError(f"queue {queue} not found in vhost {vhost}")


class OwnPostgres:
    """A PostgreSQL cluster of our own: ``initdb`` in a temporary folder, on :data:`PG_PORT`.

    Trust authentication on loopback only (a throwaway test server). As root the server runs as
    the ``postgres`` OS user, which is why the folder lives in /var/tmp (it must reach it).
    """

    def __init__(self, port: int = PG_PORT) -> None:
        self.port = port
        self.bindir = _pg_bindir()
        self.folder = Path(tempfile.mkdtemp(prefix="busline-faults-pg-", dir="/var/tmp"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self._user = "postgres" if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        proc = subprocess.run(
            command, cwd="/", capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ServerError(f"{args[0]} failed: {proc.stderr.strip()} {proc.stdout}\n{tail}")

    def init(self) -> None:
        """Create the cluster's data folder (once)."""
        if self._user:
            shutil.chown(self.folder, self._user)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        """Start the server; return once it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c max_connections=300 -c log_min_messages=warning"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self) -> None:
        """Stop the server the way an operator restarting it does (``-m fast``: open
        transactions are rolled back and every client is disconnected at once)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def new_database(self) -> str:
        """A fresh database; returns its URL."""
        name = f"faults_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.url())
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return self.url(name)

    def close(self) -> None:
        """Stop the server if it runs and delete its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _pg_bindir() -> Path:
    """The newest /usr/lib/postgresql/*/bin with initdb and pg_ctl."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise ServerError("no PostgreSQL binaries (initdb, pg_ctl) found")

"""Real redis-server and PostgreSQL servers for the integration tests.

Each server runs from the Debian binaries in its own temporary directory, on a loopback
port the kernel picked as free, in its own process group. Start-up is awaited by polling
a readiness probe with a deadline (a raw-socket PING for Redis, the "ready" line of
postmaster.pid for PostgreSQL, the file `pg_ctl -w` reads), never by a fixed sleep. Tests
may stop, kill and restart a server: it comes back on the same port, as a restarted
server does for a client that reconnects.

conftest.py turns these classes into fixtures; nothing here imports herdcache.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.01
PORT_ATTEMPTS = 5  # a port found free can be taken before the server binds it


class ServerError(RuntimeError):
    """A test server failed to start or stop; the message carries its log's tail."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    """The environment servers run in: the tests', less a sanitizer runtime preloaded into
    them (scripts/test.sh --sanitize): the servers are not what is under test, and
    PostgreSQL's backends would report their own leaks at every exit."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS")}


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Process:
    """One server process in its own session (process group), its output in a log file."""

    def __init__(self, argv: list[str], log_path: Path, **popen_kwargs) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=server_env(), **popen_kwargs,
            )

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_until(self, ready, what: str) -> None:
        """Poll `ready()` until it is true; raise if the process exits or time runs out."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if not self.running:
                raise ServerError(f"{what} exited with {self.popen.returncode}:\n{_log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"{what} not ready after {START_TIMEOUT_S}s:\n{_log_tail(self.log_path)}")
            time.sleep(POLL_INTERVAL_S)

    def stop(self, sig: int) -> None:
        """Send `sig` and wait for the exit; SIGKILL the whole group if it takes too long."""
        if self.running:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
                return
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL every process of the group (a server's children too) and reap the leader."""
        if self.popen.returncode is None:  # not reaped yet, so the group id is still ours
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait()


class _Server:
    """What both servers share: a port kept across restarts, start/stop/kill."""

    stop_signal = signal.SIGTERM

    def __init__(self) -> None:
        self.port: int | None = None  # chosen at the first start, kept across restarts
        self._process: _Process | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def start(self) -> None:
        """Start the server (on the same port after a stop or kill); no-op when running."""
        if self.running:
            return
        if self.port is not None:
            self._spawn(self.port)
            return
        for attempt in range(PORT_ATTEMPTS):
            try:
                self._spawn(self._pick_port())
                return
            except ServerError:
                self.port = None
                if attempt == PORT_ATTEMPTS - 1:
                    raise

    def _pick_port(self) -> int:
        """The port a first start tries (a cluster node needs its bus port free too)."""
        return free_port()

    def _spawn(self, port: int) -> None:
        """Start on `port` and wait until ready (sets self.port and self._process)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Graceful shutdown, waited for (SIGKILL after STOP_TIMEOUT_S)."""
        if self._process is not None:
            self._process.stop(self.stop_signal)

    def kill(self) -> None:
        """SIGKILL the server and all its processes at once, as in a crash."""
        if self._process is not None:
            self._process.kill()


# --- Redis -----------------------------------------------------------------------------

def find_redis_server(name: str = "redis-server") -> str | None:
    """The Redis binary `name` (redis-server, redis-cli) on PATH or where Debian and
    `make install` put it."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/local/bin/{name}") if os.access(p, os.X_OK)), None)


def resp_command(address: tuple[str, int] | str, *args: str | bytes, timeout_s: float = 2.0):
    """Send one command over a new raw socket and return its reply, decoded minimally:
    simple string → str, error → ServerError raised, integer → int, bulk → bytes or None,
    array → list (None for a nil array).
    `address` is (host, port) or a Unix socket path."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(address)
        sock.sendall(_encode(*args))
        with sock.makefile("rb") as reader:
            return _read_reply(reader)


def _read_reply(reader):
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise ServerError(f"redis replied {rest.decode()!r}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else reader.read(size + 2)[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read_reply(reader) for _ in range(size)]
    raise ServerError(f"unexpected reply {line!r}")


class TlsFiles:
    """A throwaway CA and the certificates it signed, made with the openssl CLI in
    `directory` (EC P-256 keys, valid for two days):

        ca.crt            the CA the servers' and the client's certificates chain to
        server.crt/.key   for the DNS name 'localhost' only (so 127.0.0.1 does not match)
        client.crt/.key   a client certificate (for --tls-auth-clients yes)
        other-ca.crt      a CA that signed nothing here: the wrong CA to verify against
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._ca("ca", "herdcache test CA")
        self._ca("other-ca", "herdcache other CA")
        self._leaf("server", "localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth")
        self._leaf("client", "herdcache client", "extendedKeyUsage=clientAuth")

    def path(self, name: str) -> str:
        return str(self.directory / name)

    @property
    def ca(self) -> str:
        return self.path("ca.crt")

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=self.directory, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServerError(f"openssl {' '.join(args)} failed:\n{result.stderr}")

    def _key(self, name: str) -> None:
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key")

    def _ca(self, name: str, common_name: str) -> None:
        self._key(name)
        self._openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
                      "-subj", f"/CN={common_name}")

    def _leaf(self, name: str, common_name: str, extensions: str) -> None:
        self._key(name)
        self._openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}")
        (self.directory / f"{name}.ext").write_text(extensions + "\n")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")


class RedisServer(_Server):
    """redis-server on 127.0.0.1:`port` and on a Unix socket, no persistence; with `tls`
    also TLS on 127.0.0.1:`tls_port` (the server certificate of TlsFiles, for 'localhost'),
    asking clients for a certificate when `tls_auth_clients`.
    stop() is SIGTERM (a clean shutdown)."""

    def __init__(self, binary: str, directory: Path, tls: TlsFiles | None = None,
                 tls_auth_clients: bool = False, extra_args: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.binary = binary
        self.directory = directory
        self.tls = tls
        self.tls_auth_clients = tls_auth_clients
        self.extra_args = extra_args  # more redis-server options, e.g. ("--replicaof", host, port)
        self.tls_port: int | None = None  # chosen with port, kept across restarts

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def tls_url(self, host: str = "localhost", **params: str) -> str:
        """rediss://host:tls_port/0 verifying against the test CA, unless params say
        otherwise (ssl_ca_certs=None drops it: the system CA store)."""
        assert self.tls is not None, "a RedisServer without tls"
        params = {"ssl_ca_certs": self.tls.ca, **params}
        query = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in params.items() if v is not None)
        return f"rediss://{host}:{self.tls_port}/0" + (f"?{query}" if query else "")

    @property
    def unix_socket(self) -> str:
        return str(self.directory / "redis.sock")

    @property
    def unix_url(self) -> str:
        return f"unix://{self.unix_socket}?db=0"

    def command(self, *args: str | bytes):
        """One command over a raw TCP socket (see resp_command)."""
        return resp_command(("127.0.0.1", self.port), *args)

    def ping(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except (OSError, ServerError):
            return False

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def _spawn(self, port: int) -> None:
        tls_args: list[str] = []
        if self.tls is not None:
            if self.port != port or self.tls_port is None:  # a first start, not a restart
                self.tls_port = free_port()
            tls_args = ["--tls-port", str(self.tls_port),
                        "--tls-cert-file", self.tls.path("server.crt"), "--tls-key-file", self.tls.path("server.key"),
                        "--tls-ca-cert-file", self.tls.ca,
                        "--tls-auth-clients", "yes" if self.tls_auth_clients else "no"]
        self.port = port
        self._process = _Process(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1",
             "--unixsocket", self.unix_socket, "--unixsocketperm", "700",
             "--dir", str(self.directory), "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--logfile", "", *tls_args, *self.extra_args],
            self.directory / "redis.log", cwd=self.directory,
        )
        self._process.wait_until(self.ping, f"redis-server on port {port}")



# --- Sentinel --------------------------------------------------------------------------

SENTINEL_SERVICE = "mymaster"
SENTINEL_DOWN_AFTER_MS = 500   # a killed master is down for sentinels after this
SENTINEL_FAILOVER_TIMEOUT_MS = 3000


class SentinelServer(_Server):
    """`redis-server --sentinel` on 127.0.0.1:`port`, monitoring SENTINEL_SERVICE at
    `master_port` with quorum 2 and short failover timings. Sentinel rewrites its config
    file, so each start writes a fresh one. With `password`: sentinels ask clients (and
    each other) for it."""

    def __init__(self, binary: str, directory: Path, master_port: int, password: str | None = None,
                 tls: TlsFiles | None = None) -> None:
        super().__init__()
        self.binary = binary
        self.directory = directory
        self.master_port = master_port
        self.password = password
        self.tls = tls  # also TLS on tls_port, and TLS to the servers it monitors
        self.tls_port: int | None = None

    def command(self, *args: str | bytes):
        if self.password is None:
            return resp_command(("127.0.0.1", self.port), *args)
        return _authed_command(("127.0.0.1", self.port), self.password, *args)

    def ping(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except (OSError, ServerError):
            return False

    def _spawn(self, port: int) -> None:
        self.port = port
        lines = [f"port {port}", "bind 127.0.0.1", f"dir {self.directory}",
                 f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {self.master_port} 2",
                 f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {SENTINEL_DOWN_AFTER_MS}",
                 f"sentinel failover-timeout {SENTINEL_SERVICE} {SENTINEL_FAILOVER_TIMEOUT_MS}",
                 f"sentinel parallel-syncs {SENTINEL_SERVICE} 1"]
        if self.password is not None:
            lines += [f"requirepass {self.password}", f"sentinel sentinel-pass {self.password}"]
        if self.tls is not None:
            self.tls_port = self.tls_port or free_port()
            lines += [f"tls-port {self.tls_port}", f"tls-cert-file {self.tls.path('server.crt')}",
                      f"tls-key-file {self.tls.path('server.key')}", f"tls-ca-cert-file {self.tls.ca}",
                      "tls-auth-clients no", "tls-replication yes"]
        config = self.directory / "sentinel.conf"
        config.write_text("\n".join(lines) + "\n")
        self._process = _Process([self.binary, str(config), "--sentinel"], self.directory / "sentinel.log",
                                 cwd=self.directory)
        self._process.wait_until(self.ping, f"redis-sentinel on port {port}")


def _authed_command(address: tuple[str, int], password: str, *args: str | bytes):
    """AUTH then one command on one raw socket."""
    with socket.create_connection(address, timeout=2.0) as sock:
        sock.sendall(_encode("AUTH", password) + _encode(*args))
        with sock.makefile("rb") as reader:
            _read_reply(reader)
            return _read_reply(reader)


def _encode(*args: str | bytes) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class SentinelTopology:
    """One master, one replica and three sentinels on loopback ports, each in a directory
    of its own under `directory`. start() returns once the replica is in sync and every
    sentinel knows the replica and the two other sentinels (so a failover can run).
    `sentinel_password`: the sentinels' own AUTH. With `tls` replication, monitoring and
    the addresses the sentinels name are the servers' TLS ports (their plain ports stay
    open for the fixtures' own commands), and url() is rediss+sentinel://."""

    def __init__(self, binary: str, directory: Path, sentinel_password: str | None = None,
                 tls: TlsFiles | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.sentinel_password = sentinel_password
        self.tls = tls
        (directory / "master").mkdir()
        (directory / "replica").mkdir()
        self.master = RedisServer(binary, directory / "master", tls=tls)
        self.replica: RedisServer | None = None
        self.sentinels: list[SentinelServer] = []

    def start(self) -> None:
        self.master.start()
        master_port = self._service_port(self.master)
        tls_args = ("--tls-replication", "yes") if self.tls is not None else ()
        self.replica = RedisServer(self.binary, self.directory / "replica", tls=self.tls,
                                   extra_args=("--replicaof", "127.0.0.1", str(master_port), *tls_args))
        self.replica.start()
        _wait_for(lambda: b"master_link_status:up" in self.replica.command("INFO", "replication"),
                  "replica in sync", self.replica)
        for i in range(3):
            d = self.directory / f"sentinel{i}"
            d.mkdir()
            sentinel = SentinelServer(self.binary, d, master_port, self.sentinel_password, self.tls)
            self.sentinels.append(sentinel)
            sentinel.start()
        for sentinel in self.sentinels:
            _wait_for(lambda: self._knows_everyone(sentinel), "sentinels discovering each other", sentinel)

    def _knows_everyone(self, sentinel: SentinelServer) -> bool:
        fields = sentinel.command("SENTINEL", "master", SENTINEL_SERVICE)
        info = dict(zip(fields[::2], fields[1::2]))
        return info.get(b"num-other-sentinels") == b"2" and info.get(b"num-slaves") == b"1"

    def _service_port(self, server: "RedisServer | SentinelServer") -> int:
        """The port others reach `server` on: its TLS port in a TLS topology."""
        port = server.tls_port if self.tls is not None else server.port
        assert port is not None
        return port

    def url(self, **params: str) -> str:
        hosts = ",".join(f"127.0.0.1:{self._service_port(s)}" for s in self.sentinels)
        scheme = "redis+sentinel"
        if self.sentinel_password is not None:
            params = {"sentinel_password": self.sentinel_password, **params}
        if self.tls is not None:  # the certificates name 'localhost'; the sentinels say 127.0.0.1
            scheme = "rediss+sentinel"
            params = {"ssl_ca_certs": self.tls.ca, "ssl_check_hostname": "false", **params}
        query = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in params.items())
        return f"{scheme}://{hosts}/{SENTINEL_SERVICE}/0" + (f"?{query}" if query else "")

    def server_on(self, port: int) -> RedisServer:
        """The server the sentinels name at `port` (a service port)."""
        assert self.replica is not None
        return self.master if self._service_port(self.master) == port else self.replica

    def service_port(self, server: RedisServer) -> int:
        return self._service_port(server)

    def switch_watch(self, sentinel: int = 0) -> "SwitchWatch":
        return SwitchWatch(self.sentinels[sentinel])

    def stop(self) -> None:
        for server in [*self.sentinels, self.replica, self.master]:
            if server is not None:
                server.kill()  # nothing to keep: no persistence, a fresh topology per use


class SwitchWatch:
    """Subscribed to +switch-master on one sentinel from the moment it is made: wait()
    blocks until the next switch is announced (a notification, with a deadline)."""

    def __init__(self, sentinel: SentinelServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", sentinel.port), timeout=START_TIMEOUT_S)
        self.reader = self.sock.makefile("rb")
        if sentinel.password is not None:
            self.sock.sendall(_encode("AUTH", sentinel.password))
            _read_reply(self.reader)
        self.sock.sendall(_encode("SUBSCRIBE", "+switch-master"))
        _read_reply(self.reader)  # the confirmation: subscribed from here on

    def wait(self, timeout_s: float) -> str:
        """The switch's payload ("<name> <old-ip> <old-port> <new-ip> <new-port>")."""
        self.sock.settimeout(timeout_s)
        message = _read_reply(self.reader)
        return message[2].decode()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _wait_for(ready, what: str, server: _Server) -> None:
    """Poll `ready()` (another process's state; nothing announces it) up to START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if ready():
                return
        except (OSError, ServerError):
            pass
        if time.monotonic() > deadline:
            log = server._process.log_path if server._process else None
            raise ServerError(f"{what}: not after {START_TIMEOUT_S}s:\n{_log_tail(log) if log else ''}")
        time.sleep(POLL_INTERVAL_S)


# --- Redis Cluster ---------------------------------------------------------------------

CLUSTER_BUS_OFFSET = 10000  # a node's cluster bus listens on its port + this (Redis' default)
# A node unreachable this long is failing and its replica takes over: short enough for a
# killed-master test, long enough that a busy 2-core machine does not fail one over.
CLUSTER_NODE_TIMEOUT_MS = 5000
CLUSTER_PORT_ATTEMPTS = 100  # kernel picks tried for a port whose bus port is free too


def free_cluster_port() -> int:
    """A free loopback port whose bus port (+CLUSTER_BUS_OFFSET, at most 65535) was free
    a moment ago too."""
    for _ in range(CLUSTER_PORT_ATTEMPTS):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
            except OSError:
                continue
        return port
    raise ServerError(f"no free port with a free bus port in {CLUSTER_PORT_ATTEMPTS} tries")


def _fields(text: bytes) -> dict[str, str]:
    """The "key:value" lines of CLUSTER INFO or INFO."""
    pairs = (line.split(":", 1) for line in text.decode().splitlines() if ":" in line)
    return {k: v.strip() for k, v in pairs}


class ClusterNode(RedisServer):
    """redis-server with --cluster-enabled, its node table in `config_file` (which outlives
    a restart, so a node restarted on its port rejoins as itself)."""

    def __init__(self, binary: str, directory: Path, config_file: Path) -> None:
        super().__init__(binary, directory, extra_args=(
            "--cluster-enabled", "yes", "--cluster-config-file", str(config_file),
            "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
            # A replica's first sync starts at once, not after the 5 s default wait for
            # more replicas to share the transfer.
            "--repl-diskless-sync-delay", "0"))
        self.config_file = config_file

    def _pick_port(self) -> int:
        return free_cluster_port()

    def _spawn(self, port: int) -> None:
        if port != self.port:  # a first start, or a retry on another port: a new node
            self.config_file.unlink(missing_ok=True)
        super()._spawn(port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cluster_info(self) -> dict[str, str]:
        return _fields(self.command("CLUSTER", "INFO"))

    def role(self) -> str:
        """"master" or "slave", as ROLE says now (a failover changes it)."""
        return self.command("ROLE")[0].decode()


class ClusterTopology:
    """A Redis Cluster on loopback: `masters` masters with `replicas` replicas each (3 and
    1: six nodes), each node a ClusterNode in a directory of its own under `directory`,
    its node table in `directory`/nodes-N.conf. start() creates the cluster with
    `redis-cli --cluster create` and returns once every node says cluster_state:ok and
    knows every other node, and every replica is in sync with its master. stop() kills
    every node and removes the files."""

    def __init__(self, binary: str, cli: str, directory: Path, masters: int = 3, replicas: int = 1) -> None:
        self.cli = cli
        self.directory = directory
        self.replicas_per_master = replicas
        self.nodes: list[ClusterNode] = []
        for i in range(masters * (1 + replicas)):
            (directory / f"node-{i}").mkdir()
            self.nodes.append(ClusterNode(binary, directory / f"node-{i}", directory / f"nodes-{i}.conf"))

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        argv = [self.cli, "--cluster", "create", *(n.address for n in self.nodes),
                "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"]
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=START_TIMEOUT_S, env=server_env())
        except subprocess.TimeoutExpired as e:
            raise ServerError(f"redis-cli --cluster create: not done after {START_TIMEOUT_S}s:\n{e.stdout}") from e
        if result.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed ({result.returncode}):\n"
                              f"{result.stdout}{result.stderr}")
        known = str(len(self.nodes))  # gossip may still be spreading after cluster_state:ok
        for node in self.nodes:
            _wait_for(lambda: node.cluster_info().get("cluster_state") == "ok", "cluster_state:ok", node)
            _wait_for(lambda: node.cluster_info().get("cluster_known_nodes") == known,
                      f"cluster_known_nodes:{known}", node)
        for node in self.replicas():
            _wait_for(lambda: _fields(node.command("INFO", "replication")).get("master_link_status") == "up",
                      "cluster replica in sync", node)

    def masters(self) -> list[ClusterNode]:
        """The running nodes that are masters now."""
        return [n for n in self.nodes if n.running and n.role() == "master"]

    def replicas(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.running and n.role() == "slave"]

    def url(self) -> str:
        """redis+cluster:// with every node as a seed."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def flushall(self) -> None:
        """Every master's keys removed (their replicas follow)."""
        for master in self.masters():
            master.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()  # nothing to keep: no persistence, a fresh cluster per use
        shutil.rmtree(self.directory, ignore_errors=True)


# --- PostgreSQL ------------------------------------------------------------------------

def find_postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL server (/usr/lib/postgresql/N/bin), else initdb on PATH."""
    def major(bindir: Path) -> int:
        return int(bindir.parent.name) if bindir.parent.name.isdigit() else 0

    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    on_path = shutil.which("initdb")
    for bindir in sorted(debian, key=major, reverse=True) + ([Path(on_path).parent] if on_path else []):
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    return None


class PostgresServer(_Server):
    """A PostgreSQL cluster of its own: trust auth, superuser `postgres`, no fsync.
    stop() is SIGINT, the fast shutdown (clients disconnected at once); after kill() the
    next start() runs crash recovery.

    PostgreSQL refuses to run as root, so when we are root the cluster's directory is
    given to the `postgres` system user (created by Debian's package) and the server runs
    as that user; otherwise it runs as us. `directory` must be reachable by that user.
    """

    superuser = "postgres"
    stop_signal = signal.SIGINT

    def __init__(self, bindir: Path, directory: Path) -> None:
        super().__init__()
        self.bindir = bindir
        self.directory = directory
        self.data_dir = directory / "data"
        self._as_user: dict = {}
        if os.geteuid() == 0:
            self._as_user = {"user": "postgres", "group": "postgres", "extra_groups": []}
            shutil.chown(directory, "postgres", "postgres")
        self._run([str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
                   "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"], "initdb")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    @property
    def socket_dir(self) -> str:
        return str(self.directory)

    def _run(self, argv: list[str], what: str) -> None:
        result = subprocess.run(argv, cwd=self.directory, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, env=server_env(), **self._as_user)
        if result.returncode != 0:
            raise ServerError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def _ready(self) -> bool:
        """postmaster.pid names this postmaster and its status line says "ready"."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(self._process.popen.pid) and lines[7].strip() == "ready"

    def _spawn(self, port: int) -> None:
        self.port = port
        self._process = _Process(
            [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(port),
             "-k", self.socket_dir, "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            self.directory / "postgres.log", cwd=self.directory, **self._as_user,
        )
        self._process.wait_until(self._ready, f"postgres on port {port}")

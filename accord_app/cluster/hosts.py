"""Hosts: a cluster whose workers each run as a machine of their own, simulated on this one.

A host is a worker with its own data folder (nothing shared on disk) and its own network
address. On Linux as root, each host is a network namespace: a network stack of its own with
`lo` and one veth link to a bridge in this machine's namespace, where the proxy runs. The
addresses come from a private /24, 10.231.x.0/24, that nothing else here uses: the bridge is
10.231.x.1 (the gateway, where hosts reach the proxy), host n is 10.231.x.(10+n). Cutting a
host's link (`ip link set ... down`, `HostNetwork.cut`) is a cable pulled out: its packets are
lost, not refused, so callers learn it only from their deadlines.

Elsewhere (macOS, or not root) hosts fall back to ports of their own on loopback: the same
processes and folders, but nothing to cut between them.

Each network takes the lock of its `x` for as long as it lives, so parallel runs never share
one; names carry `x` too (namespace accord-x-n, bridge accord-x), so a run that finds such
names under a lock it holds knows they are the leftovers of a run that died, and removes them.
"""

import fcntl
import ipaddress
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# The private range the hosts' /24s are cut from: 10.231.x.0/24, x from 1 to 254.
SUBNETS = "10.231.{x}.0/24"
GATEWAY_OCTET = 1
FIRST_HOST_OCTET = 10
MAX_HOSTS = 64
LOCK_DIR = Path("/run/accord-hosts")
IP_TIMEOUT_SECONDS = 10.0


class HostError(RuntimeError):
    """The hosts' network could not be made or changed; the message says what `ip` said."""


@dataclass(frozen=True)
class Host:
    """Where one worker of a cluster runs.

    listen: the host:port it binds; netns: the Linux network namespace it runs in (None: this
    machine's own); dial: where the proxy reaches it, when that is not `listen` (a relay on the
    path). The proxy hashes `address`, so placement must use the same string."""

    listen: str
    netns: str | None = None
    dial: str | None = None

    @property
    def address(self) -> str:
        return self.dial or self.listen

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run on this host: inside its namespace, if it has one."""
        return list(argv) if self.netns is None else ["ip", "netns", "exec", self.netns, *argv]


@dataclass(frozen=True)
class Hosts:
    """A cluster's hosts, in worker order, and the gateway: the address, on this machine, at
    which they reach the proxy and the catalog (both listen there too). network: the gateway
    with the hosts' prefix (10.231.7.1/24), None when the hosts are on loopback."""

    members: tuple[Host, ...]
    gateway: str
    network: str | None = None


def namespaces_unavailable() -> str | None:
    """Why hosts cannot be network namespaces here, or None if they can."""
    if sys.platform != "linux":
        return f"network namespaces are Linux's, and this is {sys.platform}"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing: apt-get install iproute2"
    return None


def loopback_hosts(ports: Sequence[int], host: str = "127.0.0.1") -> Hosts:
    """The fallback: one loopback port per host."""
    return Hosts(tuple(Host(f"{host}:{port}") for port in ports), gateway=host)


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS...`; its output, or a HostError with what it said."""
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_SECONDS, check=False
    )
    if check and done.returncode != 0:
        raise HostError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


class HostNetwork:
    """K network namespaces joined by veth pairs to a bridge, made by `create()` (or `with`)
    and removed by `close()`, even when the run fails halfway. x: the subnet 10.231.x.0/24 to
    take (default: any free one)."""

    def __init__(self, count: int, x: int | None = None) -> None:
        if not 1 <= count <= MAX_HOSTS:
            raise HostError(f"a host network has 1 to {MAX_HOSTS} hosts, not {count}")
        if x is not None and not 1 <= x <= 254:
            raise HostError(f"the subnet 10.231.x.0/24 takes x from 1 to 254, not {x}")
        self.count = count
        self.wanted = x
        self.x: int | None = None
        self._lock_fd: int | None = None

    # -- names and addresses ---------------------------------------------------------------------

    def _x(self) -> int:
        if self.x is None:
            raise HostError("the host network is not created yet")
        return self.x

    @property
    def bridge(self) -> str:
        return f"accord-{self._x()}"

    def name(self, number: int) -> str:
        """Host `number`'s (1-based) namespace, and its link's end on the bridge: one name."""
        return f"{self.bridge}-{number}"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(SUBNETS.format(x=self._x()))

    @property
    def gateway(self) -> str:
        return str(self.subnet[GATEWAY_OCTET])

    def ip_of(self, number: int) -> str:
        return str(self.subnet[FIRST_HOST_OCTET + number])

    def hosts(self, port: int) -> Hosts:
        """Every host listening on `port` of its own address (namespaces have all ports free)."""
        members = tuple(
            Host(f"{self.ip_of(n)}:{port}", netns=self.name(n)) for n in range(1, self.count + 1)
        )
        return Hosts(members, self.gateway, f"{self.gateway}/{self.subnet.prefixlen}")

    # -- making and removing -------------------------------------------------------------------

    def create(self) -> "HostNetwork":
        reason = namespaces_unavailable()
        if reason is not None:
            raise HostError(reason)
        self._claim_subnet()
        try:
            self._remove_leftovers()
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Remove every namespace and the bridge, then let the subnet go."""
        if self.x is None:
            return
        try:
            self._remove_leftovers()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self.x = None

    def cut(self, number: int) -> None:
        """Pull host `number`'s cable out: its link goes down, its packets are lost."""
        ip("link", "set", self.name(number), "down")

    def restore(self, number: int) -> None:
        ip("link", "set", self.name(number), "up")

    def __enter__(self) -> "HostNetwork":
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "not created" if self.x is None else str(self.subnet)
        return f"<HostNetwork {self.count} hosts, {where}>"

    def _claim_subnet(self) -> None:
        """Lock a free x: one no other run holds, on whose /24 no address is configured."""
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        in_use = ip("-o", "-4", "addr", "show")
        candidates = list(range(1, 255))
        random.shuffle(candidates)  # parallel runs start far apart instead of racing for x=1
        if self.wanted is not None:
            candidates = [self.wanted]
        for x in candidates:
            fd = os.open(LOCK_DIR / f"subnet-{x}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            # Ours now; an address on it that is not on our names' interfaces is someone else's.
            subnet = ipaddress.IPv4Network(SUBNETS.format(x=x))
            if any(
                ipaddress.ip_interface(address).ip in subnet and not _named_for(x, name)
                for name, address in _addresses(in_use)
            ):
                os.close(fd)
                continue
            self.x, self._lock_fd = x, fd
            return
        which = "every one is" if self.wanted is None else f"x={self.wanted} is"
        raise HostError(f"no free 10.231.x.0/24 for the hosts: {which} taken")

    def _remove_leftovers(self) -> None:
        """Our names' namespaces and links: a dead run's (under our lock), or our own."""
        x = self._x()
        for line in ip("netns", "list").splitlines():
            if line.split() and _named_for(x, netns := line.split()[0]):
                ip("netns", "delete", netns, check=False)
        # A namespace's end goes with it; the bridge, and the ends of namespaces that a process
        # still holds open, are removed by name.
        for line in ip("-o", "link", "show").splitlines():
            link = line.split(":")[1].strip().split("@")[0]
            if _named_for(x, link):
                ip("link", "delete", link, check=False)

    def _build(self) -> None:
        prefix = self.subnet.prefixlen
        ip("link", "add", self.bridge, "type", "bridge", "forward_delay", "0")
        ip("addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for number in range(1, self.count + 1):
            netns = link = self.name(number)
            ip("netns", "add", netns)
            ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns)
            ip("link", "set", link, "master", self.bridge)
            ip("link", "set", link, "up")
            ip("-n", netns, "addr", "add", f"{self.ip_of(number)}/{prefix}", "dev", "eth0")
            ip("-n", netns, "link", "set", "eth0", "up")
            ip("-n", netns, "link", "set", "lo", "up")


def _named_for(x: int, name: str) -> bool:
    """Whether a namespace or link is one of the names of the network on 10.231.x.0/24."""
    return name == f"accord-{x}" or name.startswith(f"accord-{x}-")


def _addresses(ip_addr_output: str) -> list[tuple[str, str]]:
    """(interface, address/prefix) of each line of `ip -o -4 addr show`."""
    return [
        (fields[1], fields[3])
        for line in ip_addr_output.splitlines()
        if len(fields := line.split()) > 3
    ]

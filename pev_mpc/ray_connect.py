"""A bounded connection to Ray: every way `ray.init` can hang or end in a traceback is checked first.

`ray.init(address)` retries for minutes against a port that answers but is not a Ray GCS (any web server), against
a stale address in Ray's `ray_current_cluster` file, and against a cluster that wants an authentication token this
process lacks; `address="auto"` without a cluster raises a bare ConnectionError. `resolve_address` and
`check_gcs` turn each case into a ConnectionError with one line naming the address, within
RAY_CONNECT_TIMEOUT_S + RAY_PROBE_TIMEOUT_S seconds: the port must accept a connection, then a separate Python
process must get a reply from the GCS (a Ray client call) before it is killed. A local instance is started with
`address="local"`, so a stale `ray_current_cluster` file is never read for it.

Ray is imported only inside these functions (the `distributed` extra is optional).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

RAY_CONNECT_TIMEOUT_S = 10.0
"""How long to wait for the port of an existing Ray cluster to accept a connection."""
RAY_PROBE_TIMEOUT_S = 20.0
"""How long a probe process may take to get a reply from the GCS (Python and Ray imports included)."""
RAY_CLIENT_UNSUPPORTED = ("ray:// (Ray client) addresses are not supported: a client connection cannot be bounded "
                          "in time and the Ray client is deprecated; run the command on a node of the cluster with "
                          "--ray-address auto or HOST:PORT (the GCS address, port 6379 by default)")
_ANSWERED: set[str] = set()
"""GCS addresses a probe of this process got a reply from (probed once)."""
_HOST_PORT = re.compile(r"^([A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")
_PROBE = """
import sys
from ray._raylet import GcsClient
client = GcsClient(address=sys.argv[1])
client.internal_kv_get(b"pev-mpc-probe", None, timeout=5)
print("ray-gcs-ok")
"""


def resolve_address(address: str | None, key: str = "ray_address") -> str:
    """The address `ray.init` should get: 'local' (start a local instance) for None / '' unless RAY_ADDRESS is set;
    for 'auto' the GCS address Ray would pick on this machine (ConnectionError when there is none); ray://
    addresses are refused (ConnectionError, RAY_CLIENT_UNSUPPORTED); HOST:PORT as given."""
    if not address:
        address = os.environ.get("RAY_ADDRESS", "") or "local"
        key = "RAY_ADDRESS" if address != "local" else key
    if address == "local":
        return address
    if address.startswith("ray://"):
        raise ConnectionError(f"{key} = {address!r}: {RAY_CLIENT_UNSUPPORTED}")
    if address == "auto":
        from ray._private.services import get_ray_address_from_environment

        try:
            found = get_ray_address_from_environment("auto", None)
        except ConnectionError:
            raise ConnectionError(f"{key} = 'auto': no Ray cluster runs on this machine (start one with `ray start "
                                  "--head`, give HOST:PORT, or leave the address empty for a local instance)") from None
        if not found or found == "auto":
            raise ConnectionError(f"{key} = 'auto': no Ray cluster runs on this machine")
        return str(found)
    return address


def check_port(address: str, key: str = "ray_address", timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """ConnectionError unless HOST:PORT `address` accepts a TCP connection within `timeout_s`."""
    match = _HOST_PORT.match(address)
    if match is None:
        raise ConnectionError(f"{key} = {address!r}: must be HOST:PORT")
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"{key} = {address!r}: no Ray cluster answers there "
                              f"({exc.strerror or exc}, waited up to {timeout_s:g} s)") from None


def check_gcs(address: str, key: str = "ray_address", timeout_s: float | None = None) -> None:
    """ConnectionError unless the Ray GCS at HOST:PORT `address` answers a request from a probe process within
    `timeout_s` (default RAY_PROBE_TIMEOUT_S; the probe is killed then; its last error line, e.g. an
    authentication failure, is quoted)."""
    if address in _ANSWERED:
        return
    timeout_s = RAY_PROBE_TIMEOUT_S if timeout_s is None else timeout_s
    check_port(address, key)
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConnectionError(f"{key} = {address!r}: the port answers but no Ray GCS replied within {timeout_s:g} s "
                              "(not a Ray cluster, a stale address, or a cluster that needs authentication or TLS "
                              "settings this process lacks)") from None
    if "ray-gcs-ok" not in done.stdout:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip() and not line.startswith("[")]
        reason = lines[-1] if lines else f"probe exit code {done.returncode}"
        raise ConnectionError(f"{key} = {address!r}: the Ray GCS there refused the connection: {reason[:300]}")
    _ANSWERED.add(address)


def connect_address(address: str | None, key: str = "ray_address") -> str:
    """`resolve_address`, then for a cluster address `check_gcs`: the address to pass to `ray.init`."""
    resolved = resolve_address(address, key)
    if resolved != "local":
        check_gcs(resolved, key if resolved == address else f"{key} ({address or 'RAY_ADDRESS'} found)")
    return resolved

"""Starting the viser server: loopback by default, a warning otherwise, the next free port.

The viewer has no authentication: anyone who can reach its port can watch the scene and press
its buttons (pause a fit, write checkpoints). So it binds 127.0.0.1 unless the user names
another address, and says what that means when they do. viser itself moves on to the next port
when the requested one is busy; :func:`start_server` reports that, so the printed URL is right.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time
from dataclasses import dataclass

from recon.errors import ReconError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class ViewerError(ReconError):
    """The viewer cannot start or cannot show what it was given."""


@dataclass
class StartedServer:
    server: object
    """The viser.ViserServer."""
    host: str
    port: int
    url: str
    messages: list[str]
    """What was printed: the URL, a busy-port notice, a no-authentication warning."""


def is_loopback(host: str) -> bool:
    """True when only this machine can connect (127.0.0.0/8, ::1, or "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False


def host_warning(host: str) -> str | None:
    """The warning printed when the viewer is reachable from other machines (None on loopback)."""
    if is_loopback(host):
        return None
    return (f"warning: the viewer listens on {host}, so other machines can reach it, and it has "
            "no authentication: anyone who can connect can see the scene and pause, save or "
            "export the run. Use --host 127.0.0.1 (the default) with an SSH tunnel "
            "(ssh -L PORT:127.0.0.1:PORT) to view it remotely and safely.")


def start_server(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, label: str = "recon",
                 quiet: bool = False) -> StartedServer:
    """Start viser on ``host``:``port`` (or the next free port), print its URL and return it."""
    if not 0 <= port < 65536:
        raise ViewerError(f"--port must be in 1..65535 (or 0: any free port), got {port}.")
    import viser

    messages = []
    warning = host_warning(host)
    if warning:
        messages.append(warning)
    try:
        server = viser.ViserServer(host=host, port=port, label=label, verbose=False)
    except OSError as exc:
        raise ViewerError(f"Cannot start the viewer on {host}:{port}: {exc}. Check --host (an "
                          "address of this machine) and --port.") from exc
    bound = server.get_port()
    if port and bound != port:
        messages.append(f"port {port} is busy; the viewer uses port {bound} instead.")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{bound}"
    messages.append(f"viewer: {url}")
    if not quiet:
        for line in messages:
            print(line, file=sys.stderr if line.startswith("warning") else sys.stdout, flush=True)
    return StartedServer(server=server, host=host, port=bound, url=url, messages=messages)


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "StartedServer", "ViewerError", "host_warning",
           "is_loopback", "start_server"]


def wait_for_interrupt() -> None:
    """Keep serving until Ctrl-C (the viewer runs in viser's own threads)."""
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass


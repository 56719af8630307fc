"""Viewer server start-up: loopback by default, the next free port when busy, host warnings."""

from __future__ import annotations

import socket

import pytest

from recon.viewer.server import ViewerError, host_warning, is_loopback, start_server


def _busy_port() -> socket.socket:
    """A listening socket on a free loopback port (the port viser will find busy)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_busy_port_moves_to_the_next_and_says_so(capsys):
    blocker = _busy_port()
    busy = blocker.getsockname()[1]
    started = start_server(port=busy)
    try:
        assert started.port == busy + 1
        assert started.url == f"http://127.0.0.1:{busy + 1}"
        out = capsys.readouterr().out
        assert f"port {busy} is busy; the viewer uses port {busy + 1} instead." in out
        assert f"viewer: http://127.0.0.1:{busy + 1}" in out
        # It listens on loopback only, at the reported port.
        with socket.create_connection(("127.0.0.1", started.port), timeout=5):
            pass
    finally:
        started.server.stop()
        blocker.close()


def test_free_port_is_used_as_asked():
    probe = _busy_port()
    port = probe.getsockname()[1]
    probe.close()
    started = start_server(port=port, quiet=True)
    try:
        assert started.port == port
        assert not any("busy" in m or "warning" in m for m in started.messages)
    finally:
        started.server.stop()


def test_non_loopback_host_warns_about_authentication():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert host_warning("127.0.0.1") is None
    warning = host_warning("0.0.0.0")
    assert warning is not None and "no authentication" in warning and "--host 127.0.0.1" in warning


def test_wildcard_host_prints_the_warning(capsys):
    probe = _busy_port()
    port = probe.getsockname()[1]
    probe.close()
    started = start_server(host="0.0.0.0", port=port)
    try:
        err = capsys.readouterr().err
        assert "no authentication" in err
        assert started.url == f"http://127.0.0.1:{port}"  # a URL the user can open here
    finally:
        started.server.stop()


def test_bad_port_is_a_clear_error():
    with pytest.raises(ViewerError, match="--port must be in 1..65535"):
        start_server(port=70000)

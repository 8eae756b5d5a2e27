"""``localfirst serve``: the database in Datasette, read-only, with a conversation page.

Datasette and the plugin are imported only here (the ``web`` extra), so the
rest of localfirst starts without them.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, DatabaseError, MissingExtra
from .metadata import instance_metadata

__all__ = ["Server", "prepare", "make_datasette"]


def make_datasette(path: str | Path) -> Any:
    """A Datasette on ``path`` with localfirst's plugin and title; nothing can write through it.

    Datasette has usually loaded the plugin already, from its entry point;
    it is registered here only when it has not (pluggy refuses a name twice).
    """
    try:
        from datasette.app import Datasette
        from datasette.plugins import pm
    except ImportError as exc:
        raise MissingExtra("serve needs the web extra: pip install 'localfirst[web]'") from exc
    from . import plugin

    if not pm.is_registered(plugin) and not pm.has_plugin(plugin.NAME):
        pm.register(plugin, name=plugin.NAME)
    return Datasette(
        [str(path)], metadata=instance_metadata(),
        settings={"allow_download": False, "allow_csv_stream": True, "default_page_size": 50},
    )


@dataclass
class Server:
    url: str
    app: Any
    sock: socket.socket

    def run(self) -> None:
        """Serve until interrupted."""
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        try:
            uvicorn.Server(config).run(sockets=[self.sock])
        finally:
            self.sock.close()


def prepare(path: str | Path, *, host: str = "127.0.0.1", port: int = 0) -> Server:
    """Check the database, build the app and take the port (0: a free one); ``run()`` serves."""
    from ..store import Store

    target = Path(path).expanduser()
    if not target.exists():
        raise DatabaseError(f"no database at {target}: log something first, or name one with --db")
    Store.open(target, create=False).close()  # a localfirst database, upgraded to this version
    ds = make_datasette(target)
    if not 0 <= port <= 65535:
        raise BadInput("--port must be from 0 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BadInput(f"--host {host}: {exc.strerror}") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BadInput(f"port {port} on {host} is in use: choose another with --port, "
                           "or leave --port out for a free one") from exc
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return Server(f"http://{shown}:{bound}/{target.stem}", ds.app(), sock)

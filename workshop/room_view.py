"""The instructor's live view of the room: a JupyterHub service, behind the hub's login, admins only.

Started by the hub (``workshop/jupyterhub_config.py`` lists it as the managed service
``tcplab-room``) and reached at ``<hub>/services/tcplab-room/``. Who may open it is decided by the
hub's roles: a user needs the scope ``access:services!service=tcplab-room``, which the hub's
``admin`` role holds (``access:services``) and the ``user`` role does not. A learner who asks is
sent to the hub's OAuth page and refused there (403); one who presents their API token gets 403
here (``HubOAuthenticated.check_hub_user``). The page never serves a learner's data to a learner.

It runs as the hub's user (root, on a one-host hub) because learners' homes are 0700, and reads
each learner's ``~/.tcplab/answers.jsonl`` through :func:`tcplab.grading.store.read_home`: nothing under
a home is followed through a symlink, a FIFO is never blocked on, only files the learner owns,
at most 2 MiB each. The learners are the members of TCPLAB_LEARNER_GROUP [tcplab-learners] (their
homes from the password database). The aggregation and the page are pure
(:mod:`tcplab.grading.room`); this file only authenticates and serves them:

* ``/services/tcplab-room/`` the page (reloads itself every TCPLAB_ROOM_REFRESH [5] s, 2..300);
* ``/services/tcplab-room/api/room`` the same data as JSON.

The room is read at most once per 2 s whatever the number of open tabs.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import time
from typing import Any

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web

from tcplab.grading import store
from tcplab.grading.room import render_html, room_view

GROUP = os.environ.get("TCPLAB_LEARNER_GROUP", "tcplab-learners")
REFRESH_S = int(os.environ.get("TCPLAB_ROOM_REFRESH", "5"))
MIN_AGE_S = 2.0   # reading every home is cheap, but not per request of every open tab


def learners(group: str = GROUP) -> dict[str, str]:
    """name -> home of every account in ``group`` (listed members and those whose primary group it is)."""
    try:
        g = grp.getgrnam(group)
    except KeyError:
        return {}
    out = {}
    for pw in pwd.getpwall():
        if pw.pw_name in g.gr_mem or pw.pw_gid == g.gr_gid:
            out[pw.pw_name] = pw.pw_dir
    return out


class Room:
    """The room's data, re-read when older than MIN_AGE_S."""

    def __init__(self) -> None:
        self._at = -1e9
        self._view: dict[str, Any] = {}

    def view(self) -> dict[str, Any]:
        now = time.monotonic()
        if now - self._at >= MIN_AGE_S:
            homes = learners()
            # the user of a record is the account whose home it was read from, never what it claims
            records = [{**r, "user": name} for name, home in homes.items() for r in store.read_home(home)]
            self._view = room_view(records, list(homes))
            self._at = now
        return self._view


ROOM = Room()


class PageHandler(HubOAuthenticated, web.RequestHandler):
    @web.authenticated
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.write(render_html(ROOM.view(), refresh_s=REFRESH_S))


class ApiHandler(HubOAuthenticated, web.RequestHandler):
    @web.authenticated
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(ROOM.view(), default=str))


def main() -> None:
    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    url = os.environ["JUPYTERHUB_SERVICE_URL"]
    from urllib.parse import urlparse

    u = urlparse(url)
    app = web.Application([
        (prefix.rstrip("/"), web.RedirectHandler, {"url": prefix}),
        (prefix, PageHandler),
        (url_path_join(prefix, "api/room"), ApiHandler),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
    ], cookie_secret=os.urandom(32))
    app.listen(u.port, u.hostname or "127.0.0.1")
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()

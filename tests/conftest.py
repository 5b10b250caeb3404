"""Shared fixtures. The session fixture below is the host-safety check: every value
under /proc/sys/net is the same after the whole suite as before it."""

from __future__ import annotations

import os

import pytest

from tcplab.kernel.capabilities import run_unprivileged

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _snapshot_host_sysctls() -> dict[str, str]:
    values = {}
    for root, _dirs, files in os.walk("/proc/sys/net"):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    values[path] = f.read()
            except OSError:
                values[path] = "<unreadable>"
    return values


@pytest.fixture(scope="session", autouse=True)
def host_sysctls_unchanged():
    before = _snapshot_host_sysctls()
    yield
    after = _snapshot_host_sysctls()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the test suite changed host sysctls: {changed[:10]}"


def fixture_text(name: str) -> str:
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def run_as_nobody(fn, *args, timeout: float = 120.0):
    """Run ``fn(*args)`` as uid/gid 65534 in a forked child and return its result.

    /root is mode 700 here, so an unprivileged user cannot exec the venv's python;
    forking and dropping privileges runs the same code as a real unprivileged user.
    Import every module ``fn`` needs before calling this: the child cannot read /root.
    """
    if os.geteuid() != 0:
        return fn(*args)  # already unprivileged
    return run_unprivileged(fn, *args, timeout=timeout)


@pytest.fixture(params=["root", "unprivileged"])
def as_user(request):
    """Run a callable as root (in-process) or as uid 65534 (forked)."""
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("not root")
        return lambda fn, *a: fn(*a)
    return run_as_nobody

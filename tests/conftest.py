"""Shared fixtures. The session fixture below is the host-safety check: every value
under /proc/sys/net is the same after the whole suite as before it."""

from __future__ import annotations

import os
import pickle
import select

import pytest

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
    """Run ``fn(*args)`` in a forked child with uid/gid 65534 and return its (pickled) result.

    /root is mode 700 here, so an unprivileged user cannot exec the venv's python;
    forking and dropping privileges runs the same code as a real unprivileged user.
    Import every module ``fn`` needs before calling this: the child cannot read /root.
    """
    if os.geteuid() != 0:
        return fn(*args)  # already unprivileged
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            try:
                payload = ("ok", fn(*args))
            except BaseException as e:  # noqa: BLE001
                payload = ("err", e)
            data = pickle.dumps(payload)
            while data:
                data = data[os.write(wfd, data):]
        finally:
            os._exit(0)
    os.close(wfd)
    chunks = []
    try:
        while True:
            ready = select.select([rfd], [], [], timeout)[0]
            if not ready:
                raise TimeoutError(f"unprivileged child did not answer within {timeout} s")
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "err":
        raise value
    return value


@pytest.fixture(params=["root", "unprivileged"])
def as_user(request):
    """Run a callable as root (in-process) or as uid 65534 (forked)."""
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("not root")
        return lambda fn, *a: fn(*a)
    return run_as_nobody

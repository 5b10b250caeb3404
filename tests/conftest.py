"""Shared fixtures and the two guards of the suite.

* ``host_sysctls_unchanged`` (session) is the host-safety check: every value under
  /proc/sys/net is the same after the whole suite as before it.
* The pure-test guard keeps the ``real`` marker honest: a test without it that opens a network
  socket, forks, unshares or reads live network state from /proc fails with
  ``KernelTouchedInPureTest``, in its fixtures (of any scope, set up for it), its body, and the
  Python children it starts (tests/pure_guard/sitecustomize.py). So ``make test-fast``
  (``-m "not real ..."``) runs no kernel test, and a kernel test cannot hide among the pure ones.
  ``browser`` tests drive a live JupyterLab server over loopback: they are ``real`` too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import pytest

from tcplab.kernel.capabilities import run_unprivileged

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
_GUARD_DIR = os.path.join(os.path.dirname(__file__), "pure_guard")
_spec = importlib.util.spec_from_file_location("tcplab_pure_guard", os.path.join(_GUARD_DIR, "sitecustomize.py"))
pure_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pure_guard)
KernelTouchedInPureTest = pure_guard.KernelTouchedInPureTest


def _snapshot_host_sysctls() -> dict[str, str]:
    values = {}
    for root, _dirs, files in os.walk("/proc/sys/net"):
        for name in files:
            path = os.path.join(root, name)
            try:
                # the real open(): this session fixture is set up inside the first test's guard
                with pure_guard.real_open(path) as f:
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


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("browser") is not None and item.get_closest_marker("real") is None:
            item.add_marker(pytest.mark.real)


def _may_touch_the_kernel(item: pytest.Item) -> bool:
    return item.get_closest_marker("real") is not None


@contextlib.contextmanager
def _pure_guard(item: pytest.Item):
    """The guard on, in this process and (by environment) in the Python children it starts."""
    if _may_touch_the_kernel(item):
        yield
        return
    env_before = {k: os.environ.get(k) for k in (pure_guard.ENV, "PYTHONPATH")}
    os.environ[pure_guard.ENV] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_GUARD_DIR, env_before["PYTHONPATH"]) if p)
    saved = pure_guard.install()
    try:
        yield
    finally:
        pure_guard.uninstall(saved)
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# setup (fixtures of every scope that this test is the first to need) and call; not teardown,
# where the last test of a module also tears down fixtures that only real tests used
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _pure_guard(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _pure_guard(item):
        return (yield)


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


def skip_unless_trusted(result) -> None:
    """A real test that needs the kernel's own timing: on a host busy through a run and its repeat,
    the run must name the keys it could not vouch for and why (checked here); the test then skips
    with that reason instead of asserting on figures the host moved. A quiet host runs the asserts."""
    if result.trusted:
        return
    assert result.fidelity.keys and result.fidelity.reason, result.fidelity
    pytest.skip(f"the host disturbed the run and its repeat: {result.fidelity.reason}")


def child_pids() -> set[int]:
    """This process's children (zombies included), from every /proc/PID/stat's parent field: what a test
    compares before and after a run that must leave no process behind."""
    me = str(os.getpid())
    kids: set[int] = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[1] == me:
                        kids.add(int(pid))
            except OSError:
                pass
    return kids


def _devices() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def assert_leaves_nothing_behind(monkeypatch, module: str, run):
    """Run ``run()`` (a real run on the bottleneck path) twice: as is, then with ``module``'s sampler
    (its ``tcp_info``) failing mid-run inside the namespace child (forked: it inherits the patch). Both
    times no child process, no file descriptor and no network device may be left behind. Returns the
    first run's Result (the test may look at it); skips where real mode is unavailable."""
    import importlib

    from tcplab.errors import RealModeUnavailable

    mod = importlib.import_module(module)        # the module, not the function the package exports
    kids, fds, devices = child_pids(), len(os.listdir("/proc/self/fd")), _devices()
    try:
        result = run()
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert child_pids() <= kids
    assert len(os.listdir("/proc/self/fd")) <= fds
    assert _devices() <= devices

    def broken(sock):
        raise OSError("sampler broke")
    monkeypatch.setattr(mod, "tcp_info", broken)
    with pytest.raises(Exception, match="sampler broke"):
        run()
    assert child_pids() <= kids
    assert len(os.listdir("/proc/self/fd")) <= fds
    assert _devices() <= devices
    return result

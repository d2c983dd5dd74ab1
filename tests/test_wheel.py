"""The wheel that scripts/build-wheel.sh makes works where none of the Debian libraries
herdcache builds against are installed.

One wheel, for the Python running the tests (scripts/build-wheel.sh builds them all), is
built, repaired by auditwheel, and installed into a new virtual environment. Then
wheel_smoke.py runs there in a mount namespace (`unshare --mount`) where every shared
library the development build links outside the manylinux policy (libpq and its tree,
OpenSSL, fmt, and hiredis, xxhash and zstd if present) is covered by an empty file: a wheel
that still needs one of them cannot import. The development build, which does need them,
fails the same way: the hiding is what makes this test able to fail.

Needs Linux, `unshare` and the right to make a mount namespace (root, or unprivileged user
namespaces). Without them the test is skipped, except under CI (CI set), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 600
RUN_TIMEOUT_S = 120
# The manylinux policy's own libraries: the system provides these on every manylinux host.
POLICY = re.compile(r"^(ld-linux.*|linux-vdso|lib(c|m|dl|rt|pthread|resolv|util|nsl|stdc\+\+|gcc_s))\.so")
# What herdcache has linked or may link, looked up by name too: the development build links
# hiredis and xxhash statically, so ldd does not show them, but a wheel must not need them.
ALSO_HIDDEN = ("libhiredis", "libxxhash", "libfmt", "libpq", "libzstd", "libssl", "libcrypto")


def require(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (not skipped under CI)")
        pytest.skip(reason)


def system_libraries() -> list[str]:
    """The real paths of the libraries to hide: the development module's ldd closure and
    ALSO_HIDDEN from the loader's cache, minus the manylinux policy's."""
    import herdcache._native

    ldd = subprocess.run(["ldd", herdcache._native.__file__], capture_output=True, text=True, check=True).stdout
    paths = set(re.findall(r"=> (/\S+)", ldd))
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for name, path in re.findall(r"^\s*(\S+) \(.*\) => (/\S+)$", cache, re.M):
        if name.startswith(tuple(f"{lib}.so" for lib in ALSO_HIDDEN)):
            paths.add(path)
    real = {os.path.realpath(p) for p in paths if not POLICY.match(os.path.basename(p))}
    return sorted(p for p in real if os.path.isfile(p))


def hidden_run(argv: list[str], hide: list[str], empty: Path, **kwargs) -> subprocess.CompletedProcess:
    """argv in a new mount namespace where every path in `hide` is `empty` (bind-mounted)."""
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    script = 'n=$1; shift; for _ in $(seq "$n"); do mount --bind "$0" "$1"; shift; done; exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", *user, "sh", "-c", script, str(empty), str(len(hide)), *hide, *argv],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if os.environ.get("HERDCACHE_SANITIZED"):
        # test.sh --sanitize: its interpreter's venv has no pip, and the wheel is a release
        # build of its own, with nothing of the sanitized _native in it.
        pytest.skip("the wheel is built and checked by the plain test run, not the sanitized one")
    require(sys.platform == "linux", "manylinux wheels are built on Linux")
    require(shutil.which("unshare") is not None, "unshare (util-linux) not found")
    probe = subprocess.run(["unshare", "--mount", *([] if os.geteuid() == 0 else ["--map-root-user"]), "true"],
                           capture_output=True, text=True)
    require(probe.returncode == 0, f"cannot make a mount namespace: {probe.stderr.strip()}")
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [str(ROOT / "scripts/build-wheel.sh"), "--python", sys.executable, "--no-isolation", "--no-sdist",
         "--out", str(out)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert build.returncode == 0, f"build-wheel.sh failed:\n{build.stdout}{build.stderr}"
    wheels = list(out.glob("herdcache-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, got {wheels}:\n{build.stdout}{build.stderr}"
    return wheels[0]


def test_the_wheel_is_tagged_manylinux_and_carries_its_libraries(wheel):
    import zipfile

    assert re.search(r"-manylinux_2_\d+_x86_64\.whl$|-manylinux_2_\d+_aarch64\.whl$", wheel.name), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    bundled = {re.sub(r"-[0-9a-f]{8}(\.so.*)$", r"\1", Path(n).name) for n in names if n.startswith("herdcache.libs/")}
    for lib in ("libpq.so.5", "libcrypto.so.3"):
        assert any(b.startswith(lib) for b in bundled), f"{lib} not bundled: {sorted(bundled)}"
    assert not any(b.startswith(("libhiredis", "libxxhash")) for b in bundled), "hiredis and xxhash are linked in"
    assert {"herdcache/py.typed", "herdcache/_native.pyi"} <= set(names), "the type information is missing"


def test_the_wheel_imports_and_runs_both_tiers_with_the_system_libraries_hidden(wheel, tmp_path, redis_url):
    hide = system_libraries()
    assert any("libpq" in p for p in hide) and any("libcrypto" in p for p in hide), hide
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)],
                             capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert install.returncode == 0, f"pip install of {wheel.name} failed:\n{install.stdout}{install.stderr}"

    run = hidden_run([str(python), "-I", str(ROOT / "tests/wheel_smoke.py"), redis_url, *hide], hide, empty,
                     cwd=tmp_path, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert run.returncode == 0, f"the wheel failed with {len(hide)} system libraries hidden:\n{run.stderr}"
    report = json.loads(run.stdout)

    assert report["hidden_unreadable"] == hide, "some libraries were not hidden"
    site = str(venv / "lib")
    assert report["module"].startswith(site), f"herdcache._native came from {report['module']}, not the new venv"
    assert report["memory"] == ["memory"]
    assert report["redis"] == {"rooms": [1, 2, 3]} and report["redis_loads"] == 1 and report["redis_connected"]
    assert any("herdcache.libs/libpq" in p for p in report["libraries"]), report["libraries"]
    # And with nothing hidden, no shared object the wheel installed resolves a library
    # outside it but the policy's (one that the hiding above did not think of).
    installed = sorted(venv.glob("lib/python*/site-packages/herdcache*/**/*.so*"))
    assert any(so.name.startswith("_native") for so in installed), installed
    for so in installed:
        ldd = subprocess.run(["ldd", str(so)], capture_output=True, text=True, check=True).stdout
        outside = [p for p in re.findall(r"=> (\S+)", ldd)
                   if not p.startswith(str(venv)) and not POLICY.match(os.path.basename(p))]
        assert not outside, f"{so.name} resolves {outside} outside the wheel:\n{ldd}"


def test_the_development_build_fails_with_the_same_libraries_hidden(tmp_path):
    """The control: a module that links the system's libraries cannot import here."""
    require(sys.platform == "linux" and shutil.which("unshare") is not None, "needs Linux and unshare")
    hide = system_libraries()
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    run = hidden_run([sys.executable, "-I", "-c", "import herdcache._native"], hide, empty, cwd=tmp_path)
    if "cannot make" in run.stderr or "unshare:" in run.stderr:
        require(False, f"cannot make a mount namespace: {run.stderr.strip()}")
    assert run.returncode != 0
    assert re.search(r"ImportError: \S+\.so[.\d]*: (file too short|invalid ELF header)", run.stderr), run.stderr

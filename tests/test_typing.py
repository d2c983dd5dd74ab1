"""herdcache's types: the native module's stub is what the built module has, mypy --strict
is clean on the package and on code that uses it, and it catches a user's mistakes.

mypy runs on the work tree's package (MYPYPATH=python), as it would on an installed
wheel's (which ships py.typed and _native.pyi); its cache is .mypy_cache in the tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPING = Path(__file__).resolve().parent / "typing"
TIMEOUT_S = 300


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MYPYPATH=str(ROOT / "python"))
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def test_the_native_stub_is_what_the_built_module_has():
    run = subprocess.run([sys.executable, str(ROOT / "scripts/stubs.py"), "--check"],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_package_ships_its_type_information():
    package = ROOT / "python" / "herdcache"
    assert (package / "py.typed").is_file()
    assert (package / "_native.pyi").is_file()


def test_mypy_strict_is_clean_on_the_package():
    run = mypy("python/herdcache")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success: no issues found" in run.stdout


def test_mypy_strict_is_clean_on_code_using_herdcache():
    """user_code.py's assert_types: cached functions keep their parameters and return
    types, and .key/.invalidate/.warm/.uncached are typed."""
    run = mypy(str(TYPING / "user_code.py"))
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_strict_reports_each_mistake_in_code_using_herdcache():
    source = (TYPING / "user_errors.py").read_text().splitlines()
    expected = {n for n, line in enumerate(source, 1) if line.rstrip().endswith("# error")}
    assert len(expected) >= 5
    run = mypy(str(TYPING / "user_errors.py"))
    reported = {int(n) for n in re.findall(r"^[^:\n]*user_errors\.py:(\d+): error:", run.stdout, re.M)}
    assert reported == expected, run.stdout + run.stderr

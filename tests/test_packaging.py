"""What the README's Install section says agrees with pyproject.toml: the supported Python
versions (classifiers, which scripts/find-pythons.sh reads), requires-python, and the
extras and the imports they serve."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
README = (ROOT / "README.md").read_text()
INSTALL = README[README.index("## Install"):README.index("\n## ", README.index("## Install") + 1)]


def classifier_versions() -> list[str]:
    prefix = "Programming Language :: Python :: "
    return [c[len(prefix):] for c in PROJECT["classifiers"] if re.fullmatch(r"3\.\d+", c[len(prefix):])]


def test_requires_python_starts_at_the_oldest_listed_version():
    versions = classifier_versions()
    assert versions == sorted(versions, key=lambda v: int(v.split(".")[1])) and versions
    assert PROJECT["requires-python"] == f">={versions[0]}"


def test_the_readme_names_the_listed_versions_and_requires_python():
    match = re.search(r"Supported: CPython ([\d., and]+) \(`requires-python = \"([^\"]+)\"`\)", INSTALL)
    assert match, "the Install section's 'Supported: CPython ...' sentence is missing"
    assert re.findall(r"3\.\d+", match.group(1)) == classifier_versions()
    assert match.group(2) == PROJECT["requires-python"]


def test_the_readme_names_every_user_facing_extra_and_only_those():
    extras = set(PROJECT["optional-dependencies"]) - {"dev", "bench"}
    installed = set(re.findall(r'pip install "herdcache\[(\w+)\]"', INSTALL))
    in_table = set(re.findall(r"\| `(\w+)` \|$", INSTALL, re.M))
    assert installed == extras
    assert in_table == extras


def test_each_extra_the_table_names_provides_what_its_row_needs():
    """A row's 'needs' are distributions of that extra (names compared loosely); the plain
    install's row names exactly the dependencies."""
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "", name).lower()

    def names(requirements: list[str]) -> set[str]:
        return {norm(re.split(r"[<>=\[ ;]", req)[0]) for req in requirements}

    rows = [row for row in re.findall(r"^\| [^|]+ \| ([^|]+) \| `?(\w+)`? \|$", INSTALL, re.M) if row[1] != "extra"]
    assert "none" in [extra for _, extra in rows], "no row for what a plain install needs"
    for needs, extra in rows:
        provided = names(PROJECT["dependencies"] if extra == "none" else PROJECT["optional-dependencies"][extra])
        needed = {norm(name.split(" ")[0]) for name in re.split(r",\s*", needs.strip())}
        assert needed <= provided, f"{sorted(needed - provided)} not in the {extra} requirements: {provided}"
        if extra == "none":
            assert needed == provided, f"a plain install needs {sorted(provided)}, the table says {sorted(needed)}"

"""Every Python snippet in README.md runs, as written, against the real components.

A snippet may use names it does not define (the `app`, `cache` or `dsn` a reader already
has); CONTEXT gives each of them a real value. A snippet using any other undefined name
fails here: give it a value, or define it in the snippet.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import os
import re
import types
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets() -> list[tuple[int, str]]:
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


def free_names(source: str) -> set[str]:
    """Names a snippet reads without binding them (nor builtins)."""
    tree = ast.parse(source)
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            args = node.args if not isinstance(node, ast.ClassDef) else None
            if args is not None:
                bound.update(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound - set(dir(builtins))


# --- what a reader already has -----------------------------------------------------------


def _cache(request):
    from herdcache import CacheManager

    cache = CacheManager()
    request.addfinalizer(cache.sync.close)
    return cache


def _app(request):
    from fastapi import FastAPI

    return FastAPI()


def _settings(request):
    return types.SimpleNamespace(ADMIN_TOKEN="readme-token")


def _registry(request):
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def _caches(request):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")  # tests/django_settings.py
    django.setup()
    from django.core.cache import caches
    from django.test import override_settings

    override = override_settings(CACHES={"default": {"BACKEND": "herdcache.django.HerdCache", "LOCATION": "",
                                                     "OPTIONS": {"namespace": "readme"}}})
    override.enable()
    request.addfinalizer(override.disable)
    return caches


def _dsn(request):
    import psycopg

    dsn = request.getfixturevalue("postgres_dsn")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS rooms (id int PRIMARY KEY, org_id int, name text)")
    return dsn


CONTEXT = {"cache": _cache, "app": _app, "settings": _settings, "registry": _registry, "caches": _caches,
           "dsn": _dsn}
NEEDS_POSTGRES = {"dsn"}


def _params():
    for line, source in snippets():
        marks = [pytest.mark.postgres] if free_names(source) & NEEDS_POSTGRES else []
        yield pytest.param(line, source, id=f"README.md:{line}", marks=marks)


def test_the_readme_has_snippets():
    assert len(snippets()) >= 6


@pytest.mark.parametrize(("line", "source"), list(_params()))
async def test_readme_snippet_runs(request, line, source):
    missing = free_names(source) - set(CONTEXT)
    assert not missing, f"README.md:{line} uses {sorted(missing)}, which neither it nor the test defines"
    namespace = {"__name__": "readme"}
    for name in free_names(source):
        namespace[name] = CONTEXT[name](request)
    code = compile(source, f"README.md:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # noqa: S307 - the project's own README
    if inspect.isawaitable(result):
        await result
    for value in namespace.values():  # what a snippet started, it does not stop: stop it here
        if type(value).__name__ == "PostgresInvalidator":
            await value.stop()

"""Runs the example: `python -m examples.timetable [--port 8000] [--demo]` from the repo root."""

from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # `python examples/timetable/__main__.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    __package__ = "examples.timetable"

from .app import Settings, create_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.timetable", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--demo", action="store_true", help="run the in-process demo and exit")
    args = parser.parse_args()
    if args.demo:
        from .demo import main as demo

        return demo()

    import uvicorn

    settings = Settings.from_env()
    url = f"http://{args.host}:{args.port}"
    chosen = bool(os.environ.get("TIMETABLE_ADMIN_TOKEN"))
    token = "$TIMETABLE_ADMIN_TOKEN" if chosen else settings.admin_token
    print(f"timetable example on {url} (cache: {'Redis + memory' if settings.redis_url else 'memory tier only'})")
    print("admin endpoints /api/cache/* need the header X-Admin-Token: "
          + ("the value of $TIMETABLE_ADMIN_TOKEN" if chosen else f"{token} (random; set TIMETABLE_ADMIN_TOKEN to choose it)"))
    print("try:")
    admin = f'-H "X-Admin-Token: {token}"'
    json = "-H 'content-type: application/json' -d"
    print(f"  curl {url}/api/org-1/rooms")
    print(f"  curl '{url}/api/org-2/courses?semester=2'")
    print(f"""  curl -X PUT {url}/api/org-1/rooms/1 {json} '{{"capacity": 99}}'""")
    print(f"""  curl -X POST {url}/api/cache/invalidate {admin} {json} '{{"tags": ["org:org-1"]}}'""")
    print(f"  curl {url}/api/cache/stats {admin}")
    print(f"  {url}/docs")
    uvicorn.run(create_app(settings=settings), host=args.host, port=args.port)


if __name__ == "__main__":
    main()

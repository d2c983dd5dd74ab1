"""herdcache's example service: a FastAPI timetable backend (see app.py; run with
`python -m examples.timetable`, or `python -m examples.timetable --demo`)."""

from .app import POLICIES, Settings, create_app

__all__ = ["POLICIES", "Settings", "create_app"]

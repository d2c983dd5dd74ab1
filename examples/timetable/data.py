"""The timetable's database: SQLite (stdlib), created and seeded on first use.

Three organizations with about 120 departments, 1,000 rooms, 2,500 courses (each
offered in semesters 1 and 2), 650 faculty, 6,000 students and one timetable_config
each. The seed is fixed, so every run sees the same data.

Queries run in a worker thread (asyncio.to_thread) so the event loop keeps serving
while SQLite works. `latency` adds that many seconds to every query, to make the
cache's effect visible, and `query_latency` that many seconds per query name instead (a
slow join, a big table); `queries` counts the queries run, per query name.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

ORGS = {"org-1": "North Campus", "org-2": "City Campus", "org-3": "Lakeside Institute"}
PER_ORG = {"departments": 40, "rooms": 333, "courses": 830, "faculty": 215, "students": 2000}

SCHEMA = """
CREATE TABLE organizations (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE departments (id INTEGER PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organizations,
                          code TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE rooms (id INTEGER PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organizations,
                    code TEXT NOT NULL, building TEXT NOT NULL, kind TEXT NOT NULL, capacity INTEGER NOT NULL);
CREATE TABLE faculty (id INTEGER PRIMARY KEY, dept_id INTEGER NOT NULL REFERENCES departments,
                      name TEXT NOT NULL, max_hours INTEGER NOT NULL);
CREATE TABLE courses (id INTEGER PRIMARY KEY, dept_id INTEGER NOT NULL REFERENCES departments,
                      code TEXT NOT NULL, title TEXT NOT NULL, credits INTEGER NOT NULL);
CREATE TABLE course_offerings (course_id INTEGER NOT NULL REFERENCES courses, semester INTEGER NOT NULL,
                               faculty_id INTEGER REFERENCES faculty, sections INTEGER NOT NULL,
                               PRIMARY KEY (course_id, semester));
CREATE TABLE students (id INTEGER PRIMARY KEY, dept_id INTEGER NOT NULL REFERENCES departments,
                       name TEXT NOT NULL, year INTEGER NOT NULL);
CREATE TABLE timetable_config (org_id TEXT PRIMARY KEY REFERENCES organizations,
                               working_days INTEGER NOT NULL, slots_per_day INTEGER NOT NULL,
                               day_start TEXT NOT NULL, slot_minutes INTEGER NOT NULL);
CREATE INDEX departments_org ON departments (org_id);
CREATE INDEX rooms_org ON rooms (org_id);
CREATE INDEX courses_dept ON courses (dept_id);
CREATE INDEX faculty_dept ON faculty (dept_id);
CREATE INDEX students_dept ON students (dept_id);
"""

QUERIES = {
    "departments": """
        SELECT d.id, d.code, d.name, COUNT(c.id) AS courses
        FROM departments d LEFT JOIN courses c ON c.dept_id = d.id
        WHERE d.org_id = ? GROUP BY d.id ORDER BY d.code""",
    "rooms": "SELECT id, code, building, kind, capacity FROM rooms WHERE org_id = ? ORDER BY code",
    "courses": """
        SELECT c.id, c.code, c.title, c.credits, d.code AS department, o.sections, f.name AS faculty
        FROM courses c JOIN departments d ON d.id = c.dept_id
        JOIN course_offerings o ON o.course_id = c.id
        LEFT JOIN faculty f ON f.id = o.faculty_id
        WHERE d.org_id = ? AND o.semester = ? ORDER BY c.code""",
    "faculty": """
        SELECT f.id, f.name, d.code AS department, f.max_hours
        FROM faculty f JOIN departments d ON d.id = f.dept_id WHERE d.org_id = ? ORDER BY f.id""",
    "students": """
        SELECT s.id, s.name, d.code AS department, s.year
        FROM students s JOIN departments d ON d.id = s.dept_id WHERE d.org_id = ? ORDER BY s.id""",
    "config": """
        SELECT working_days, slots_per_day, day_start, slot_minutes FROM timetable_config WHERE org_id = ?""",
}


class Database:
    def __init__(self, path: str | os.PathLike | None = None, latency: float = 0.0,
                 query_latency: dict[str, float] | None = None) -> None:
        self.path = Path(path or os.environ.get("TIMETABLE_DB") or Path(tempfile.gettempdir()) / "herdcache-timetable.db")
        self.latency = latency  # seconds added to every query
        self.query_latency = dict(query_latency or {})  # seconds added to the queries named
        self.queries: collections.Counter[str] = collections.Counter()

    # --- reads (each returns plain dicts and lists: what the cache stores as JSON) -----

    async def select(self, name: str, *params: Any) -> list[dict]:
        self.queries[name] += 1  # counted on the loop thread, so no lock is needed
        latency = self.query_latency.get(name, self.latency)
        return await asyncio.to_thread(self._select, QUERIES[name], params, latency)

    async def config(self, org_id: str) -> dict | None:
        rows = await self.select("config", org_id)
        return rows[0] if rows else None

    # --- writes --------------------------------------------------------------------------

    async def set_room_capacity(self, org_id: str, room_id: int, capacity: int) -> bool:
        sql = "UPDATE rooms SET capacity = ? WHERE id = ? AND org_id = ?"
        return await asyncio.to_thread(self._write, sql, (capacity, room_id, org_id)) == 1

    async def set_config(self, org_id: str, working_days: int, slots_per_day: int) -> bool:
        sql = "UPDATE timetable_config SET working_days = ?, slots_per_day = ? WHERE org_id = ?"
        return await asyncio.to_thread(self._write, sql, (working_days, slots_per_day, org_id)) == 1

    # --- the blocking part, run in worker threads -----------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def _select(self, sql: str, params: tuple, latency: float) -> list[dict]:
        if latency:
            time.sleep(latency)  # stands in for a busy database server
        with contextlib.closing(self._connect()) as conn:
            return [dict(row) for row in conn.execute(sql, params)]

    def _write(self, sql: str, params: tuple) -> int:
        with contextlib.closing(self._connect()) as conn, conn:  # closes; commits or rolls back
            return conn.execute(sql, params).rowcount

    def create(self) -> None:
        """Creates and seeds the database unless the file already holds it."""
        if self.path.exists():
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        conn = sqlite3.connect(tmp)
        try:
            with conn:
                conn.executescript(SCHEMA)
                _seed(conn, random.Random(2024))
        finally:
            conn.close()
        os.replace(tmp, self.path)  # atomic: a concurrent start sees no half-seeded file


def _seed(conn: sqlite3.Connection, rng: random.Random) -> None:
    subjects = ["Physics", "Chemistry", "Biology", "Mathematics", "History", "Economics", "Law",
                "Music", "Computing", "Linguistics", "Geology", "Philosophy", "Medicine", "Design"]
    first = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie"]
    last = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lamport"]

    def person() -> str:
        return f"{rng.choice(first)} {rng.choice(last)}"

    def insert(table: str, rows: list[tuple]) -> None:
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)

    ids = collections.Counter()  # the last id given out, per table

    def next_id(table: str) -> int:
        ids[table] += 1
        return ids[table]

    for org_id, org_name in ORGS.items():
        insert("organizations", [(org_id, org_name)])
        insert("timetable_config", [(org_id, 5, 8, "08:00", 60)])
        departments = []
        for i in range(PER_ORG["departments"]):
            subject, n = subjects[i % len(subjects)], i // len(subjects) + 1
            departments.append((next_id("departments"), org_id, f"{subject[:3].upper()}{n}", f"{subject} {n}"))
        insert("departments", departments)
        dept_ids = [d[0] for d in departments]

        insert("rooms", [(next_id("rooms"), org_id, f"{'ABCDEFGH'[i % 8]}{100 + i}", f"Building {'ABCDEFGH'[i % 8]}",
                          rng.choice(["lecture", "lecture", "seminar", "lab"]), rng.choice([20, 30, 40, 60, 120, 250]))
                         for i in range(PER_ORG["rooms"])])
        faculty = [(next_id("faculty"), rng.choice(dept_ids), person(), rng.choice([12, 16, 20]))
                   for _ in range(PER_ORG["faculty"])]
        insert("faculty", faculty)
        courses = []
        for i in range(PER_ORG["courses"]):
            dept = rng.choice(dept_ids)
            courses.append((next_id("courses"), dept, f"C{dept:03d}-{i:04d}", f"{rng.choice(subjects)} {100 + i % 400}",
                            rng.choice([2, 3, 4])))
        insert("courses", courses)
        insert("course_offerings", [(c[0], semester, rng.choice(faculty)[0], rng.randint(1, 4))
                                    for c in courses for semester in (1, 2)])
        insert("students", [(next_id("students"), rng.choice(dept_ids), person(), rng.randint(1, 4))
                            for _ in range(PER_ORG["students"])])

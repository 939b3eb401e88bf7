"""The inbox at force scale: 1,000,000 human tasks (200,000 open) over many roles and units, on PostgreSQL.

Seeding: 250,000 instances with four tasks each, generated inside PostgreSQL (``INSERT ... SELECT`` over
``generate_series`` with a fixed random seed) into a schema of its own, with the migration's secondary
indexes dropped during the load and rebuilt afterwards from their own definitions; then ``VACUUM
ANALYZE``. 40 roles and 60 units are drawn from a long-tailed distribution, so a few role + unit pairs
are busy and most are quiet; one task in five is open, three in ten of those are held by someone;
classifications run from OFFICIAL (70%) to TOP SECRET (2%); one due date in ten is unset.

Queries: the real ones, built by ``api.inbox`` and paged by ``api.paging`` exactly as ``GET /tasks`` and
``GET /tasks/count`` build them, for an officer of the busiest role + unit (plus two other roles and one
other unit), cleared to SECRET: the first page (50, due-sorted), a deep page reached by following the
cursors, and the count. Each plan is checked with ``EXPLAIN (ANALYZE, BUFFERS)`` (kept in the JSON) and
the index it uses is reported: ``ix_human_task_open_inbox`` (migration 0003) for all three. The
unfiltered inbox of the same officer (all their roles and units) is measured too. The baseline is a
primary-key read of one task.

Target (benchmark 5): p95 at most 50 ms for each of the three. ``--quick`` seeds 100,000 tasks.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api import inbox
from api.paging import encode_cursor, split_page
from api.schemas import DEFAULT_PAGE
from auth.principal import Principal
from auth.settings import AuthSettings
from bench.common import RESULTS_DIR, measure, pg_schema, postgres_url, report
from engine.bpmn import SourceFile
from engine.container import build_services
from engine.db import transaction
from engine.models import HumanTask
from engine.registry import Deployer
from engine.settings import Settings

PROCESS = Path(__file__).resolve().parent / "fixtures" / "two_tasks.bpmn"
ROLES = 40
UNITS = 60
TASKS_PER_INSTANCE = 4
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# A long tail: index k is drawn with probability about 1/(k+1); role_0 and unit_0 are the busiest.
LONG_TAIL = "(floor(exp(random() * ln({n} + 1))) - 1)::int"

SEED_INSTANCES = f"""
INSERT INTO process_instance (id, definition_id, process_key, process_version, business_key, status, unit,
    classification, started_by, started_at, updated_at, serializer_version, state, lock_version)
SELECT md5('i' || i)::uuid::text, :definition_id, 'two_tasks', 1, 'case-' || i, 'running',
    'unit_' || {LONG_TAIL.format(n=UNITS)}, 'OFFICIAL', 'seed', :now, :now, '1', '{{}}'::jsonb, 1
FROM generate_series(1, :instances) AS i
"""  # noqa: S608  (built from module constants only)

SEED_TASKS = f"""
INSERT INTO human_task (id, instance_id, process_key, process_version, business_key, element_id, name, lane,
    role, status, assignee, unit, classification, priority, due_at, form, is_approval, excluded_subjects,
    team_subjects, team_policy, created_at, created_by, completed_at, completed_by, lock_version)
SELECT id, instance_id, 'two_tasks', 1, business_key, 'step_' || n, 'Step ' || n, NULL,
    role, CASE WHEN open THEN 'ready' ELSE 'completed' END,
    CASE WHEN open AND random() < 0.3 THEN 'officer' || floor(random() * 500)::int
         WHEN open THEN NULL ELSE 'officer' || floor(random() * 500)::int END,
    unit, classification, 10 * floor(random() * 10)::int,
    CASE WHEN random() < 0.1 THEN NULL ELSE :now + (random() * 120 - 60) * interval '1 day' END,
    NULL, false, '[]'::jsonb, '[]'::jsonb, 'forbid',
    :now - random() * interval '365 days', 'seed',
    CASE WHEN open THEN NULL ELSE :now END, CASE WHEN open THEN NULL ELSE 'seed' END, 1
FROM (
    SELECT md5('t' || i)::uuid::text AS id,
        md5('i' || ((i - 1) / {TASKS_PER_INSTANCE} + 1))::uuid::text AS instance_id,
        'case-' || ((i - 1) / {TASKS_PER_INSTANCE} + 1) AS business_key,
        (i - 1) % {TASKS_PER_INSTANCE} AS n,
        'role_' || {LONG_TAIL.format(n=ROLES)} AS role,
        'unit_' || {LONG_TAIL.format(n=UNITS)} AS unit,
        random() < 0.2 AS open,
        (ARRAY['OFFICIAL', 'OFFICIAL-SENSITIVE', 'SECRET', 'TOP SECRET'])[
            CASE WHEN r < 0.70 THEN 1 WHEN r < 0.90 THEN 2 WHEN r < 0.98 THEN 3 ELSE 4 END] AS classification
    FROM (SELECT i, random() AS r FROM generate_series(1, :tasks) AS i) AS numbered
) AS drawn
"""  # noqa: S608  (built from module constants only)


def seed(url: str, tasks: int) -> dict[str, Any]:
    services = build_services(Settings(database_url=url))
    with transaction(services.sessions) as session:
        [deployed] = Deployer(session, services.context.registry, services.clock).deploy(
            [SourceFile(PROCESS.name, PROCESS.read_text())], by="bench"
        )
        definition_id = session.scalar(sa.text("SELECT id FROM process_definition WHERE key = 'two_tasks'"))
    services.db.dispose()
    del deployed
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    began = time.monotonic()
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT setseed(0.42)")
        indexes = [
            (name, definition)
            for name, definition in conn.execute(
                sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename IN ('human_task', 'process_instance') AND indexname NOT LIKE 'pk_%'"
                )
            )
        ]
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        conn.execute(
            sa.text(SEED_INSTANCES),
            {"definition_id": definition_id, "now": NOW, "instances": tasks // TASKS_PER_INSTANCE},
        )
        conn.execute(sa.text(SEED_TASKS), {"now": NOW, "tasks": tasks})
        loaded = time.monotonic()
        for _, definition in indexes:
            conn.exec_driver_sql(definition)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE process_instance")
        conn.exec_driver_sql("VACUUM ANALYZE human_task")
        query = sa.text("SELECT status, count(*) FROM human_task GROUP BY status")
        counts = {str(row[0]): int(row[1]) for row in conn.execute(query)}
        busiest = conn.execute(
            sa.text(
                "SELECT role, unit, count(*) FROM human_task WHERE status = 'ready' "
                "GROUP BY role, unit ORDER BY count(*) DESC LIMIT 1"
            )
        ).one()
        pairs = conn.execute(
            sa.text("SELECT count(*) FROM (SELECT DISTINCT role, unit FROM human_task) AS p")
        ).scalar_one()
        table_bytes = conn.execute(sa.text("SELECT pg_total_relation_size('human_task')")).scalar_one()
    engine.dispose()
    return {
        "tasks": sum(counts.values()),
        "open": counts.get("ready", 0),
        "role_unit_pairs": pairs,
        "busiest_role": busiest[0],
        "busiest_unit": busiest[1],
        "busiest_open": busiest[2],
        "load_seconds": round(loaded - began, 1),
        "seed_seconds": round(time.monotonic() - began, 1),
        "human_task_total_bytes": table_bytes,
    }


def _explain(session: Session, query: sa.Select[Any]) -> str:
    compiled = query.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    connection = session.connection()
    plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params)
    return "\n".join(row[0] for row in plan)


def _indexes(plan: str) -> str:
    used = sorted(
        set(re.findall(r"(?:Index|Index Only|Bitmap Index) Scan (?:Backward )?(?:using|on) (\w+)", plan))
    )
    scans = ["Seq Scan"] if "Seq Scan" in plan else []
    return ", ".join(used + scans) or "none"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100,000 tasks instead of 1,000,000")
    args = parser.parse_args(argv)
    base = postgres_url()
    if base is None:
        print("bench_inbox: set OPSFLOW_BENCH_DATABASE_URL to a PostgreSQL database; skipped")
        return
    tasks = 100_000 if args.quick else 1_000_000
    repeat = 20 if args.quick else 300
    with pg_schema(base, "bench_inbox") as url:
        facts = seed(url, tasks)
        rows, plans = measure_queries(url, facts, repeat=repeat, deep_page=5 if args.quick else 40)
    title = (
        f"Inbox on PostgreSQL: {facts['tasks']:,} tasks, {facts['open']:,} open, "
        f"{facts['role_unit_pairs']:,} role + unit pairs"
    )
    path = report(title, rows, json_name="inbox", columns=[("rows", "rows")])
    document = json.loads(path.read_text())
    document.update({"seed": facts, "plans": plans})
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(
        f"\nseeded in {facts['seed_seconds']} s (rows {facts['load_seconds']} s, then indexes and analyse); "
        f"busiest pair {facts['busiest_role']} + {facts['busiest_unit']}: {facts['busiest_open']:,} open; "
        f"plans in {RESULTS_DIR / 'inbox.json'}"
    )
    for name, plan in plans.items():
        print(f"  {name}: {_indexes(plan)}")


def measure_queries(
    url: str, facts: dict[str, Any], *, repeat: int, deep_page: int
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    role, unit = facts["busiest_role"], facts["busiest_unit"]
    principal = Principal(
        subject="officer7",
        name="Officer 7",
        roles=frozenset({role, "role_5", "role_11"}),
        units=frozenset({unit, "unit_9"}),
        rank="sergeant",
        clearance="SECRET",
        scopes=frozenset({"tasks:read"}),
        client_id="opsflow-bench",
    )
    cross_unit = AuthSettings().cross_unit_roles
    sort = inbox.TASK_SORTS["due_at"]
    filtered: dict[str, Any] = {"role": role, "unit": unit}
    services = build_services(Settings(database_url=url))
    rows: list[dict[str, Any]] = []
    plans: dict[str, str] = {}
    with services.sessions() as session:
        any_id = session.scalar(sa.select(HumanTask.id).limit(1))

        def page_query(args: dict[str, Any], cursor: str | None) -> sa.Select[Any]:
            query = inbox.inbox_query(principal, args, cross_unit_roles=cross_unit, now=NOW)
            return sort.page(query, cursor=cursor, limit=DEFAULT_PAGE)

        def fetch(query: sa.Select[Any]) -> list[HumanTask]:
            found = list(session.scalars(query))
            session.expunge_all()
            return found

        # Follow the cursors down to the deep page, as a client paging through the inbox would.
        cursor: str | None = None
        reached = 1
        for _ in range(deep_page - 1):
            items, more = split_page(fetch(page_query(filtered, cursor)), DEFAULT_PAGE)
            if not more:
                break
            cursor = encode_cursor(sort.name, items[-1].due_at, items[-1].id)
            reached += 1
        count = inbox.count_query(principal, filtered, cross_unit_roles=cross_unit, now=NOW)
        everything = inbox.count_query(principal, {}, cross_unit_roles=cross_unit, now=NOW)
        cases: list[tuple[str, sa.Select[Any], bool]] = [
            (
                "primary-key read of one task (baseline)",
                sa.select(HumanTask).where(HumanTask.id == any_id),
                True,
            ),
            (f"{role} + {unit}: first page of {DEFAULT_PAGE}, due-sorted", page_query(filtered, None), True),
            (
                f"{role} + {unit}: page {reached} by cursor ({(reached - 1) * DEFAULT_PAGE:,} rows in)",
                page_query(filtered, cursor),
                True,
            ),
            (f"{role} + {unit}: count", count, False),
            ("all the officer's roles and units: first page", page_query({}, None), True),
            ("all the officer's roles and units: count", everything, False),
        ]
        for name, query, loads_rows in cases:
            if loads_rows:
                found = len(fetch(query))
                timing = measure(lambda query=query: fetch(query), repeat=repeat, warmup=5)
            else:
                found = int(session.scalar(query) or 0)
                timing = measure(lambda query=query: session.scalar(query), repeat=repeat, warmup=5)
            plans[name] = _explain(session, query)
            rows.append({"name": name, **timing, "rows": found, "index": _indexes(plans[name])})
    services.db.dispose()
    return rows, plans


if __name__ == "__main__":
    main()

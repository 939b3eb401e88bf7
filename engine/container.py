"""Wires the engine's long-lived parts together from ``Settings``: database, specs, forms, runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.calendars import expression_helpers, parse_instant, to_iso
from engine.clock import Clock, SystemClock
from engine.db import create_db_engine, make_sessionmaker
from engine.forms import FormRegistry
from engine.instances import EngineContext
from engine.messages import MessageHook
from engine.process_settings import ProcessSettings
from engine.registry import SpecRegistry
from engine.runtime import WorkflowRuntime
from engine.sandbox import Sandbox, SandboxScriptEngine
from engine.settings import Settings
from engine.timers import TimerHook


@dataclass
class Services:
    """Everything a process (server or worker) needs to run cases."""

    settings: Settings
    db: Engine
    sessions: sessionmaker[Session]
    context: EngineContext

    @property
    def clock(self) -> Clock:
        return self.context.clock


def load_process_settings(settings: Settings) -> ProcessSettings:
    return ProcessSettings.from_file(
        settings.process_settings_file or settings.processes_dir / "settings.json"
    )


def script_helpers(
    settings: Settings, clock: Clock, process_settings: ProcessSettings | None = None
) -> dict[str, Any]:
    """The functions process designers may call by name in expressions and scripts."""
    process_settings = process_settings or load_process_settings(settings)
    helpers: dict[str, Any] = dict(expression_helpers(clock))
    helpers["now"] = helpers["now_iso"]
    helpers["parse_datetime"] = lambda value: to_iso(parse_instant(value))
    helpers["setting"] = process_settings.get
    return helpers


def build_services(
    settings: Settings, *, clock: Clock | None = None, script_engine: Any = None, **engine_kwargs: Any
) -> Services:
    clock = clock or SystemClock()
    process_settings = load_process_settings(settings)
    if script_engine is None:
        sandbox = Sandbox(
            script_helpers(settings, clock, process_settings), cpu_seconds=settings.script_cpu_seconds
        )
        script_engine = SandboxScriptEngine(sandbox)
    runtime = WorkflowRuntime(script_engine)
    db = create_db_engine(settings.database_url, json_serializer=runtime.json_dumps, **engine_kwargs)
    forms = FormRegistry.from_directory(settings.forms_dir)
    context = EngineContext(
        registry=SpecRegistry(forms),
        runtime=runtime,
        clock=clock,
        max_instance_data_bytes=settings.max_instance_data_bytes,
        hooks=[TimerHook(clock=clock), MessageHook()],
        process_settings=process_settings,
    )
    return Services(settings=settings, db=db, sessions=make_sessionmaker(db), context=context)

"""Engine configuration read once from ``OPSFLOW_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """An environment variable has a value the engine cannot use."""


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, not {value}")
    return value


def _bool(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Everything the engine, the API and the worker need to know about their surroundings."""

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'opsflow.sqlite3'}"
    processes_dir: Path = PROJECT_ROOT / "processes"
    forms_dir: Path = PROJECT_ROOT / "forms"
    process_settings_file: Path | None = None
    bank_holidays_file: Path | None = None
    script_cpu_seconds: float = 1.0
    max_upload_bytes: int = 5 * 1024 * 1024
    max_body_bytes: int = 1024 * 1024
    max_json_depth: int = 32
    max_instance_data_bytes: int = 512 * 1024
    idempotency_key_hours: int = 24
    timer_lease_seconds: int = 60
    timer_max_attempts: int = 5
    timer_batch_size: int = 100
    embedded_worker: bool = True
    reload_processes: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        settings_file = env.get("OPSFLOW_PROCESS_SETTINGS")
        holidays_file = env.get("OPSFLOW_BANK_HOLIDAYS_FILE")
        return cls(
            database_url=env.get("OPSFLOW_DATABASE_URL") or defaults.database_url,
            processes_dir=Path(env.get("OPSFLOW_PROCESSES_DIR") or defaults.processes_dir),
            forms_dir=Path(env.get("OPSFLOW_FORMS_DIR") or defaults.forms_dir),
            process_settings_file=Path(settings_file) if settings_file else None,
            bank_holidays_file=Path(holidays_file) if holidays_file else None,
            script_cpu_seconds=_float(env, "OPSFLOW_SCRIPT_CPU_SECONDS", defaults.script_cpu_seconds),
            max_upload_bytes=_int(env, "OPSFLOW_MAX_UPLOAD_BYTES", defaults.max_upload_bytes, minimum=1024),
            max_body_bytes=_int(env, "OPSFLOW_MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024),
            max_json_depth=_int(env, "OPSFLOW_MAX_JSON_DEPTH", defaults.max_json_depth, minimum=2),
            max_instance_data_bytes=_int(
                env, "OPSFLOW_MAX_INSTANCE_DATA_BYTES", defaults.max_instance_data_bytes, minimum=1024
            ),
            idempotency_key_hours=_int(
                env, "OPSFLOW_IDEMPOTENCY_KEY_HOURS", defaults.idempotency_key_hours, minimum=1
            ),
            timer_lease_seconds=_int(
                env, "OPSFLOW_TIMER_LEASE_SECONDS", defaults.timer_lease_seconds, minimum=1
            ),
            timer_max_attempts=_int(
                env, "OPSFLOW_TIMER_MAX_ATTEMPTS", defaults.timer_max_attempts, minimum=1
            ),
            timer_batch_size=_int(env, "OPSFLOW_TIMER_BATCH_SIZE", defaults.timer_batch_size, minimum=1),
            embedded_worker=_bool(env, "OPSFLOW_EMBEDDED_WORKER", default=defaults.embedded_worker),
            reload_processes=_bool(env, "OPSFLOW_RELOAD_PROCESSES", default=False),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

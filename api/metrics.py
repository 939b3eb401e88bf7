"""Prometheus metrics: request latency measured here, case and task figures counted in SQL at each scrape."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from api.blueprint import ApiBlueprint
from engine.container import Services
from engine.instances import COMPLETED, READY
from engine.models import HumanTask, ProcessInstance

log = logging.getLogger("opsflow.api")

REGISTRY_KEY = "opsflow_metrics"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

blp = ApiBlueprint("metrics", __name__, url_prefix="/api/v1/metrics", description="Prometheus metrics")


class CaseCollector(Collector):
    """Reads the figures from the database when scraped, so every server and worker agrees on them.

    Counting in SQL rather than in process memory means instances completed by a timer worker or by
    another server are counted too, and a restart does not reset anything.
    """

    def __init__(self, services: Services) -> None:
        self.services = services

    def describe(self) -> Iterator[Any]:
        """The families without their values, so registering the collector reads nothing (a server
        may be created before its database is migrated, as `opsflow db upgrade` does)."""
        yield GaugeMetricFamily("opsflow_metrics_database_up", "1 when the figures below could be read")
        yield CounterMetricFamily(
            "opsflow_instances_started", "Process instances started", labels=["process_key"]
        )
        yield CounterMetricFamily(
            "opsflow_instances_completed", "Process instances that reached an end", labels=["process_key"]
        )
        yield GaugeMetricFamily("opsflow_open_tasks", "Open human tasks by role", labels=["role"])

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("opsflow_metrics_database_up", "1 when the figures below could be read")
        try:
            with self.services.sessions() as session:
                by_key = sa.select(ProcessInstance.process_key, sa.func.count()).group_by(
                    ProcessInstance.process_key
                )
                started = session.execute(by_key).all()
                completed = session.execute(by_key.where(ProcessInstance.status == COMPLETED)).all()
                open_tasks = session.execute(
                    sa.select(HumanTask.role, sa.func.count())
                    .where(HumanTask.status == READY)
                    .group_by(HumanTask.role)
                ).all()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics.database_unavailable error=%s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        started_family = CounterMetricFamily(
            "opsflow_instances_started", "Process instances started", labels=["process_key"]
        )
        for key, count in started:
            started_family.add_metric([key], count)
        yield started_family
        completed_family = CounterMetricFamily(
            "opsflow_instances_completed", "Process instances that reached an end", labels=["process_key"]
        )
        for key, count in completed:
            completed_family.add_metric([key], count)
        yield completed_family
        tasks_family = GaugeMetricFamily("opsflow_open_tasks", "Open human tasks by role", labels=["role"])
        for role, count in open_tasks:
            tasks_family.add_metric([role], count)
        yield tasks_family


def init_metrics(app: Flask, services: Services) -> None:
    """A registry of the app's own (so several apps in one process never clash) and the timing hooks."""
    registry = CollectorRegistry(auto_describe=True)
    latency = Histogram(
        "opsflow_http_request_duration_seconds",
        "Time to answer an HTTP request",
        labelnames=("method", "endpoint", "status"),
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    registry.register(CaseCollector(services))
    app.extensions[REGISTRY_KEY] = registry

    @app.before_request
    def _start_timer() -> None:
        g.opsflow_request_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("opsflow_request_started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
            latency.labels(request.method, rule, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response


@blp.route("")
class Metrics(MethodView):
    @blp.require_scope("admin")
    @blp.response(
        200,
        {"type": "string"},
        content_type=CONTENT_TYPE_LATEST.split(";")[0],
        description="Prometheus text exposition format",
    )
    def get(self) -> Response:
        """Metrics for Prometheus; scrape with a client-credentials token carrying the admin scope"""
        registry: CollectorRegistry = current_app.extensions[REGISTRY_KEY]
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

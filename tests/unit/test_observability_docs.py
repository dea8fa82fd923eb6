"""The Grafana dashboard, the alert rule examples and docs/observability.md name only metrics the
service defines, and the dashboard and the doc show every one of them: they cannot drift apart."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from services import metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAME = re.compile(r"tokenledger_[a-z_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def defined() -> set[str]:
    return {value._name for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)}


def named(text: str) -> set[str]:
    found = set()
    for name in NAME.findall(text):
        for suffix in SUFFIXES:
            name = name.removesuffix(suffix)
        found.add(name)
    return found


def test_the_dashboard_shows_every_metric_and_no_other() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert named("\n".join(expressions)) == defined()


def test_the_alert_rules_name_only_defined_metrics() -> None:
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = named("\n".join(expressions))
    assert used and used <= defined()
    titles = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "TokenledgerProjectionStalled",
        "TokenledgerRelayLagging",
        "TokenledgerUsageRowsSetAside",
    } <= titles


def test_the_doc_lists_every_metric() -> None:
    text = (DOCS / "observability.md").read_text()
    assert {name for name in defined() if f"`{name}" not in text} == set()

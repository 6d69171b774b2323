"""One source for schedules: prefect.yaml and `billpay serve` both come from the registry."""

from __future__ import annotations

from pathlib import Path

import yaml

from deployments.registry import all_specs, render_prefect_yaml
from deployments.serving import build_deployments

ROOT = Path(__file__).resolve().parents[2]


def test_committed_prefect_yaml_is_rendered_from_the_registry():
    assert (ROOT / "prefect.yaml").read_text() == render_prefect_yaml(), (
        "prefect.yaml drifted: run `billpay deployments yaml > prefect.yaml`"
    )


def test_one_pipeline_deployment_runs_every_ten_seconds_in_process_with_no_slot_to_hold():
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in document["deployments"]}
    ten_second = [
        n for n, d in by_name.items() if {"interval": 10, "active": True} in d["schedules"]
    ]
    assert ten_second == ["pipeline"]
    assert "concurrency_limit" not in by_name["pipeline"]  # nothing a dead run could hold
    assert [s.name for s in all_specs() if s.in_process] == ["pipeline"]
    for name in ("report-success-rate", "report-provider-performance", "daily-report"):
        assert by_name[name]["concurrency_limit"] == {
            "limit": 1,
            "collision_strategy": "CANCEL_NEW",
        }
    assert by_name["reprocess-stuck"]["schedules"] == []
    assert by_name["reprocess-stuck"]["parameters"] == {"dry_run": True}
    assert by_name["daily-report"]["schedules"] == [
        {"cron": "0 6 * * *", "active": True, "timezone": "Africa/Lagos"}
    ]


def test_serve_builds_the_same_deployments_and_schedules():
    served = {d.name: d for d in build_deployments()}
    specs = {s.name: s for s in all_specs()}
    assert set(served) == set(specs)
    for name, spec in specs.items():
        deployment = served[name]
        intervals = [
            s.schedule.interval.total_seconds()
            for s in deployment.schedules
            if getattr(s.schedule, "interval", None)
        ]
        crons = [s.schedule.cron for s in deployment.schedules if getattr(s.schedule, "cron", None)]
        assert intervals == ([spec.interval_seconds] if spec.interval_seconds else [])
        assert crons == ([spec.cron] if spec.cron else [])
        if spec.concurrency_limit:
            assert deployment.concurrency_limit == spec.concurrency_limit
            assert str(deployment.concurrency_options.collision_strategy.value) == "CANCEL_NEW"
        assert (deployment.parameters or {}) == spec.parameters
        assert deployment.entrypoint.replace(":", "").endswith(spec.entrypoint.split(":")[1])


def test_every_flow_file_is_named_after_its_deployment():
    for spec in all_specs():
        path, _, attr = spec.entrypoint.partition(":")
        assert path == f"flows/{spec.name.replace('-', '_')}.py"
        assert (ROOT / path).is_file()
        assert spec.load_flow().name == spec.name

"""Pure alert logic: cooldown decision, payload shape, record round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from retraining_assets.core.alerts import Alert, SentRecord, decide_send, slack_payload

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def test_first_alert_is_sent_and_repeats_wait_for_the_cooldown() -> None:
    assert decide_send(None, NOW, 3600) == (True, "first time")
    last = SentRecord("k", (NOW - timedelta(minutes=10)).isoformat())
    send, why = decide_send(last, NOW, 3600)
    assert not send and "600s ago < cooldown 3600s" in why
    assert decide_send(last, NOW, 600)[0]


def test_same_kind_and_subject_is_the_same_alert() -> None:
    a = Alert("gate_rejected", "production_model:run1", "title a")
    b = Alert("gate_rejected", "production_model:run1", "other title", text="x")
    c = Alert("gate_rejected", "production_model:run2", "title a")
    d = Alert("rollback", "production_model:run1", "title a")
    assert a.key == b.key
    assert len({a.key, c.key, d.key}) == 3
    with pytest.raises(ValueError, match="unknown alert kind"):
        Alert("nope", "s", "t")


def test_slack_payload_has_text_and_blocks() -> None:
    alert = Alert(
        "check_failed",
        "validated_dataset:label",
        "Check failed",
        "3 rows",
        {"run": "abc"},
        "http://x",
    )
    payload = slack_payload(alert, suppressed=2)
    json.dumps(payload)
    assert payload["text"] == ":warning: Check failed: 3 rows"
    assert [b["type"] for b in payload["blocks"]] == ["section", "section", "section", "context"]
    context = payload["blocks"][-1]["elements"][0]["text"]
    assert "`check_failed`" in context and "2 repeat(s)" in context and "<http://x|open>" in context


def test_sent_record_round_trip() -> None:
    record = SentRecord("k", NOW.isoformat(), 3)
    assert SentRecord.from_json(record.to_json()) == record

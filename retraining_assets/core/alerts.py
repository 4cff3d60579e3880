"""Alerts: what to say, in which payload, and whether it was said too recently (no Dagster here).

An alert has a ``kind`` (gate rejection, rollback, failed run or check, stale model, sensor
error) and a ``subject`` (what it is about: a model, a check, a sensor). Two alerts with the same
kind and subject are the same alert: within the cooldown only the first is sent. The state of
what was sent is a small JSON record per alert key, kept by the caller in a shared store so that
every process (daemon, run workers, webserver) sees the same cooldown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: The kinds of alert the loop sends, with the emoji Slack shows in front of the title.
KINDS: dict[str, str] = {
    "gate_rejected": ":no_entry:",
    "rollback": ":rewind:",
    "run_failed": ":x:",
    "check_failed": ":warning:",
    "stale_model": ":hourglass:",
    "sensor_error": ":rotating_light:",
}


@dataclass(frozen=True)
class Alert:
    """One notification: what happened (kind), about what (subject), and the details."""

    kind: str
    subject: str
    title: str
    text: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    link: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}; one of {sorted(KINDS)}")

    @property
    def key(self) -> str:
        """The de-duplication key: same kind and subject, same alert."""
        digest = hashlib.sha256(f"{self.kind}\0{self.subject}".encode()).hexdigest()[:32]
        return f"{self.kind}-{digest}"


@dataclass(frozen=True)
class SentRecord:
    """What was last sent for one alert key, and how many repeats the cooldown held back."""

    key: str
    sent_at: str
    suppressed: int = 0

    def to_json(self) -> bytes:
        """The record as JSON bytes (what the store keeps)."""
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SentRecord:
        """Parse a stored record (plain JSON, nothing executed)."""
        raw = json.loads(data)
        return cls(
            key=str(raw["key"]), sent_at=str(raw["sent_at"]), suppressed=int(raw["suppressed"])
        )


def decide_send(
    last: SentRecord | None, now: datetime, cooldown_seconds: float
) -> tuple[bool, str]:
    """Whether an alert goes out now, given what was last sent for its key.

    Args:
        last: The record of the last send of the same alert, or ``None`` if never sent.
        now: The current time (timezone-aware).
        cooldown_seconds: How long a sent alert silences its repeats.

    Returns:
        ``(send, reason)``; the reason names the numbers (age against cooldown).
    """
    if last is None:
        return True, "first time"
    age = (now - datetime.fromisoformat(last.sent_at)).total_seconds()
    if age < cooldown_seconds:
        return False, f"sent {age:.0f}s ago < cooldown {cooldown_seconds:.0f}s"
    return True, f"last sent {age:.0f}s ago >= cooldown {cooldown_seconds:.0f}s"


def slack_payload(alert: Alert, suppressed: int = 0) -> dict:
    """A Slack-compatible webhook body: ``text`` (fallback) plus Block Kit ``blocks``.

    Args:
        alert: The alert to render.
        suppressed: How many repeats the cooldown held back since the last send (shown).

    Returns:
        A JSON-serialisable dict ``{"text": ..., "blocks": [...]}``.
    """
    head = f"{KINDS[alert.kind]} {alert.title}"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*"}}]
    if alert.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": alert.text[:2900]}})
    if alert.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                    for name, value in list(alert.fields.items())[:10]
                ],
            }
        )
    context = [f"kind `{alert.kind}`", f"subject `{alert.subject}`"]
    if suppressed:
        context.append(f"{suppressed} repeat(s) held back by the cooldown")
    if alert.link:
        context.append(f"<{alert.link}|open>")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    text = head if not alert.text else f"{head}: {alert.text}"
    return {"text": text[:3000], "blocks": blocks}


def now_utc() -> datetime:
    """The current time in UTC (one place, so callers and tests agree)."""
    return datetime.now(UTC)

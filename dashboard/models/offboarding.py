"""An offboarding report as the dashboard shows it: one row per credential, grouped by server."""

from __future__ import annotations

import pandas as pd

from core.models import OffboardingReport

# The outcome as words on a badge (the tones are in dashboard/views/tables.py).
OUTCOME_LABELS = {
    "revoked": "revoked at server",
    "deleted_locally": "deleted locally only",
    "failed": "failed",
}
COLUMNS = ["server", "connector", "agent", "outcome", "reason"]


def report_frame(report: OffboardingReport | None) -> pd.DataFrame:
    rows = [
        {
            "server": server,
            "connector": removal.connector,
            "agent": removal.agent or "(shared)",
            "outcome": OUTCOME_LABELS[removal.outcome],
            "reason": removal.reason,
        }
        for server, removals in (report.by_server().items() if report else ())
        for removal in removals
    ]
    return pd.DataFrame(rows, columns=COLUMNS)

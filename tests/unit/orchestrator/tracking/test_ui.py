"""Links into the MLflow UI (``tracking/ui.py``) never show a password of the store's URI."""

from __future__ import annotations


def test_redact_uri():
    from stylegrid.orchestrator.services import redact_uri
    from stylegrid.orchestrator.tracking.ui import ui_command

    assert (
        redact_uri("postgresql://bob:pa%40ss@db.internal:5432/mlflow")
        == "postgresql://bob:***@db.internal:5432/mlflow"
    )
    assert redact_uri("https://u:p@example.org/x?y=1") == "https://u:***@example.org/x?y=1"
    assert redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact_uri("sqlite:////tmp/a b/mlflow.db") == "sqlite:////tmp/a b/mlflow.db"
    assert "pw" not in ui_command("mysql://u:pw@h/db") and "pw" not in ui_command("http://u:pw@h")

"""The MLflow tracking server and registry the platform uses: PostgreSQL behind it,
artifacts in the object store (proxied: clients need no S3 credentials), on
127.0.0.1:5000."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg2
import pytest
from mlflow import MlflowClient

from maestro.localplatform.clusterconfig import ClusterConfig
from maestro.localplatform.mlflow_server import ARTIFACTS, MlflowConfig
from maestro.localplatform.objectstore import LocalObjectStore

pytestmark = pytest.mark.services


def test_runs_metrics_artifacts_and_registry_persist_in_postgresql(
    mlflow_url: str, tmp_path: Path
) -> None:
    mlflow = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    experiment = mlflow.create_experiment(f"foundation-{uuid.uuid4().hex[:8]}")
    run = mlflow.create_run(experiment)
    run_id = run.info.run_id
    mlflow.log_metric(run_id, "accuracy", 0.93)
    note = tmp_path / "note.txt"
    note.write_text("artifact body")
    mlflow.log_artifact(run_id, str(note))
    mlflow.set_terminated(run_id)

    name = f"model-{uuid.uuid4().hex[:8]}"
    mlflow.create_registered_model(name)
    version = mlflow.create_model_version(name, f"runs:/{run_id}/note.txt", run_id=run_id)
    mlflow.set_registered_model_alias(name, "candidate", version.version)

    assert mlflow.get_run(run_id).data.metrics["accuracy"] == pytest.approx(0.93)
    assert [a.path for a in mlflow.list_artifacts(run_id)] == ["note.txt"]
    downloaded = Path(mlflow.download_artifacts(run_id, "note.txt", str(tmp_path / "dl")))
    assert downloaded.read_text() == "artifact body"
    assert mlflow.get_model_version_by_alias(name, "candidate").version == version.version
    # The client went through the server's proxy; the bytes are in the object store.
    assert mlflow.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    store = LocalObjectStore(ClusterConfig(root=MlflowConfig().root)).client()
    stored = [
        o.uri for o in store.list(f"{ARTIFACTS}/") if o.uri.endswith(f"{run_id}/artifacts/note.txt")
    ]
    assert len(stored) == 1
    assert store.get_bytes(stored[0]) == b"artifact body"

    # The rows are in PostgreSQL, not in a file store.
    dsn = MlflowConfig().database_uri.replace("postgresql+psycopg2://", "postgresql://")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select status from runs where run_uuid = %s", (run_id,))
        assert cur.fetchone() == ("FINISHED",)
        cur.execute("select name from registered_models where name = %s", (name,))
        assert cur.fetchone() == (name,)

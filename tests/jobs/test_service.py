"""JobService without workers: submit, idempotency, ownership, listing, cancel, delete, files, keys,
retention, migrations. Real SQLite in ``tmp_path``."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from jobs_helpers import make_settings
from sqlalchemy import func, inspect, select, text, update

from cadenza.db.models import Job, JobEvent, JobOutput, utcnow
from cadenza.db.session import read_tx, write_tx
from cadenza.jobs import (
    IdempotencyConflict,
    JobGone,
    JobNotFound,
    JobNotReady,
    JobService,
    JobStatus,
    OutputNotFound,
    StagedInput,
)


def test_an_event_sets_only_jobs_columns_and_refuses_other_names(service: JobService) -> None:
    """``append_event`` writes with SQLAlchemy Core, which would drop a parameter that names no column (an ORM
    attribute such as ``inputs``, stored in ``upload_info``, or a typo): such a name is refused, nothing written."""
    from cadenza.jobs import store

    job, _ = service.submit("testjob", {})
    with write_tx(service.engine) as session:
        assert store.append_event(session, job.id, "progress", {"progress": 5.0}, values={"progress": 5.0}) == 2
    for bad in ({"inputs": {}}, {"progres": 1.0}):
        with write_tx(service.engine) as session, pytest.raises(ValueError, match="not columns of jobs"):
            store.append_event(session, job.id, "progress", {}, values=bad)
    view = service.get(job.id)
    assert view.progress == 5.0 and view.sequence == 2
    assert [e.type for e in service.events(job.id)] == ["status", "progress"]


def test_submit_stores_queued_job_with_first_event(service: JobService) -> None:
    job, created = service.submit("testjob", {"payload": "x"}, owner="key_a", priority=3)
    assert created
    assert job.status is JobStatus.queued and job.kind == "testjob" and job.params == {"payload": "x"}
    assert (job.owner, job.priority, job.attempts, job.sequence) == ("key_a", 3, 0, 1)
    assert job.queue_duration_s is None and job.run_duration_s is None and job.outputs == []
    events = service.events(job.id)
    assert [(e.sequence, e.type, e.data) for e in events] == [(1, "status", {"status": "queued"})]
    assert service.queue_depth() == 1


def test_unknown_kind_is_rejected_and_leaves_nothing(service: JobService) -> None:
    with pytest.raises(ValueError, match="unknown job kind"):
        service.submit("nope", {})
    assert service.list()[0] == []


def test_migrations_are_idempotent_and_create_schema(settings, service: JobService) -> None:
    again = JobService(settings)  # runs `alembic upgrade head` a second time on the same file
    tables = set(inspect(again.engine).get_table_names())
    assert {"jobs", "job_events", "job_outputs", "api_keys", "uploads", "alembic_version"} <= tables
    with again.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
    again.ping()
    again.dispose()


def test_idempotency(service: JobService) -> None:
    first, created = service.submit("testjob", {"payload": "a"}, owner="k1", idempotency_key="abc")
    again, created_again = service.submit("testjob", {"payload": "a"}, owner="k1", idempotency_key="abc")
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        service.submit("testjob", {"payload": "b"}, owner="k1", idempotency_key="abc")
    with pytest.raises(IdempotencyConflict):
        service.submit("testretry", {"payload": "a"}, owner="k1", idempotency_key="abc")
    other, created_other = service.submit("testjob", {"payload": "a"}, owner="k2", idempotency_key="abc")
    assert created_other and other.id != first.id  # keys are scoped per owner
    anon, c1 = service.submit("testjob", {}, idempotency_key="zz")
    anon2, c2 = service.submit("testjob", {}, idempotency_key="zz")  # owner-less keys also deduplicate
    assert c1 and not c2 and anon.id == anon2.id
    assert len(service.list()[0]) == 3


def test_owner_isolation(service: JobService) -> None:
    job, _ = service.submit("testjob", {}, owner="alice")
    assert service.get(job.id, owner="alice").id == job.id
    assert service.get(job.id).id == job.id  # admin / auth off
    for call in (
        lambda: service.get(job.id, owner="bob"),
        lambda: service.events(job.id, owner="bob"),
        lambda: service.cancel(job.id, owner="bob"),
        lambda: service.delete(job.id, owner="bob"),
        lambda: service.get(uuid.uuid4()),
        lambda: service.get("not-a-uuid"),  # type: ignore[arg-type]
    ):
        with pytest.raises(JobNotFound):
            call()
    assert service.get(job.id).status is JobStatus.queued
    assert service.list(owner="bob")[0] == []


def test_list_newest_first_with_cursor_and_filters(service: JobService) -> None:
    ids = [service.submit("testjob", {"tag": str(i)}, owner="o")[0].id for i in range(7)]
    service.submit("testretry", {}, owner="o")
    page1, cursor = service.list(owner="o", kind="testjob", limit=3)
    page2, cursor2 = service.list(owner="o", kind="testjob", limit=3, cursor=cursor)
    page3, cursor3 = service.list(owner="o", kind="testjob", limit=3, cursor=cursor2)
    assert [j.id for j in page1 + page2 + page3] == ids[::-1]
    assert cursor3 is None and cursor and cursor2
    service.cancel(ids[0])
    cancelled, _ = service.list(status=JobStatus.cancelled)
    assert [j.id for j in cancelled] == [ids[0]]
    with pytest.raises(ValueError, match="cursor"):
        service.list(cursor="garbage!!")
    with pytest.raises(ValueError, match="limit"):
        service.list(limit=0)


def test_cancel_queued_removes_upload_and_is_idempotent(service: JobService, tmp_path: Path) -> None:
    staged = tmp_path / "staged.wav"
    staged.write_bytes(b"RIFF....")
    job, _ = service.submit("testjob", {}, inputs={"file": StagedInput(staged, {"duration_s": 1.0})})
    folder = service.files_dir / str(job.id)
    assert not staged.exists() and (folder / ".upload" / "file.wav").read_bytes() == b"RIFF...."
    assert service.get(job.id).inputs == {"file": {"duration_s": 1.0, "stored_as": "file.wav"}}
    cancelled = service.cancel(job.id)
    assert cancelled.status is JobStatus.cancelled and cancelled.completed_at is not None
    assert cancelled.queue_duration_s is not None and cancelled.run_duration_s is None
    assert not folder.exists()
    assert service.cancel(job.id).sequence == cancelled.sequence  # idempotent: no new event
    assert [e.data["status"] for e in service.events(job.id)] == ["queued", "cancelled"]
    assert service.queue_depth() == 0


def test_idempotent_repeat_deletes_the_new_staged_upload(service: JobService, tmp_path: Path) -> None:
    first = tmp_path / "a.wav"
    first.write_bytes(b"one")
    job, _ = service.submit("testjob", {}, idempotency_key="k", inputs={"file": StagedInput(first, {"sha256": "1"})})
    second = tmp_path / "b.wav"
    second.write_bytes(b"one")
    again, created = service.submit(
        "testjob", {}, idempotency_key="k", inputs={"file": StagedInput(second, {"sha256": "1"})}
    )
    assert not created and again.id == job.id and not second.exists()
    # a different file under the same key is a different request
    third = tmp_path / "c.wav"
    third.write_bytes(b"two")
    with pytest.raises(IdempotencyConflict):
        service.submit("testjob", {}, idempotency_key="k", inputs={"file": StagedInput(third, {"sha256": "2"})})
    assert not third.exists()


def test_delete_removes_row_events_and_files(service: JobService, tmp_path: Path) -> None:
    staged = tmp_path / "in.bin"
    staged.write_bytes(b"x")
    job, _ = service.submit("testjob", {}, inputs={"file": StagedInput(staged)})
    service.delete(job.id)
    with pytest.raises(JobNotFound):
        service.get(job.id)
    with pytest.raises(JobNotFound):
        service.events(job.id)
    assert not (service.files_dir / str(job.id)).exists()


def _complete_by_hand(service: JobService, job_id: uuid.UUID, content: bytes, completed_ago_h: float = 0) -> None:
    """Store a finished job the way the worker does (used to test reads and retention without workers)."""
    folder = service.files_dir / str(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out.txt").write_bytes(content)
    done = utcnow() - timedelta(hours=completed_ago_h)
    with write_tx(service.engine) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(status="completed", started_at=done, completed_at=done)
        )
        session.add(
            JobOutput(
                job_id=job_id,
                name="out.txt",
                media_type="text/plain",
                size_bytes=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                path="out.txt",
                meta={},
            )
        )


def test_output_file_states_and_name_validation(service: JobService) -> None:
    job, _ = service.submit("testjob", {}, owner="o")
    with pytest.raises(JobNotReady):
        service.output_file(job.id, "o", "out.txt")
    _complete_by_hand(service, job.id, b"data")
    view, path = service.output_file(job.id, "o", "out.txt")
    assert path.read_bytes() == b"data" and view.size_bytes == 4
    assert view.sha256 == hashlib.sha256(b"data").hexdigest()
    for bad in ("../cadenza.db", "missing.txt", ".upload", "a/b", ""):
        with pytest.raises(OutputNotFound):
            service.output_file(job.id, "o", bad)
    with pytest.raises(JobNotFound):
        service.output_file(job.id, "someone-else", "out.txt")
    path.unlink()  # files gone (e.g. pruned by hand)
    with pytest.raises(JobGone):
        service.output_file(job.id, "o", "out.txt")
    cancelled, _ = service.submit("testjob", {"tag": "c"})
    service.cancel(cancelled.id)
    with pytest.raises(JobGone):
        service.output_file(cancelled.id, None, "out.txt")


def test_prune_applies_retention_per_status(tmp_path: Path) -> None:
    service = JobService(make_settings(tmp_path, retention_completed_h=1, retention_failed_h=10))
    old_done, _ = service.submit("testjob", {"tag": "old"})
    new_done, _ = service.submit("testjob", {"tag": "new"})
    _complete_by_hand(service, old_done.id, b"old", completed_ago_h=2)
    _complete_by_hand(service, new_done.id, b"new", completed_ago_h=0.5)
    cancelled, _ = service.submit("testjob", {"tag": "cancel"})
    service.cancel(cancelled.id)
    queued, _ = service.submit("testjob", {"tag": "queued"})

    def n_events(job_id: uuid.UUID) -> int:
        with service.engine.connect() as conn:
            return conn.execute(select(func.count()).where(JobEvent.job_id == job_id)).scalar()

    assert n_events(old_done.id) == 1
    assert service.prune() == {"completed": 1, "failed": 0, "cancelled": 0, "jobs": 1}
    with pytest.raises(JobNotFound):
        service.get(old_done.id)
    assert not (service.files_dir / str(old_done.id)).exists()
    assert (service.files_dir / str(new_done.id) / "out.txt").exists()
    with service.engine.connect() as conn:  # events and outputs went with the job
        assert conn.execute(text("SELECT count(*) FROM job_outputs")).scalar() == 1
    assert n_events(old_done.id) == 0 and n_events(new_done.id) == 1

    later = utcnow() + timedelta(hours=11)
    assert service.prune(now=later) == {"completed": 1, "failed": 0, "cancelled": 1, "jobs": 2}
    remaining, _ = service.list()
    assert [j.id for j in remaining] == [queued.id]  # queued jobs are never pruned
    service.dispose()


def test_prune_zero_retention_keeps_everything(tmp_path: Path) -> None:
    service = JobService(make_settings(tmp_path, retention_completed_h=0, retention_failed_h=0))
    job, _ = service.submit("testjob", {})
    _complete_by_hand(service, job.id, b"x", completed_ago_h=10_000)
    assert service.prune()["jobs"] == 0
    assert service.get(job.id).status is JobStatus.completed
    service.dispose()


def test_api_keys(service: JobService) -> None:
    secret, key = service.keys.create("ci")
    assert secret.startswith("cdz_") and len(secret) > 30 and key.prefix == secret[:12]
    assert service.keys.verify(secret) == key
    assert service.keys.verify(secret + "x") is None
    with service.engine.connect() as conn:  # only the hash is stored
        stored = conn.execute(text("SELECT sha256 FROM api_keys")).scalar()
    assert stored == hashlib.sha256(secret.encode()).hexdigest() and secret not in stored
    assert [k.id for k in service.keys.list()] == [key.id]
    revoked = service.keys.revoke(key.id)
    assert revoked.revoked_at is not None and service.keys.revoke(key.id).revoked_at == revoked.revoked_at
    assert service.keys.verify(secret) is None
    with pytest.raises(KeyError):
        service.keys.revoke("key_unknown")
    with pytest.raises(ValueError):
        service.keys.create("  ")


def test_wait_times_out_on_a_queued_job(service: JobService) -> None:
    job, _ = service.submit("testjob", {})
    waited = asyncio.run(service.wait(job.id, timeout_s=0.1))
    assert waited.status is JobStatus.queued
    service.cancel(job.id)
    assert asyncio.run(service.wait(job.id, timeout_s=5)).status is JobStatus.cancelled
    with pytest.raises(JobNotFound):
        asyncio.run(service.wait(job.id, owner="other", timeout_s=0))


def test_worker_finish_respects_cancel_and_deletion(service: JobService) -> None:
    """The worker's final transition: a cancel requested meanwhile wins over completion (no outputs
    recorded), and a job deleted meanwhile is left alone (nothing written, no error)."""
    from cadenza.jobs import store, worker

    output = {"name": "a.txt", "media_type": "text/plain", "size_bytes": 1, "sha256": "0" * 64, "path": "a.txt"}
    output["metadata"] = {}
    cancelled, _ = service.submit("testjob", {"tag": "cancel"})
    deleted, _ = service.submit("testjob", {"tag": "delete"})
    claims = {store.claim_next(service.engine, "w:1").id for _ in range(2)}
    assert claims == {cancelled.id, deleted.id}

    service.cancel(cancelled.id)
    status = worker._finish(service.engine, cancelled.id, "w:1", JobStatus.completed, outputs=[output], result={})
    view = service.get(cancelled.id)
    assert status is JobStatus.cancelled and view.status is JobStatus.cancelled and view.outputs == []
    assert [e.type for e in service.events(cancelled.id)] == ["status", "status", "status"]

    assert worker._finish(service.engine, cancelled.id, "w:1", JobStatus.failed, error=("E", "m")) is None
    service.delete(deleted.id)
    assert worker._finish(service.engine, deleted.id, "w:1", JobStatus.completed, outputs=[output], result={}) is None
    with read_tx(service.engine) as session:
        assert session.scalar(select(func.count()).select_from(JobOutput)) == 0


def test_claim_by_id_runs_a_job_once(service: JobService) -> None:
    from cadenza.jobs import store

    job, _ = service.submit("testjob", {"payload": "x"})
    claimed = store.claim(service.engine, "host:1", job.id, lease_s=5)
    assert claimed is not None and claimed.id == job.id and claimed.kind == "testjob"
    assert store.claim(service.engine, "host:2", job.id) is None  # a duplicated dispatch never runs it twice
    assert service.get(job.id).status is JobStatus.processing

"""Batches, webhook deliveries and their attempts, server secrets; a job's batch and webhook.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cadenza.db.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("batch_id", sa.Uuid()))
        batch.add_column(sa.Column("webhook_url", sa.String(2048)))
        batch.add_column(sa.Column("webhook_events", sa.JSON()))
        batch.add_column(sa.Column("webhook_sequence", sa.Integer()))
        batch.create_index("ix_jobs_batch", ["batch_id"])
        batch.create_index("ix_jobs_webhook_sequence", ["webhook_sequence"])
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner", sa.String(64)),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("idempotency_scope", sa.String(64)),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("client_metadata", sa.JSON()),
        sa.Column("webhook_url", sa.String(2048)),
        sa.Column("webhook_events", sa.JSON()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime()),
        sa.Column("notified_at", UTCDateTime()),
        sa.UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_batches_idempotency"),
    )
    op.create_index("ix_batches_owner_created", "batches", ["owner", "created_at"])
    op.create_index("ix_batches_open", "batches", ["completed_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("job_id", sa.Uuid()),
        sa.Column("batch_id", sa.Uuid()),
        sa.Column("owner", sa.String(64)),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_job", "webhook_deliveries", ["job_id"])
    op.create_index("ix_webhook_deliveries_batch", "webhook_deliveries", ["batch_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id", sa.String(40), sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(500)),
        sa.Column("response_excerpt", sa.String(500)),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("batches")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_webhook_sequence")
        batch.drop_index("ix_jobs_batch")
        batch.drop_column("webhook_sequence")
        batch.drop_column("webhook_events")
        batch.drop_column("webhook_url")
        batch.drop_column("batch_id")

"""Job-level option ``metadata`` (the client's JSON object, echoed in the job view) and the retry links.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("client_metadata", sa.JSON()))
        batch.add_column(sa.Column("retry_of", sa.Uuid()))
        batch.add_column(sa.Column("retried_by", sa.Uuid()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retried_by")
        batch.drop_column("retry_of")
        batch.drop_column("client_metadata")

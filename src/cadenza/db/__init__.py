"""Database layer: SQLAlchemy 2 models, engine/session helpers and Alembic migrations (run programmatically)."""

from cadenza.db.models import ApiKey, Base, Job, JobEvent, JobOutput
from cadenza.db.session import make_engine, upgrade_database

__all__ = ["ApiKey", "Base", "Job", "JobEvent", "JobOutput", "make_engine", "upgrade_database"]

"""The job-layer test engine with ``retry_on_crash=True`` (kind ``testretry``)."""

from jobs_test_engine import make_spec

ENGINE = make_spec("testretry", retry_on_crash=True)

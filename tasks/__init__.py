"""Prefect task wrappers: retry policy, names, timeouts, concurrency. No SQL, no HTTP here."""

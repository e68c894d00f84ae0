"""Tests of the model registry, run against SQLite and PostgreSQL."""

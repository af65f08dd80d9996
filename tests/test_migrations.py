"""Alembic is the only way the schema changes: it must match the models and run both ways."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.db import migrate
from bot.db.models import Base
from bot.db.session import make_engine


def test_migrations_match_the_models(db_engine):
    with db_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # Encrypted columns are Text in the migration and a TypeDecorator over Text in the models.
    significant = [d for d in diff if not (isinstance(d, list) and d and d[0][0] == "modify_type")]
    assert significant == []


def test_downgrade_and_upgrade_round_trip(tmp_path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    assert {"people", "conversations", "answers", "consent_records", "handoffs"} <= set(
        inspect(engine).get_table_names())
    migrate.downgrade(url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert "handoffs" in inspect(engine).get_table_names()
    engine.dispose()

"""Initial schema: log tables with append-only triggers, derived state tables.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from ledger.store.schema import APPEND_ONLY, metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind)
    if bind.dialect.name == "sqlite":
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'certledger: {table} is append-only'); END"
                )
    elif bind.dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION certledger_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'certledger: % is append-only', TG_TABLE_NAME; END $$ "
            "LANGUAGE plpgsql"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION certledger_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION certledger_append_only()"
            )
    else:
        raise RuntimeError(f"unsupported database dialect {bind.dialect.name}")


def downgrade() -> None:
    # history is never dropped by a migration
    raise RuntimeError("the initial ledger schema cannot be downgraded")

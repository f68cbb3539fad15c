"""one form per invitation, and the server's receipt time of a form

`submissions.invitation_id` names the invitation a form was made with, and a unique constraint
on it makes the database refuse a second form for one invitation, whatever the path (a single
form, a batch, concurrent requests). Forms made with an invitation before this revision get
theirs from `invitations.submission_id`.

`submissions.server_received_at` is when the server took the form, beside the client-given
`received_at`; forms stored before this revision get their `created_at`, which was set by the
server at the same moment.

The audit log may name an invitation as the actor: a citizen's form sent with an invitation and
no other credential.

Revision ID: 0009d
Revises: 0008
Create Date: 2026-11-30 14:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009d"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTORS_BEFORE = "actor_type IN ('user', 'client', 'system', 'anonymous')"
ACTORS_AFTER = "actor_type IN ('user', 'client', 'system', 'anonymous', 'invitation')"


def upgrade() -> None:
    op.add_column("submissions", sa.Column("invitation_id", sa.Uuid(), nullable=True))
    op.add_column(
        "submissions",
        sa.Column("server_received_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The backfill changes no counted column; the roll-up trigger would recount every valid form
    # twice (out and in again) for nothing.
    op.execute("ALTER TABLE submissions DISABLE TRIGGER index_rollups_on_update")
    op.execute("UPDATE submissions SET server_received_at = created_at")
    op.execute(
        "UPDATE submissions s SET invitation_id = i.id FROM invitations i"
        " WHERE i.submission_id = s.id"
    )
    op.execute("ALTER TABLE submissions ENABLE TRIGGER index_rollups_on_update")
    op.alter_column(
        "submissions",
        "server_received_at",
        nullable=False,
        server_default=sa.text("now()"),
    )
    op.create_foreign_key(
        op.f("fk_submissions_invitation_id_invitations"),
        "submissions",
        "invitations",
        ["invitation_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_unique_constraint("uq_submissions_invitation_id", "submissions", ["invitation_id"])
    op.drop_constraint(op.f("ck_audit_events_actor_type_known"), "audit_events", type_="check")
    op.create_check_constraint(
        op.f("ck_audit_events_actor_type_known"), "audit_events", ACTORS_AFTER
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_audit_events_actor_type_known"), "audit_events", type_="check")
    # Events whose actor is an invitation stay (the log is append-only): the narrower check
    # holds for new rows only.
    op.execute(
        "ALTER TABLE audit_events ADD CONSTRAINT ck_audit_events_actor_type_known"
        f" CHECK ({ACTORS_BEFORE}) NOT VALID"
    )
    op.drop_constraint("uq_submissions_invitation_id", "submissions", type_="unique")
    op.drop_constraint(
        op.f("fk_submissions_invitation_id_invitations"), "submissions", type_="foreignkey"
    )
    op.drop_column("submissions", "server_received_at")
    op.drop_column("submissions", "invitation_id")

"""The three-agent composer (converter → critic → judge): jobs and results (schema doc §17–18).

Ours (0015_compose_jobs): a job is durable work any node may run. A node claims it by writing
its id into ``lease_owner`` and a deadline into ``lease_expires_at``, renews the lease while it
works, and every write it makes is fenced on (``lease_owner``, ``attempts``), so a node that lost
its lease can change nothing. ``stage_outputs`` keeps each agent's validated JSON as soon as it
exists (the results row needs the judge's, so it is written at the end); a job whose node died
resumes from the stage after the last one stored there. ``cancel_requested_at`` asks whoever
runs the job to stop. ``user_id`` and ``session_id`` say who started it and from which live
session (whose clients see its progress).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, JSONType, utcnow

if TYPE_CHECKING:
    from storage.models.tenancy import Tenant

#: Lifecycle of a compose job.
COMPOSE_STATUSES = ("pending", "running", "completed", "failed")
#: The agent a compose job is at; ``done`` after the judge.
COMPOSE_STAGES = ("agent1", "agent2", "agent3", "done")


class AgentComposeRun(Base):
    """A background compose job with its stage and progress (0–100)."""

    __tablename__ = "agent_compose_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(default="pending", server_default="pending")
    stage: Mapped[str] = mapped_column(default="agent1", server_default="agent1")
    progress: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    input_raw: Mapped[str]
    input_goal: Mapped[str | None]
    input_constraints: Mapped[str | None]
    input_output_format: Mapped[str | None]
    model_config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    error: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    finished_at: Mapped[datetime | None]
    # Ours (0007_tenant_scoping): the tenant that started the job.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    # Ours (0015_compose_jobs): who started it, from where, and who runs it now.
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    session_id: Mapped[str | None] = mapped_column(
        ForeignKey("collaboration_sessions.id", ondelete="SET NULL")
    )
    stage_outputs: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    lease_owner: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    tenant: Mapped[Tenant | None] = relationship()
    result: Mapped[AgentComposeResult | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')", name="valid_status"
        ),
        CheckConstraint("stage IN ('agent1', 'agent2', 'agent3', 'done')", name="valid_stage"),
        CheckConstraint("progress >= 0 AND progress <= 100", name="valid_progress"),
        Index("idx_compose_runs_tenant", "tenant_id"),
        CheckConstraint("attempts >= 0", name="valid_attempts"),
        # The claim query: pending jobs, and running ones whose lease ran out.
        Index("idx_compose_runs_claim", "status", "lease_expires_at"),
        Index("idx_compose_runs_tenant_created", "tenant_id", "created_at"),
    )


class AgentComposeResult(Base):
    """The three agents' JSON outputs for one compose job (at most one per job)."""

    __tablename__ = "agent_compose_results"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("agent_compose_runs.id", ondelete="CASCADE"), unique=True
    )
    agent1_json: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    agent2_json: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    agent3_json: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

    run: Mapped[AgentComposeRun] = relationship(back_populates="result")

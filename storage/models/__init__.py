"""Every Prompt Studio table as a typed SQLAlchemy model, one module per area.

Importing this package registers all tables on :data:`storage.base.Base.metadata`.
"""

from storage.models.cache import CacheConfig, CacheStatistics, CacheTag, SemanticCache
from storage.models.collaboration import (
    MEMBER_ROLES,
    CollaborationSession,
    DocumentUpdate,
    EditHistory,
    SessionMember,
)
from storage.models.compose import (
    COMPOSE_STAGES,
    COMPOSE_STATUSES,
    AgentComposeResult,
    AgentComposeRun,
)
from storage.models.core import Run, RunRating, Technique, Template
from storage.models.marketplace import MARKETPLACE_STATUSES, MarketplacePrompt
from storage.models.prompts import Prompt, PromptLabel, PromptLabelEvent, PromptVersion
from storage.models.tenancy import LoginSession, Tenant, User

__all__ = [
    "COMPOSE_STAGES",
    "COMPOSE_STATUSES",
    "MARKETPLACE_STATUSES",
    "MEMBER_ROLES",
    "AgentComposeResult",
    "AgentComposeRun",
    "CacheConfig",
    "CacheStatistics",
    "CacheTag",
    "CollaborationSession",
    "DocumentUpdate",
    "EditHistory",
    "LoginSession",
    "MarketplacePrompt",
    "Prompt",
    "PromptLabel",
    "PromptLabelEvent",
    "PromptVersion",
    "Run",
    "RunRating",
    "SemanticCache",
    "SessionMember",
    "Technique",
    "Template",
    "Tenant",
    "User",
]

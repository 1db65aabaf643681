"""Agents' access through the gateway: tokens, policies and tool pinning (`AgentAccess`), shared by
the CLI and the dashboard; the gateway face (`gateway/`) enforces them."""

from core.access.policy import ANNOTATIONS, Policy, PolicyRule, annotation_hint
from core.access.service import AgentAccess, ToolReview
from core.access.tokens import TOKEN_PREFIX, IssuedToken, hash_token

__all__ = [
    "ANNOTATIONS",
    "TOKEN_PREFIX",
    "AgentAccess",
    "IssuedToken",
    "Policy",
    "PolicyRule",
    "ToolReview",
    "annotation_hint",
    "hash_token",
]

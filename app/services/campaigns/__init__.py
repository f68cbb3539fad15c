"""Campaigns: one measurement on one questionnaire version.

- `lifecycle`: creation, reading, the state machine and its edit rules, publishing;
- `strata`: the strata, their targets (the allocation) and the fieldwork progress.

Everything is re-exported here, so `from app.services import campaigns` keeps working.
"""

from __future__ import annotations

from app.services.campaigns.lifecycle import (
    EDITABLE,
    S,
    campaign_scope,
    create_campaign,
    get_campaign,
    list_campaigns,
    public,
    publish,
    publish_once,
    require_state,
    transition,
    update_campaign,
)
from app.services.campaigns.strata import (
    allocate_targets,
    list_strata,
    progress,
    replace_strata,
    stratum_public,
)

__all__ = [
    "EDITABLE",
    "S",
    "allocate_targets",
    "campaign_scope",
    "create_campaign",
    "get_campaign",
    "list_campaigns",
    "list_strata",
    "progress",
    "public",
    "publish",
    "publish_once",
    "replace_strata",
    "require_state",
    "stratum_public",
    "transition",
    "update_campaign",
]

"""The two workspace roles, as Django groups (created by a migration), and what each may do.

A *CSM* reads every account, logs touches on any account, and edits the success plans and alerts of
the accounts they own. A *CS leader* does everything, and configures the product in the admin. A
superuser counts as a leader; a user in neither group has no access to the workspace.
"""

from enum import StrEnum

CSM_GROUP = "CSM"
LEADER_GROUP = "CS leader"


class Role(StrEnum):
    CSM = "csm"
    LEADER = "leader"


def role_of(user) -> Role | None:
    """The user's workspace role, or None. Reads the groups once per request (cached on the user)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.LEADER
    cached = getattr(user, "_csm_role", False)
    if cached is not False:
        return cached
    groups = set(user.groups.values_list("name", flat=True))
    role = Role.LEADER if LEADER_GROUP in groups else Role.CSM if CSM_GROUP in groups else None
    user._csm_role = role
    return role


def is_leader(user) -> bool:
    return role_of(user) == Role.LEADER


def can_edit_account(user, owner_id: int | None) -> bool:
    """Whether `user` may edit the plans and alerts of an account owned by `owner_id`."""
    role = role_of(user)
    return role == Role.LEADER or (role == Role.CSM and owner_id is not None and owner_id == user.pk)

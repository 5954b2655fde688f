"""Who is asking, and which ESCOs they may see.

Every root query and loader filters by `Viewer.esco_scope`, so tenancy is decided in
one place; row-level security in PostgreSQL applies the same scope again.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Viewer:
    role: str
    sub: str
    # None: every ESCO (admins). Otherwise the ESCO ids in scope.
    esco_ids: frozenset[uuid.UUID] | None = None
    customer_id: uuid.UUID | None = None
    # A partner key's scopes (`read`, `usage:write`, `payments:write`).
    scopes: frozenset[str] = frozenset()
    # The platform itself (CLI jobs, the demo seed): audited as `system`.
    system: bool = False
    # Signed in at an identity provider: its issuer and the verified e-mail it vouched
    # for (None for the server's own tokens and API keys).
    issuer: str | None = None
    email: str | None = None

    @functools.cached_property
    def actor(self) -> str:  # asked for several times a request (rate limit, audit)
        if self.system:
            return "system"
        if self.role == "customer" and self.customer_id is not None:
            return f"customer:{self.customer_id}"
        if self.role == "partner":
            return f"partner:{self.sub}"
        if self.issuer is not None:
            return f"user:{self.issuer}#{self.sub}"
        return f"user:{self.sub}"

    @property
    def esco_scope(self) -> frozenset[uuid.UUID] | None:
        """The ESCOs the viewer acts in (None: all of them)."""
        return self.esco_ids


# Sees nothing: the viewer of a request that carried no credentials (only GraphiQL's
# page is served to it).
ANONYMOUS = Viewer(role="anonymous", sub="anonymous", esco_ids=frozenset())
SYSTEM = Viewer(role="admin", sub="system", system=True)

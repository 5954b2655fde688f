"""Who is asking, and which ESCOs they may see.

Every root query and loader filters by `Viewer.esco_scope`, so tenancy is decided in
one place. Until authentication lands, development requests run as an implicit admin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Viewer:
    role: str
    sub: str
    # None: every ESCO (admins). Otherwise the ESCO ids in scope.
    esco_ids: frozenset[uuid.UUID] | None = None
    customer_id: uuid.UUID | None = None
    # The platform itself (CLI jobs, the demo seed): audited as `system`.
    system: bool = False

    @property
    def actor(self) -> str:
        if self.system:
            return "system"
        if self.role == "customer" and self.customer_id is not None:
            return f"customer:{self.customer_id}"
        if self.role == "partner":
            return f"partner:{self.sub}"
        return f"user:{self.sub}"

    @property
    def esco_scope(self) -> frozenset[uuid.UUID] | None:
        return self.esco_ids


IMPLICIT_ADMIN = Viewer(role="admin", sub="development")
SYSTEM = Viewer(role="admin", sub="system", system=True)

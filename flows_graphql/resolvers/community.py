"""Root queries and mutations over the energy community: regions, ESCOs, sites,
contract terms."""

from __future__ import annotations

from typing import Annotated, cast

import strawberry
from sqlalchemy import select

from ..context import Context
from ..db.models.enums import ContractTermsType, TariffGeneration
from ..fields import Source, declare, projection, root_connection
from ..loaders import community as community_loaders
from ..loaders.community import ESCO_SPEC, REGIONS, TERMS
from ..services import community as service
from ..types.community import ContractTerms, Esco, Region, Site
from ..types.connection import After, Before, Connection, First, Last
from ..types.errors import UserError
from ..types.node import parse_id
from .mutation import run

Info = strawberry.Info[Context, None]


@strawberry.type
class CommunityQuery:
    @strawberry.field(description="The 14 GB price-cap regions, by code.")
    async def regions(self, info: Info) -> list[Region]:
        return list(await info.context.db.rows(select(REGIONS).order_by(REGIONS.c.code)))

    @strawberry.field(description="The ESCOs the viewer may see, by code.")
    async def escos(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Esco]:
        page: Connection[Esco] = await root_connection(
            info, ESCO_SPEC, None, [], first=first, after=after, last=last, before=before
        )
        return page

    @strawberry.field(
        description="One ESCO by its code; null when missing or out of scope.",
        # What compiled.py reads: the row EscoByCode finds by the `code` argument.
        metadata=declare(source=Source(community_loaders.EscoByCode, "code")),
    )
    async def esco(
        self, info: Info, code: Annotated[str, strawberry.argument(description="ESCO code.")]
    ) -> Esco | None:
        loader = info.context.loaders.get(community_loaders.EscoByCode, columns=projection(info))
        return cast(Esco | None, await loader.load(code))

    @strawberry.field(description="Every version of every contract terms, by type and title.")
    async def contract_terms(self, info: Info) -> list[ContractTerms]:
        stmt = select(TERMS).order_by(TERMS.c.type, TERMS.c.title, TERMS.c.version)
        return list(await info.context.db.rows(stmt))


# --- mutations ----------------------------------------------------------------------


@strawberry.input(description="A new ESCO. Admins only.")
class CreateEscoInput:
    code: str = strawberry.field(
        description="Unique lower-case slug: 2 to 32 of `a-z`, `0-9`, `_` and `-`."
    )
    name: str = strawberry.field(description="Display name.")
    region_code: str = strawberry.field(description="Its price-cap region, e.g. `south_west`.")
    app_url: str | None = strawberry.field(
        default=None,
        description="http(s) URL of its customer app (no query or fragment; trailing `/` "
        "dropped); invite links are `<appUrl>/invite/<token>`.",
    )
    tariff_generation: TariffGeneration = strawberry.field(
        default=TariffGeneration.AUTO,
        description="Whether a new quarter's benchmark generates its tariffs (default AUTO).",
    )


@strawberry.type(description="The result of createEsco.")
class CreateEscoPayload:
    esco: Esco | None = strawberry.field(description="The new ESCO.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Changes to an ESCO; fields left out are kept.")
class UpdateEscoInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    name: strawberry.Maybe[str | None] = strawberry.field(description="Display name.")
    app_url: strawberry.Maybe[str | None] = strawberry.field(
        description="http(s) URL of its customer app; null clears it."
    )
    tariff_generation: strawberry.Maybe[TariffGeneration | None] = strawberry.field(
        description="AUTO or FROZEN."
    )
    region_code: strawberry.Maybe[str | None] = strawberry.field(
        description="Its price-cap region; tariffs generated from then on follow its benchmark.",
    )


@strawberry.type(description="The result of updateEsco.")
class UpdateEscoPayload:
    esco: Esco | None = strawberry.field(description="The ESCO as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A new site of an ESCO.")
class CreateSiteInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    code: str = strawberry.field(description="Code, unique within the ESCO.")
    name: str = strawberry.field(description="Display name.")


@strawberry.type(description="The result of createSite.")
class CreateSitePayload:
    site: Site | None = strawberry.field(description="The new site.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A new version of contract terms. Admins only.")
class CreateContractTermsInput:
    type: ContractTermsType = strawberry.field(description="What the terms cover.")
    title: str = strawberry.field(description="Title.")
    version: int = strawberry.field(description="Version, from 1; unique with type and title.")
    summary: str | None = strawberry.field(default=None, description="Plain-language summary.")
    document_url: str | None = strawberry.field(
        default=None, description="http(s) URL of the full document."
    )


@strawberry.type(description="The result of createContractTerms.")
class CreateContractTermsPayload:
    contract_terms: ContractTerms | None = strawberry.field(description="The new terms.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Let an ESCO open accounts under these contract terms.")
class AllowContractTermsInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    contract_terms_id: strawberry.ID = strawberry.field(
        description="The contract terms (global id or uuid)."
    )


@strawberry.type(description="The result of allowContractTerms.")
class AllowContractTermsPayload:
    esco: Esco | None = strawberry.field(description="The ESCO.")
    contract_terms: ContractTerms | None = strawberry.field(description="The terms it may use.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type
class Mutations:
    @strawberry.mutation(description="Create an ESCO (a tenant). Admins only.")
    async def create_esco(
        self,
        info: Info,
        input: Annotated[
            CreateEscoInput,
            strawberry.argument(
                description="The new ESCO's code, name, region, app URL and tariff generation."
            ),
        ],
    ) -> CreateEscoPayload:
        row, errors = await run(
            info,
            lambda tx: service.create_esco(
                tx,
                input.code,
                input.name,
                input.region_code,
                input.app_url,
                input.tariff_generation,
            ),
        )
        return CreateEscoPayload(esco=row, user_errors=errors)

    @strawberry.mutation(description="Change an ESCO's name, app URL, tariff generation or region.")
    async def update_esco(
        self,
        info: Info,
        input: Annotated[
            UpdateEscoInput,
            strawberry.argument(
                description="The ESCO and the fields to change; fields left out are kept."
            ),
        ],
    ) -> UpdateEscoPayload:
        row, errors = await run(
            info,
            lambda tx: service.update_esco(
                tx,
                parse_id(input.esco_id, "Esco"),
                name=input.name,
                app_url=input.app_url,
                tariff_generation=input.tariff_generation,
                region_code=input.region_code,
            ),
        )
        return UpdateEscoPayload(esco=row, user_errors=errors)

    @strawberry.mutation(description="Create a site of an ESCO.")
    async def create_site(
        self,
        info: Info,
        input: Annotated[
            CreateSiteInput,
            strawberry.argument(description="The ESCO, and the new site's code and name."),
        ],
    ) -> CreateSitePayload:
        row, errors = await run(
            info,
            lambda tx: service.create_site(
                tx, parse_id(input.esco_id, "Esco"), input.code, input.name
            ),
        )
        return CreateSitePayload(site=row, user_errors=errors)

    @strawberry.mutation(description="Create a version of contract terms. Admins only.")
    async def create_contract_terms(
        self,
        info: Info,
        input: Annotated[
            CreateContractTermsInput,
            strawberry.argument(
                description="The new version's type, title, number, summary and document."
            ),
        ],
    ) -> CreateContractTermsPayload:
        row, errors = await run(
            info,
            lambda tx: service.create_contract_terms(
                tx, input.type, input.title, input.version, input.summary, input.document_url
            ),
        )
        return CreateContractTermsPayload(contract_terms=row, user_errors=errors)

    @strawberry.mutation(
        description="Allow an ESCO to use contract terms on its accounts; allowing them "
        "again changes nothing."
    )
    async def allow_contract_terms(
        self,
        info: Info,
        input: Annotated[
            AllowContractTermsInput,
            strawberry.argument(
                description="The ESCO and the contract terms it may use from now on."
            ),
        ],
    ) -> AllowContractTermsPayload:
        result, errors = await run(
            info,
            lambda tx: service.allow_contract_terms(
                tx,
                parse_id(input.esco_id, "Esco"),
                parse_id(input.contract_terms_id, "ContractTerms"),
            ),
        )
        esco, terms = result if result is not None else (None, None)
        return AllowContractTermsPayload(esco=esco, contract_terms=terms, user_errors=errors)

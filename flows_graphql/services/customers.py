"""Customer and account writes: customers, accounts, the customer ↔ account links
(owners and occupiers) and invites to the ESCO's customer app.

Every function validates its whole input before writing, refuses bad input with
`Rejected` (out-of-scope objects look exactly like missing ones: NOT_FOUND), writes
with Core statements, records the audit trail (`customer_events` for customers and
invites; `account_events` and `account_audit_logs` for accounts and their links) and
returns the written database rows. The caller runs it in one transaction.

Rows that a decision depends on are locked (`FOR UPDATE`): the customer for its own
changes, the property when opening an account, the account when changing its links,
the invite when accepting it. The database constraints (unique e-mail per ESCO, one
active account per property, the occupancy exclusion constraint) stay the backstop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from strawberry import Maybe

from ..db.models import (
    Account,
    ContractTerms,
    ContractTermsEsco,
    Customer,
    CustomerAccount,
    CustomerInvite,
    Esco,
    MonthlyCosts,
    MonthlyUsage,
    Property,
    table_of,
)
from ..db.models.enums import (
    AccountEventType,
    AccountStatus,
    CustomerAccountRole,
    CustomerStatus,
)
from . import identity, inputs
from .problems import ErrorCode, Problems, check_window, reject, require_window
from .scope import find_esco
from .tx import Row, Tx, changed

CUSTOMERS = table_of(Customer)
ACCOUNTS = table_of(Account)
LINKS = table_of(CustomerAccount)
INVITES = table_of(CustomerInvite)
ESCOS = table_of(Esco)
PROPERTIES = table_of(Property)
TERMS = table_of(ContractTerms)
TERMS_ESCO = table_of(ContractTermsEsco)
COSTS = table_of(MonthlyCosts)
USAGE = table_of(MonthlyUsage)

STARTED = {
    CustomerAccountRole.OCCUPIER: AccountEventType.OCCUPANCY_STARTED,
    CustomerAccountRole.OWNER: AccountEventType.OWNER_ADDED,
}
ENDED = {
    CustomerAccountRole.OCCUPIER: AccountEventType.OCCUPANCY_ENDED,
    CustomerAccountRole.OWNER: AccountEventType.OWNER_REMOVED,
}

OPERATORS = ("admin", "operator")


# --- shared checks -----------------------------------------------------------------


async def _email_taken(
    tx: Tx, esco_id: uuid.UUID, email: str, other_than: uuid.UUID | None = None
) -> bool:
    stmt = select(CUSTOMERS.c.id).where(
        CUSTOMERS.c.esco_id == esco_id, func.lower(CUSTOMERS.c.email) == email
    )
    if other_than is not None:
        stmt = stmt.where(CUSTOMERS.c.id != other_than)
    return await tx.conn.scalar(stmt.limit(1)) is not None


async def _customer(
    tx: Tx, customer_id: uuid.UUID | None, field: str = "customerId", *, lock: bool = False
) -> Row:
    return await tx.visible(
        CUSTOMERS, customer_id, field, "customer", lock="update" if lock else None
    )


def _link_key(link: Row) -> dict[str, Any]:
    return {"customerId": link.customer_id, "role": link.role, "startDate": link.start_date}


def _link_notes(link: Row, end_date: date | None = None, why: str | None = None) -> str:
    span = f"from {link.start_date}" if end_date is None else f"{link.start_date} to {end_date}"
    notes = f"Customer {link.customer_id}: {link.role.value} {span}"
    return f"{notes} ({why})" if why else notes


# --- customers -----------------------------------------------------------------------


async def create_customer(
    tx: Tx,
    esco_id: uuid.UUID | None,
    email: str,
    full_name: str | None,
    status: CustomerStatus,
) -> Row:
    tx.require_role(*OPERATORS)
    problems = Problems()
    esco_row = await find_esco(tx, problems, esco_id)
    esco = esco_row.id if esco_row is not None else None
    email_problems = Problems()
    stored_email = inputs.email(email_problems, "email", email)
    problems.items += email_problems.items
    if esco is not None and not email_problems and await _email_taken(tx, esco, stored_email):
        problems.add("email", ErrorCode.DUPLICATE, "This ESCO already has a customer with it.")
    name = inputs.optional_text(problems, "fullName", full_name)
    problems.raise_if_any()

    values = {"email": stored_email, "full_name": name, "status": status}
    row = (
        await tx.conn.execute(insert(Customer).values(esco_id=esco, **values).returning(CUSTOMERS))
    ).one()
    await tx.customer_event(
        row.esco_id,
        row.id,
        "created",
        {"email": row.email, "fullName": row.full_name, "status": row.status},
    )
    return row


async def update_customer(
    tx: Tx,
    customer_id: uuid.UUID | None,
    email: Maybe[str | None] = None,
    full_name: Maybe[str | None] = None,
) -> Row:
    """Change the given fields; left-out fields (None) stay. Changing nothing writes
    nothing."""
    tx.require_role(*OPERATORS)
    customer = await _customer(tx, customer_id, lock=True)
    problems = Problems()
    values: dict[str, Any] = {}
    if email is not None and email.value is None:
        problems.add("email", ErrorCode.INVALID, "A customer must have an e-mail address.")
    elif email is not None and email.value is not None:
        email_problems = Problems()
        values["email"] = inputs.email(email_problems, "email", email.value)
        problems.items += email_problems.items
        if (
            not email_problems
            and values["email"] != customer.email.lower()
            and await _email_taken(tx, customer.esco_id, values["email"], customer.id)
        ):
            problems.add("email", ErrorCode.DUPLICATE, "This ESCO already has a customer with it.")
    if full_name is not None:
        values["full_name"] = inputs.optional_text(problems, "fullName", full_name.value)
    problems.raise_if_any()

    before = {k: getattr(customer, k) for k in values}
    diff = changed(before, values)
    if not diff["changed"]:
        return customer
    row = (
        await tx.conn.execute(
            update(CUSTOMERS)
            .where(CUSTOMERS.c.id == customer.id)
            .values(**values)
            .returning(CUSTOMERS)
        )
    ).one()
    await tx.customer_event(row.esco_id, row.id, "updated", _camel_changes(diff))
    return row


def _camel_changes(diff: dict[str, Any]) -> dict[str, Any]:
    names = {"full_name": "fullName"}
    return {"changed": {names.get(k, k): v for k, v in diff["changed"].items()}}


async def set_customer_status(tx: Tx, customer_id: uuid.UUID | None, status: CustomerStatus) -> Row:
    """Setting the status a customer already has is a no-op: no write, no event."""
    tx.require_role(*OPERATORS)
    customer = await _customer(tx, customer_id, lock=True)
    if customer.status == status:
        return customer
    row = (
        await tx.conn.execute(
            update(CUSTOMERS)
            .where(CUSTOMERS.c.id == customer.id)
            .values(status=status)
            .returning(CUSTOMERS)
        )
    ).one()
    await tx.customer_event(
        row.esco_id,
        row.id,
        "status_changed",
        changed({"status": customer.status}, {"status": status}),
    )
    return row


# --- accounts ------------------------------------------------------------------------


async def open_account(
    tx: Tx,
    property_id: uuid.UUID | None,
    opened_on: date,
    contract_terms_id: uuid.UUID | None = None,
) -> Row:
    """A new active account for a property that has none, under `contract_terms_id`
    (None: no terms)."""
    tx.require_role(*OPERATORS)
    problems = Problems()
    check_window(problems, "openedOn", opened_on, tx.today())
    prop = await tx.visible(
        PROPERTIES,
        property_id,
        "propertyId",
        "property",
        lock="update",
        stmt=select(PROPERTIES.c.id, PROPERTIES.c.esco_id),
    )

    terms_id: uuid.UUID | None = None
    if contract_terms_id is not None:
        found = await tx.conn.scalar(select(TERMS.c.id).where(TERMS.c.id == contract_terms_id))
        if found is None:
            problems.add("contractTermsId", ErrorCode.NOT_FOUND, "No contract terms with this id.")
        else:
            allowed = await tx.conn.scalar(
                select(TERMS_ESCO.c.contract_terms_id).where(
                    TERMS_ESCO.c.esco_id == prop.esco_id,
                    TERMS_ESCO.c.contract_terms_id == found,
                )
            )
            if allowed is None:
                problems.add(
                    "contractTermsId",
                    ErrorCode.TERMS_NOT_ALLOWED,
                    "These contract terms are not allowed for the property's ESCO.",
                )
            terms_id = found

    history = (
        await tx.conn.execute(
            select(
                func.count().filter(ACCOUNTS.c.status == AccountStatus.ACTIVE).label("active"),
                func.max(ACCOUNTS.c.closed_on).label("last_closed_on"),
            ).where(ACCOUNTS.c.property_id == prop.id, ACCOUNTS.c.esco_id == prop.esco_id)
        )
    ).one()
    if history.active:
        problems.add(
            "propertyId",
            ErrorCode.DUPLICATE,
            "The property already has an active account; close it first.",
        )
    elif history.last_closed_on is not None and opened_on <= history.last_closed_on:
        problems.add(
            "openedOn",
            ErrorCode.INVALID,
            f"Must be after {history.last_closed_on}, the closing day of the property's "
            "previous account.",
        )
    problems.raise_if_any()

    row = (
        await tx.conn.execute(
            insert(Account)
            .values(
                esco_id=prop.esco_id,
                property_id=prop.id,
                contract_terms_id=terms_id,
                opened_on=opened_on,
            )
            .returning(ACCOUNTS)
        )
    ).one()
    await tx.account_event(row.esco_id, row.id, AccountEventType.OPENED)
    await tx.account_audit(
        row.esco_id,
        row.id,
        "openAccount",
        changed(
            {},
            {
                "accountNumber": row.account_number,
                "propertyId": row.property_id,
                "status": row.status,
                "contractTermsId": row.contract_terms_id,
                "openedOn": row.opened_on,
            },
        ),
    )
    return row


async def close_account(tx: Tx, account_id: uuid.UUID | None, closed_on: date) -> Row:
    """Close an account on `closed_on` (its last open day, not in the future) and end
    its current links on that day."""
    tx.require_role(*OPERATORS)
    account = await tx.visible(ACCOUNTS, account_id, "accountId", "account", lock="update")
    if account.status == AccountStatus.CLOSED:
        raise reject("accountId", ErrorCode.INVALID, "The account is already closed.")
    problems = Problems()
    if closed_on < account.opened_on:
        problems.add(
            "closedOn",
            ErrorCode.INVALID,
            f"Must not be before {account.opened_on}, the opening day.",
        )
    elif closed_on > tx.today():
        problems.add("closedOn", ErrorCode.INVALID, "Must not be in the future.")
    links = (
        await tx.conn.execute(
            select(LINKS)
            .where(LINKS.c.account_id == account.id, LINKS.c.esco_id == account.esco_id)
            .order_by(LINKS.c.start_date, LINKS.c.role, LINKS.c.customer_id)
        )
    ).all()
    if not problems:
        beyond = [
            link
            for link in links
            if link.start_date > closed_on
            or (link.end_date is not None and link.end_date > closed_on)
        ]
        if beyond:
            first = beyond[0]
            problems.add(
                "closedOn",
                ErrorCode.INVALID,
                f"Customer {first.customer_id} is linked as {first.role.value} after this day "
                f"({_link_notes(first, first.end_date)}); end or correct that link first.",
            )
    problems.raise_if_any()

    current = [link for link in links if link.end_date is None]
    if current:
        await tx.conn.execute(
            update(LINKS)
            .where(
                LINKS.c.account_id == account.id,
                LINKS.c.esco_id == account.esco_id,
                LINKS.c.end_date.is_(None),
            )
            .values(end_date=closed_on)
        )
    row = (
        await tx.conn.execute(
            update(ACCOUNTS)
            .where(ACCOUNTS.c.id == account.id)
            .values(status=AccountStatus.CLOSED, closed_on=closed_on)
            .returning(ACCOUNTS)
        )
    ).one()
    await tx.account_event(row.esco_id, row.id, AccountEventType.CLOSED)
    for link in current:
        await tx.account_event(
            row.esco_id,
            row.id,
            ENDED[link.role],
            _link_notes(link, closed_on, "account closed"),
            link.customer_id,
        )
    await tx.account_audit(
        row.esco_id,
        row.id,
        "closeAccount",
        {
            **changed(
                {"status": account.status, "closedOn": account.closed_on},
                {"status": row.status, "closedOn": row.closed_on},
            ),
            "endedLinks": [{**_link_key(link), "endDate": closed_on} for link in current],
        },
    )
    return row


async def update_account(tx: Tx, account_id: uuid.UUID | None, opened_on: date) -> Row:
    """Correct an account's opening day (a mistyped `openedOn` would otherwise lock its
    property: it cannot be closed before it opened, nor a second account opened).
    Allowed while no month between the old and the new day is billed for the
    account's customers, and while the account's links and the property's previous
    account still fit around it."""
    tx.require_role(*OPERATORS)
    problems = Problems()
    check_window(problems, "openedOn", opened_on, tx.today())
    account = await tx.visible(ACCOUNTS, account_id, "accountId", "account", lock="update")
    problems.raise_if_any()
    if opened_on == account.opened_on:
        return account  # nothing to correct
    if account.closed_on is not None and opened_on > account.closed_on:
        problems.add(
            "openedOn", ErrorCode.INVALID, f"Must not be after {account.closed_on}, when it closed."
        )
    previous = await tx.conn.scalar(
        select(func.max(ACCOUNTS.c.closed_on)).where(
            ACCOUNTS.c.property_id == account.property_id,
            ACCOUNTS.c.esco_id == account.esco_id,
            ACCOUNTS.c.id != account.id,
            ACCOUNTS.c.opened_on <= account.opened_on,
        )
    )
    if previous is not None and opened_on <= previous:
        problems.add(
            "openedOn",
            ErrorCode.INVALID,
            f"Must be after {previous}, the closing day of the property's previous account.",
        )
    first_link = await tx.conn.scalar(
        select(func.min(LINKS.c.start_date)).where(
            LINKS.c.account_id == account.id, LINKS.c.esco_id == account.esco_id
        )
    )
    if first_link is not None and opened_on > first_link:
        problems.add(
            "openedOn",
            ErrorCode.INVALID,
            f"Must not be after {first_link}, when a customer's link to it starts; "
            "correct that link first.",
        )
    earlier, later = sorted((opened_on, account.opened_on))
    billed = await tx.conn.scalar(
        select(func.min(COSTS.c.month))
        .select_from(COSTS.join(USAGE, USAGE.c.id == COSTS.c.monthly_usage_id))
        .join(PROPERTIES, PROPERTIES.c.supply_meter_id == USAGE.c.meter_id)
        .where(
            PROPERTIES.c.id == account.property_id,
            COSTS.c.esco_id == account.esco_id,
            # Billing counts an account open on the 1st of a month: the months whose
            # 1st lies between the two days are the ones the correction changes.
            COSTS.c.month >= earlier,
            COSTS.c.month < later,
            COSTS.c.customer_id.in_(
                select(LINKS.c.customer_id).where(LINKS.c.account_id == account.id)
            ),
        )
    )
    if billed is not None:
        problems.add(
            "openedOn",
            ErrorCode.INVALID,
            f"The month of {billed} is already billed for this account; the opening day "
            "can no longer move across it.",
        )
    problems.raise_if_any()
    row = (
        await tx.conn.execute(
            update(ACCOUNTS)
            .where(ACCOUNTS.c.id == account.id)
            .values(opened_on=opened_on)
            .returning(ACCOUNTS)
        )
    ).one()
    await tx.account_audit(
        row.esco_id,
        row.id,
        "updateAccount",
        changed({"openedOn": account.opened_on}, {"openedOn": row.opened_on}),
    )
    return row


# --- customer ↔ account links ----------------------------------------------------------


async def add_customer_to_account(
    tx: Tx,
    customer_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    role: CustomerAccountRole,
    start_date: date,
) -> Row:
    """Link a customer to an active account of their ESCO from `start_date` (open-ended)."""
    tx.require_role(*OPERATORS)
    problems = Problems()
    check_window(problems, "startDate", start_date, tx.today())
    customer = await tx.visible(CUSTOMERS, customer_id, "customerId", "customer", problems=problems)
    if customer is not None and customer.status == CustomerStatus.INACTIVE:
        problems.add(
            "customerId", ErrorCode.INVALID, "The customer is inactive; reactivate them first."
        )
    account = await tx.visible(
        ACCOUNTS,
        account_id,
        "accountId",
        "account",
        problems=problems,
        lock="update",
        # Another ESCO's account is, for this customer, no account at all.
        also=lambda account: customer is None or account.esco_id == customer.esco_id,
    )
    if account is not None and account.status != AccountStatus.ACTIVE:
        problems.add("accountId", ErrorCode.INVALID, "The account is closed.")
    elif account is not None and start_date < account.opened_on:
        problems.add(
            "startDate",
            ErrorCode.INVALID,
            f"Must not be before {account.opened_on}, the day the account opened.",
        )
    problems.raise_if_any()
    assert customer is not None and account is not None

    links = (
        await tx.conn.execute(
            select(LINKS).where(LINKS.c.account_id == account.id, LINKS.c.role == role)
        )
    ).all()

    def overlaps(link: Row) -> bool:  # the new link is [start_date, open end)
        return link.end_date is None or link.end_date >= start_date

    if any(
        link.customer_id == customer.id and (link.start_date == start_date or overlaps(link))
        for link in links
    ):
        problems.add(
            "startDate",
            ErrorCode.DUPLICATE,
            f"The customer is already linked to this account as {role.value} on these dates.",
        )
    elif role == CustomerAccountRole.OCCUPIER and any(overlaps(link) for link in links):
        clash = next(link for link in links if overlaps(link))
        problems.add(
            "startDate",
            ErrorCode.OCCUPANCY_OVERLAP,
            f"Overlaps the occupancy of customer {clash.customer_id} "
            f"({_link_notes(clash, clash.end_date)}).",
        )
    problems.raise_if_any()

    row = (
        await tx.conn.execute(
            insert(CustomerAccount)
            .values(
                customer_id=customer.id,
                account_id=account.id,
                role=role,
                start_date=start_date,
                esco_id=account.esco_id,
            )
            .returning(LINKS)
        )
    ).one()
    await tx.account_event(
        row.esco_id, row.account_id, STARTED[role], _link_notes(row), row.customer_id
    )
    await tx.account_audit(
        row.esco_id,
        row.account_id,
        "addCustomerToAccount",
        {"link": _link_key(row), **changed({}, {"startDate": start_date, "endDate": None})},
    )
    return row


async def end_customer_account(
    tx: Tx,
    customer_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    role: CustomerAccountRole,
    start_date: date | None,
    end_date: date,
) -> Row:
    """End a link on `end_date` (its last day). The link is (customer, account, role,
    start date); without a start date, the customer's current link in that role."""
    tx.require_role(*OPERATORS)
    require_window("endDate", end_date, tx.today())
    customer = await _customer(tx, customer_id)
    account = await tx.visible(
        ACCOUNTS,
        account_id,
        "accountId",
        "account",
        lock="update",
        also=lambda account: account.esco_id == customer.esco_id,
    )
    stmt = select(LINKS).where(
        LINKS.c.customer_id == customer.id,
        LINKS.c.account_id == account.id,
        LINKS.c.role == role,
    )
    if start_date is not None:
        stmt = stmt.where(LINKS.c.start_date == start_date)
    links = (await tx.conn.execute(stmt.order_by(LINKS.c.start_date.desc()))).all()
    if not links:
        field = "startDate" if start_date is not None else "role"
        raise reject(
            field,
            ErrorCode.NOT_FOUND,
            f"The customer has no such {role.value} link to this account.",
        )
    link = next((candidate for candidate in links if candidate.end_date is None), None)
    if link is None:
        raise reject(
            "startDate" if start_date is not None else "role",
            ErrorCode.INVALID,
            f"This link already ended on {links[0].end_date}.",
        )
    if end_date < link.start_date:
        raise reject(
            "endDate", ErrorCode.INVALID, f"Must not be before {link.start_date}, the start date."
        )

    row = (
        await tx.conn.execute(
            update(LINKS)
            .where(
                LINKS.c.customer_id == link.customer_id,
                LINKS.c.account_id == link.account_id,
                LINKS.c.role == link.role,
                LINKS.c.start_date == link.start_date,
            )
            .values(end_date=end_date)
            .returning(LINKS)
        )
    ).one()
    await tx.account_event(
        row.esco_id, row.account_id, ENDED[role], _link_notes(row, end_date), row.customer_id
    )
    await tx.account_audit(
        row.esco_id,
        row.account_id,
        "endCustomerAccount",
        {"link": _link_key(row), **changed({"endDate": None}, {"endDate": end_date})},
    )
    return row


# --- invites -------------------------------------------------------------------------


@dataclass(frozen=True)
class InviteResult:
    invite: Row
    customer: Row
    # The identity provider's sign-in linked by acceptInvite (None otherwise).
    identity: Row | None = None


async def invite_customer(
    tx: Tx, customer_id: uuid.UUID | None, expires_at: datetime | None = None
) -> InviteResult:
    """A new invite to the ESCO's app (earlier invites stay valid until they expire)."""
    tx.require_role(*OPERATORS)
    customer = await _customer(tx, customer_id)
    problems = Problems()
    if customer.status == CustomerStatus.INACTIVE:
        problems.add(
            "customerId", ErrorCode.INVALID, "The customer is inactive; reactivate them first."
        )
    app_url = await tx.conn.scalar(select(ESCOS.c.app_url).where(ESCOS.c.id == customer.esco_id))
    if not app_url:
        problems.add(
            "customerId", ErrorCode.NO_APP_URL, "The customer's ESCO has no app URL to invite to."
        )
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            problems.add("expiresAt", ErrorCode.INVALID, "Must be in the future.")
    problems.raise_if_any()

    assert app_url is not None
    token = await tx.conn.scalar(select(func.gen_random_uuid()))
    values: dict[str, Any] = {
        "token": token,
        "esco_id": customer.esco_id,
        "customer_id": customer.id,
        "invite_url": f"{app_url.rstrip('/')}/invite/{token}",
    }
    if expires_at is not None:
        values["expires_at"] = expires_at
    row = (await tx.conn.execute(insert(CustomerInvite).values(**values).returning(INVITES))).one()
    # The token is a secret: the event says when the invite expires, not its link.
    await tx.customer_event(row.esco_id, row.customer_id, "invited", {"expiresAt": row.expires_at})
    return InviteResult(row, customer)


async def accept_invite(tx: Tx, token: uuid.UUID | None) -> InviteResult:
    """Accept a pending invite. Customers may accept only their own invites; an
    identity provider's sign-in (docs/identity.md) whose verified e-mail is the
    invited customer's is linked to that customer, and accepting the same invite
    again with it changes nothing."""
    tx.require_role(*OPERATORS, "customer", "unlinked")
    with_identity = identity.signs_in_with_provider(tx)
    invite = None
    if token is not None:
        if tx.viewer.role == "unlinked":
            await identity.reach_invite(tx, token)
        invite = (
            await tx.conn.execute(
                select(INVITES, (INVITES.c.expires_at <= func.now()).label("expired"))
                .where(INVITES.c.token == token)
                .with_for_update(of=INVITES)
            )
        ).first()
    if invite is None or not _may_accept(tx, invite):
        raise reject("token", ErrorCode.NOT_FOUND, "No invite with this token.")
    linked = await identity.identity_of_viewer(tx) if with_identity else None
    customer = (
        await tx.conn.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == invite.customer_id))
    ).one()
    if linked is not None and linked.invite_token == invite.token:
        # Accepted before with this identity (a retry): nothing changes. Audited under
        # the customer, since the token itself is a secret.
        await tx.audit("acceptInvite", "customer", customer.id, {"changed": {}}, customer.esco_id)
        return InviteResult(invite, customer, linked)
    if invite.accepted_at is not None:
        raise reject("token", ErrorCode.INVITE_USED, "This invite has already been accepted.")
    if invite.expired:
        raise reject("token", ErrorCode.INVITE_EXPIRED, "This invite has expired.")
    if with_identity:
        identity.check_email(tx, customer)

    row = (
        await tx.conn.execute(
            update(INVITES)
            .where(INVITES.c.token == invite.token)
            .values(accepted_at=func.now())
            .returning(INVITES)
        )
    ).one()
    await tx.customer_event(
        row.esco_id, row.customer_id, "invite_accepted", {"acceptedAt": row.accepted_at}
    )
    if with_identity:
        linked = await identity.link(tx, row, linked)
    return InviteResult(row, customer, linked)


def _may_accept(tx: Tx, invite: Row) -> bool:
    if tx.viewer.role == "unlinked":
        # Holds the invite's secret token (identity.reach_invite found it by that alone).
        return True
    if not tx.may_see(invite.esco_id):
        return False
    if tx.viewer.role == "customer":
        return bool(tx.viewer.customer_id == invite.customer_id)
    return True

"""SQLAlchemy models of every table in docs/domain.md."""

from .audit import AccountAuditLog, AccountEvent, AuditLog
from .auth import API_KEY_SCOPES, ApiKey
from .base import Base, metadata, table_of
from .billing import BillingRun, MonthlyCosts, MonthlySolarCredit, MonthlyUsage, Payment
from .community import ContractTerms, ContractTermsEsco, Esco, Region, Site
from .customers import Account, Customer, CustomerAccount, CustomerEvent, CustomerInvite
from .enums import (
    AccountEventType,
    AccountStatus,
    BillingRunStatus,
    CircuitType,
    ContractTermsType,
    CustomerAccountRole,
    CustomerStatus,
    MeterMode,
    PaymentStatus,
    TariffGeneration,
    UsageSource,
)
from .events import Event
from .identities import CustomerIdentity, StaffGrant
from .metering import Circuit, CircuitMeter, Meter, Property, SolarInstallation
from .supply import PropertySupplyMeter
from .tariffs import BenchmarkTariff, CustomerTariff, MicrogridTariff, SolarCreditTariff
from .webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "API_KEY_SCOPES",
    "Account",
    "AccountAuditLog",
    "AccountEvent",
    "AccountEventType",
    "AccountStatus",
    "ApiKey",
    "AuditLog",
    "Base",
    "BenchmarkTariff",
    "BillingRun",
    "BillingRunStatus",
    "Circuit",
    "CircuitMeter",
    "CircuitType",
    "ContractTerms",
    "ContractTermsEsco",
    "ContractTermsType",
    "Customer",
    "CustomerAccount",
    "CustomerAccountRole",
    "CustomerEvent",
    "CustomerIdentity",
    "CustomerInvite",
    "CustomerStatus",
    "CustomerTariff",
    "Esco",
    "Event",
    "Meter",
    "MeterMode",
    "MicrogridTariff",
    "MonthlyCosts",
    "MonthlySolarCredit",
    "MonthlyUsage",
    "Payment",
    "PaymentStatus",
    "Property",
    "PropertySupplyMeter",
    "Region",
    "Site",
    "SolarCreditTariff",
    "SolarInstallation",
    "StaffGrant",
    "TariffGeneration",
    "UsageSource",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
    "table_of",
]

"""GraphQL documents more than one test module sends."""

from __future__ import annotations

from tests.support.api import TENANT

CREATE_PAYMENT = """
mutation ($input: CreatePaymentInput!) {
  createPayment(input: $input) {
    payment {
      id uuid amountPence currency status description providerReference scheduledAt
      customer { uuid } account { uuid }
    }
    userErrors { field message code }
  }
}
"""

CREATE_PAYMENT_BARE = """
mutation ($input: CreatePaymentInput!) {
  createPayment(input: $input) { payment { uuid amountPence } userErrors { field message code } }
}
"""

UPDATE_PAYMENT_STATUS = """
mutation ($input: UpdatePaymentStatusInput!) {
  updatePaymentStatus(input: $input) {
    payment { uuid status providerReference }
    userErrors { field message code }
  }
}
"""


DASHBOARD = """
query Dashboard($code: String!, $n: Int!, $from: Date!, $to: Date!) {
  esco(code: $code) {
    customers(first: $n) {
      nodes {
        email
        accounts {
          account {
            property {
              supplyMeter {
                circuits { type }
                monthlyUsage(from: $from, to: $to) {
                  month
                  powerKwh
                  costs { total savings microgrid { total } benchmark { total } }
                }
              }
            }
          }
        }
        tariffs(from: $from, to: $to) { unitRate }
        currentTariff { unitRate }
      }
    }
  }
}
"""

# One statement per nesting level (two where a level has two relations), plus TENANT;
# a chain of to-one rows found by their primary keys joins its parent's statement:
#  1. esco(code:)                      escos WHERE code = $1
#  2. Esco.customers                   CustomersByEscoId (one LATERAL page query)
#  3. Customer.accounts                AccountsByCustomerId   (customer_accounts)
#     CustomerAccount.account            LEFT JOIN accounts
#     Account.property                   LEFT JOIN properties
#     Property.supplyMeter               LEFT JOIN meters  (was three more statements)
#  4. Meter.circuits                   CircuitsByMeterId      (circuits JOIN circuit_meter)
#  5. Meter.monthlyUsage               UsageByMeterId(from, to), with each month's costs
#     MonthlyUsage.costs               (read off the usage rows: no statement)
#  6. Customer.tariffs                 TariffsByCustomerId(from, to)
#  7. Customer.currentTariff           TariffInForceByCustomerId(today)
DASHBOARD_STATEMENTS = TENANT + 7

# (a) The operator's dashboard: 50 customers, their accounts, each property's supply
# meter with its circuits and 12 months of usage with costs.
OUR_DASHBOARD = """
query Dashboard($code: String!, $from: Date!, $to: Date!) {
  esco(code: $code) {
    code
    name
    customers(first: 50) {
      nodes {
        id
        email
        fullName
        accounts {
          role
          account {
            accountNumber
            property {
              plot
              supplyMeter {
                serial
                circuits { type }
                monthlyUsage(from: $from, to: $to) {
                  month
                  powerKwh
                  heatKwh
                  costs { total savings }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""

# (b) The customer's app screen: their tariff, a year of costs, their last payments.
OUR_APP = """
query App($id: ID!, $from: Date!, $to: Date!) {
  node(id: $id) {
    ... on Customer {
      email
      fullName
      currentTariff { periodStart discountPercent unitRate standingCharge }
      monthlyCosts(from: $from, to: $to) {
        month
        power
        heat
        standingCharge
        total
        savings
      }
      payments(first: 10) {
        nodes { amountPence currency status description createdAt }
      }
    }
  }
}
"""

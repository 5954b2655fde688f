"""The GraphQL documents of the scenarios: ours, and the same reads in PostGraphile's
generated schema (same nesting, same rows, same order).

PostGraphile names relations over the composite tenant keys `…ByXIdAndEscoId` and,
with the simplify inflector, the forward ones `xEsco`; it has no `savings` (a computed
field of ours), so its dashboard reads `benchmarkTotal` beside `total`, the two
figures `savings` is made of.
"""

from __future__ import annotations

# Our documents live with the tests' documents: tests/test_breadth_first.py and
# tests/test_compiled.py check the walks on exactly the reads this bench measures.
from tests.support.documents import OUR_APP, OUR_DASHBOARD  # noqa: F401

POSTGRAPHILE_DASHBOARD = """
query Dashboard($code: String!, $from: Date!, $to: Date!) {
  escoByCode(code: $code) {
    code
    name
    customersList(first: 50, orderBy: [EMAIL_ASC, ID_ASC]) {
      id
      email
      fullName
      customerAccountsByCustomerIdAndEscoIdList(orderBy: [START_DATE_DESC, ROLE_ASC]) {
        role
        accountEsco {
          accountNumber
          propertyEsco {
            plot
            supplyMeterEsco {
              serial
              circuitMetersByMeterIdAndEscoIdList { circuitEsco { type } }
              monthlyUsagesByMeterIdAndEscoIdList(
                orderBy: MONTH_ASC
                filter: { month: { greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to } }
              ) {
                month
                powerKwh
                heatKwh
                monthlyCostsByMonthlyUsageIdAndEscoIdList { total benchmarkTotal }
              }
            }
          }
        }
      }
    }
  }
}
"""

# (b) One customer's app screen: current tariff, 12 months of costs, last 10 payments.

POSTGRAPHILE_APP = """
query App($id: UUID!, $from: Date!, $to: Date!, $today: Date!) {
  customer(id: $id) {
    email
    fullName
    customerTariffsByCustomerIdAndEscoIdList(
      first: 1
      orderBy: PERIOD_START_DESC
      filter: { periodStart: { lessThanOrEqualTo: $today } }
    ) { periodStart discountPercent unitRate standingCharge }
    monthlyCostsByCustomerIdAndEscoIdList(
      orderBy: [MONTH_ASC, ID_ASC]
      filter: { month: { greaterThanOrEqualTo: $from, lessThanOrEqualTo: $to } }
    ) { month power heat standingCharge total benchmarkTotal }
    paymentsByCustomerIdAndEscoIdList(first: 10, orderBy: [CREATED_AT_DESC, ID_DESC]) {
      amountPence currency status description createdAt
    }
  }
}
"""

# (c) Paging through all of an ESCO's customers.
OUR_CUSTOMER_PAGE = """
query Page($esco: ID!, $after: String) {
  customers(escoId: $esco, first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id email fullName status }
  }
}
"""

# (d) and (e): the mutations.
RUN_BILLING = """
mutation Bill($input: RunBillingInput!) {
  runBilling(input: $input) {
    billingRun {
      id status error customersBilled total skipped { reason } progress { billed total }
    }
    userErrors { field message code }
  }
}
"""

BILLING_RUN = """
query Run($id: ID!) {
  node(id: $id) { ... on BillingRun { status error customersBilled progress { billed total } } }
}
"""

IMPORT_USAGE = """
mutation Import($input: ImportMonthlyUsageInput!) {
  importMonthlyUsage(input: $input) {
    importedCount createdCount updatedCount unchangedCount
    userErrors { field message code }
  }
}
"""

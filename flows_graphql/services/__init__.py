"""Services: each mutation's validation and writes, inside one transaction.

A service reads its inputs, applies the rules (flows_graphql.rules), writes, and
records the audit trail. It raises `Rejected` (user errors) before writing anything
it cannot finish; the transaction then rolls back.
"""

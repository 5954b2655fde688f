"""The business rules of docs/rules.md as plain functions: Decimal in, Decimal out.

No GraphQL, no HTTP, no SQL here: services load the inputs, call these, write results.
"""

"""Benchmarks of the GraphQL API against the raw-SQL floor and PostGraphile (issue 6)."""

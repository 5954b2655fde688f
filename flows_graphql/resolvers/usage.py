"""Usage mutations (recordMonthlyUsage, importMonthlyUsage)."""

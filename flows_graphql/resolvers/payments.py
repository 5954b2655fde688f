"""Payment mutations (createPayment, updatePaymentStatus)."""

"""Top-ups: /recharge and its receipts, codes redeemed there, the payments API and XorPay's webhook."""

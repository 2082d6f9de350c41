"""Money coming in and going back: top-up orders, the XorPay client and its webhook, reconcile,
refunds, and how a top-up may be paid."""

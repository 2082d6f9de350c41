"""A built-in stand-in for XorPay (SPEC 7, "Sandbox"), for development and tests only.

It speaks XorPay's create / query / query2 / refund protocol under /sandbox/xorpay/, and its pay
page (where the QR code points) sends a correctly signed notify over real HTTP, as XorPay would.
The app registers it only when XORPAY_SANDBOX=1, which the configuration refuses in production;
no production code imports it.
"""

from ledger.sandbox.routes import bp

__all__ = ["bp"]

"""The sandbox's orders, refunds and switches, in one JSON file in the app's instance folder.

A file, not memory: under `gunicorn -w N` each worker is its own process, and a query2 or a pay
page served by another worker than the one that created the order must still find it. Every step
reads the file, changes it and writes it back (a new file renamed over the old one) while it holds
an exclusive `flock` on a lock file beside it, so each read-then-write is atomic across processes
and threads (flock locks an open file: two threads of one process exclude each other too). Nothing
to install or run, and no table in the app's database.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

FILENAME = "xorpay-sandbox.json"
MAX_REFUNDS = 50  # XorPay: at most 50 partial refunds per order
KEPT_FOR = 7 * 24 * 3600  # seconds an order is kept (reconcile asks about orders up to 48 hours old)

# What the next refund or notify does instead of the usual, once (see `take_switch`).
SWITCHES = {"refund": ("timeout",), "notify": ("lost",)}


@dataclass(frozen=True)
class SandboxRefund:
    price: str
    created_at: float
    answer: str  # what the shop was told: ok, or timeout (refunded, but the answer came too late)


@dataclass(frozen=True)
class SandboxOrder:
    aoid: str
    order_id: str
    name: str
    pay_type: str
    price: str
    notify_url: str
    more: str
    created_at: float
    expires_at: float
    stored_status: str  # new, payed (notify not acknowledged), success; expire is read from expires_at
    notifies: tuple[str, ...]
    refunds: tuple[SandboxRefund, ...] = ()

    @classmethod
    def of(cls, row: dict[str, Any]) -> SandboxOrder:
        refunds = tuple(SandboxRefund(**r) for r in row["refunds"])
        return cls(**{**row, "notifies": tuple(row["notifies"]), "refunds": refunds})

    @property
    def status(self) -> str:
        """XorPay's status: an unpaid order past its window is `expire`."""
        return "expire" if self.stored_status == "new" and time.time() >= self.expires_at else self.stored_status

    @property
    def refunded(self) -> Decimal:
        return sum((Decimal(r.price) for r in self.refunds), Decimal("0.00"))

    @property
    def expires_in(self) -> int:
        return max(int(self.expires_at - time.time()), 1)


class SandboxStore:
    """One JSON file shared by every process and thread of the app that opens it: {"orders": {aoid:
    order}, "switches": {name: value}}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _state(self, *, write: bool) -> Iterator[dict[str, Any]]:
        """The file's content under its lock (shared to read, exclusive to write); written back
        when `write` and the block ended without an exception."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as lock:  # closing it releases the lock
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            try:
                state = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                state = {"orders": {}, "switches": {}}
            yield state
            if write:
                self._replace(state)

    def _replace(self, state: dict[str, Any]) -> None:
        """Write the new content beside the file, then rename it over: a reader never sees half of it."""
        old = time.time() - KEPT_FOR
        state["orders"] = {aoid: o for aoid, o in state["orders"].items() if o["created_at"] >= old}
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out, ensure_ascii=False)
        os.replace(temporary, self.path)

    # --- orders -------------------------------------------------------------------------------------

    def create(self, fields: dict[str, str], expire: int) -> tuple[str, SandboxOrder | None]:
        """Create an order, or find the same one again. Returns XorPay's status and the order:
        ok; order_payed / order_expire for an order_id paid or expired; order_exist for an
        order_id known with other parameters."""
        wanted = ("name", "pay_type", "price", "notify_url")
        with self._state(write=True) as state:
            existing = _find(state, "order_id", fields["order_id"])
            if existing is not None:
                order = SandboxOrder.of(existing)
                if order.status in ("payed", "success"):
                    return "order_payed", None
                if order.status == "expire":
                    return "order_expire", None
                if any(existing[k] != fields[k] for k in wanted):
                    return "order_exist", None
                return "ok", order
            now = time.time()
            row = {
                "aoid": uuid.uuid4().hex,
                "order_id": fields["order_id"],
                **{k: fields[k] for k in wanted},
                "more": fields.get("more", ""),
                "created_at": now,
                "expires_at": now + expire,
                "stored_status": "new",
                "notifies": [],
                "refunds": [],
            }
            state["orders"][row["aoid"]] = row
            return "ok", SandboxOrder.of(row)

    def by_order_id(self, order_id: str) -> SandboxOrder | None:
        with self._state(write=False) as state:
            row = _find(state, "order_id", order_id)
            return SandboxOrder.of(row) if row else None

    def by_aoid(self, aoid: str) -> SandboxOrder | None:
        with self._state(write=False) as state:
            row = state["orders"].get(aoid)
            return SandboxOrder.of(row) if row else None

    def recent(self, limit: int = 50) -> list[SandboxOrder]:
        with self._state(write=False) as state:
            newest = sorted(state["orders"].values(), key=lambda o: o["created_at"], reverse=True)
            return [SandboxOrder.of(row) for row in newest[:limit]]

    def mark_payed(self, aoid: str) -> tuple[str, SandboxOrder | None]:
        """The buyer pays: `new` becomes `payed` (once). Returns the status before, and the order."""
        with self._state(write=True) as state:
            row = state["orders"].get(aoid)
            if row is None:
                return "not_exist", None
            before = SandboxOrder.of(row).status
            if before == "new":
                row["stored_status"] = "payed"
            return before, SandboxOrder.of(row)

    def record_notify(self, aoid: str, outcome: str, *, acknowledged: bool) -> SandboxOrder:
        """What the shop answered to a notify; a 200 makes the order `success`."""
        with self._state(write=True) as state:
            row = state["orders"][aoid]
            row["notifies"].append(outcome)
            if acknowledged:
                row["stored_status"] = "success"
            return SandboxOrder.of(row)

    # --- refunds ------------------------------------------------------------------------------------

    def refund(self, aoid: str, price: Decimal, *, answer: str = "ok") -> str:
        """Refund `price` of an order, as XorPay does: order_error unless the order is `success`
        (a `payed` order whose notify was not acknowledged cannot be refunded) or after 50 refunds;
        price_error for more than is left. `answer` is what the shop will be told (kept for the page)."""
        with self._state(write=True) as state:
            row = state["orders"].get(aoid)
            order = SandboxOrder.of(row) if row else None
            if order is None or order.status != "success" or len(order.refunds) >= MAX_REFUNDS:
                return "order_error"
            if price > Decimal(order.price) - order.refunded:
                return "price_error"
            row["refunds"].append({"price": f"{price:.2f}", "created_at": time.time(), "answer": answer})
            return "ok"

    # --- switches -----------------------------------------------------------------------------------

    def set_switch(self, name: str, value: str) -> None:
        """Make the next refund (`refund`: `timeout`) or notify (`notify`: `lost`) go wrong; "" clears."""
        assert name in SWITCHES and (value == "" or value in SWITCHES[name])
        with self._state(write=True) as state:
            state["switches"].pop(name, None)
            if value:
                state["switches"][name] = value

    def take_switch(self, name: str) -> str:
        """The switch's value, cleared in the same step: it acts on one call only, whichever process serves it."""
        with self._state(write=True) as state:
            return state["switches"].pop(name, "")

    def switches(self) -> dict[str, str]:
        with self._state(write=False) as state:
            return dict(state["switches"])


def _find(state: dict[str, Any], key: str, value: str) -> dict[str, Any] | None:
    return next((o for o in state["orders"].values() if o[key] == value), None)

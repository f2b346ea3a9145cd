#!/usr/bin/python3
"""A till taking a payment through qrpayd, with Debian's python3-gi (Gio's D-Bus): no pip.

It checks out an order, lets the simulated customer pay (against `qrpayd dev`), follows the
signals until the transaction is 304_SETTLED, refunds part of the payment, checks out a second
order and cancels its attempt, and handles qrpayd's named errors by name.

    qrpayd dev                       # in another terminal; it prints the next line
    export QRPAYD_BUS=unix:path=...  # or `session`, or leave unset for the session bus
    python3 examples/python/till.py
"""

import os
import sys
import uuid

from gi.repository import Gio, GLib

NAME = "org.qrpayd.Pay1"
PATH = "/org/qrpayd/Pay1"
TERMINAL = "org.qrpayd.Pay1.Terminal"
SIMULATOR = "org.qrpayd.Pay1.Simulator"
ERROR_PREFIX = "org.qrpayd.Pay1.Error."


class QrpayError(Exception):
    """A named error reply: `name` is the short name (InvalidArgument, ...)."""

    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name = name


def connect():
    bus = os.environ.get("QRPAYD_BUS", "session")
    if bus in ("session", "system"):
        return Gio.bus_get_sync(Gio.BusType.SESSION if bus == "session" else Gio.BusType.SYSTEM)
    flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
             | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
    return Gio.DBusConnection.new_for_address_sync(bus, flags, None, None)


try:
    BUS = connect()
except GLib.Error as error:
    print(f"cannot reach the bus: {error.message}", file=sys.stderr)
    sys.exit(5)


def call(interface, method, args, signature, reply):
    """One D-Bus call; a qrpayd error reply becomes a QrpayError named as qrpayd names it."""
    try:
        result = BUS.call_sync(NAME, PATH, interface, method, GLib.Variant(signature, args),
                               GLib.VariantType(reply), Gio.DBusCallFlags.NONE, 30_000, None)
    except GLib.Error as error:
        remote = Gio.DBusError.get_remote_error(error) or ""
        Gio.DBusError.strip_remote_error(error)
        if remote.startswith(ERROR_PREFIX):
            raise QrpayError(remote[len(ERROR_PREFIX):], error.message) from None
        raise
    return result.unpack()


def request(**fields):
    """An a{sv} of strings: amounts are decimal strings, never floats."""
    return ({key: GLib.Variant("s", value) for key, value in fields.items()},)


def checkout(order, amount):
    return call(TERMINAL, "Checkout", request(source_id=order, amount=amount),
                "(a{sv})", "(a{sv})")[0]


def follow(sale):
    """Subscribes to the signals of the payment `sale` will hold (filled in after Checkout);
    running the loop then follows it until the transaction settles or the attempt ends."""
    loop = GLib.MainLoop()
    outcome = {"settled": False}

    def on_signal(_conn, _sender, _path, _iface, signal, params):
        if signal == "AttemptChanged":
            attempt, _transaction, status, details = params.unpack()
            if attempt == sale.get("attempt_id"):
                print(f"  AttemptChanged {details['attempt_code']} {status}")
                if status in ("500_FAIL", "501_EXPIRED"):
                    loop.quit()
        elif signal == "TransactionChanged":
            transaction, status, details = params.unpack()
            if transaction == sale.get("transaction_id"):
                print(f"  TransactionChanged {details['transaction_number']} {status}")
                if status in ("304_SETTLED", "505_CANCELLED"):
                    outcome["settled"] = status == "304_SETTLED"
                    loop.quit()

    def on_owner(_conn, _sender, _path, _iface, _signal, params):
        _name, _old, new = params.unpack()
        if not new:
            print("qrpayd left the bus: after it is back, GetTransaction tells where we are")
            loop.quit()

    subscriptions = [
        BUS.signal_subscribe(None, TERMINAL, None, PATH, None, Gio.DBusSignalFlags.NONE,
                             on_signal),
        BUS.signal_subscribe("org.freedesktop.DBus", "org.freedesktop.DBus", "NameOwnerChanged",
                             "/org/freedesktop/DBus", NAME, Gio.DBusSignalFlags.NONE, on_owner),
    ]
    GLib.timeout_add_seconds(60, loop.quit)
    return loop, outcome, subscriptions


def main():
    order = f"py-{uuid.uuid4().hex[:8]}"
    # Subscribed before the call, so that no signal is missed; the loop runs after it.
    sale = {}
    loop, outcome, _subscriptions = follow(sale)
    sale.update(checkout(order, "12500"))
    print(f"Checkout {sale['transaction_number']} {sale['attempt_code']} "
          f"{sale['amount']} {sale['currency']}: show the QR {sale['qr_text'][:24]}...")
    try:
        call(SIMULATOR, "Pay", (sale["attempt_id"], ""), "(ss)", "()")
    except GLib.Error:
        print("no simulator here: waiting for the customer to pay")
    loop.run()
    if not outcome["settled"]:
        print("the payment did not settle")
        return 1
    print("304_SETTLED")

    refund = call(TERMINAL, "Refund",
                  request(attempt_id=sale["attempt_code"], amount="2500",
                          request_id=f"{order}-refund-1"),
                  "(a{sv})", "(a{sv})")[0]
    print(f"Refund {refund['refund_attempt_code']} of {refund['amount']}: {refund['status']}")

    try:
        call(TERMINAL, "Refund", request(attempt_id=sale["attempt_id"], amount="999999"),
             "(a{sv})", "(a{sv})")
    except QrpayError as error:
        if error.name == "RefundExceedsRemaining":
            print("Refund of 999999 refused, as it must be: RefundExceedsRemaining")
        else:
            raise

    second = checkout(f"{order}-2", "3000")
    cancel = call(TERMINAL, "Cancel", request(attempt_id=second["attempt_id"], reason="customer left"),
                  "(a{sv})", "(a{sv})")[0]
    print(f"Cancel {second['attempt_code']}: transaction {cancel['transaction_status']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except QrpayError as error:
        # What a till does with each name: docs/integrating-a-till.md, "Errors".
        print(f"qrpayd refused: {error}", file=sys.stderr)
        sys.exit(3)
    except GLib.Error as error:
        print(f"cannot reach qrpayd: {error.message}", file=sys.stderr)
        sys.exit(5)

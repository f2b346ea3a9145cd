#!/usr/bin/env bash
# A till taking a payment through qrpayd from the shell, with gdbus (Debian's libglib2.0-bin).
#
# It checks out an order, lets the simulated customer pay (against `qrpayd dev`), follows the
# signals until the transaction is 304_SETTLED, refunds part of the payment, checks out a second
# order and cancels its attempt, and handles qrpayd's named errors by name.
#
#   qrpayd dev                        # in another terminal; it prints the next line
#   export QRPAYD_BUS=unix:path=...   # or `session`, or leave unset for the session bus
#   examples/shell/till.sh
set -euo pipefail

case "${QRPAYD_BUS:-session}" in
    session) bus=(--session) ;;
    system) bus=(--system) ;;
    *) bus=(--address "$QRPAYD_BUS") ;;
esac
target=(--dest org.qrpayd.Pay1 --object-path /org/qrpayd/Pay1)

# call METHOD ARGS...: one call; a named error's short name on stderr and exit 3.
call() {
    local method=$1 out
    shift
    if ! out=$(gdbus call "${bus[@]}" "${target[@]}" --method "$method" "$@" 2>&1); then
        case $out in
            *org.qrpayd.Pay1.Error.*)
                out=${out#*org.qrpayd.Pay1.Error.}
                echo "${out%%:*}" >&2
                return 3 ;;
            *) echo "cannot reach qrpayd: $out" >&2; exit 5 ;;
        esac
    fi
    printf '%s\n' "$out"
}

# field KEY: a string field of the a{sv} reply on stdin (`'key': <'value'>`).
field() { sed -n "s/.*'$1': <'\([^']*\)'>.*/\1/p"; }

work=$(mktemp -d)
trap 'kill "$monitor" 2>/dev/null; rm -rf "$work"' EXIT
signals=$work/signals

# Listen before the call, so that no signal is missed; ready once it names the owner.
gdbus monitor "${bus[@]}" "${target[@]}" >"$signals" &
monitor=$!
# wait_for PATTERN: until a signal line matches (at most 60 s).
wait_for() {
    local _
    for _ in $(seq 300); do
        grep -q -- "$1" "$signals" && return 0
        kill -0 "$monitor" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}
wait_for "owned by"

order="sh-$$-$RANDOM"
sale=$(call org.qrpayd.Pay1.Terminal.Checkout "{'source_id': <'$order'>, 'amount': <'12500'>}")
transaction_id=$(field transaction_id <<<"$sale")
attempt_id=$(field attempt_id <<<"$sale")
attempt_code=$(field attempt_code <<<"$sale")
echo "Checkout $(field transaction_number <<<"$sale") $attempt_code $(field amount <<<"$sale"):" \
    "show the QR $(field qr_text <<<"$sale" | cut -c1-24)..."

if ! call org.qrpayd.Pay1.Simulator.Pay "$attempt_id" "" >/dev/null 2>&1; then
    echo "no simulator here: waiting for the customer to pay"
fi
if ! wait_for "TransactionChanged ('$transaction_id', '304_SETTLED'"; then
    grep -q "NameOwnerChanged\|has no owner" "$signals" && echo "qrpayd left the bus"
    echo "the payment did not settle"
    exit 1
fi
grep -o "\(Attempt\|Transaction\)Changed ('[^']*', \('[^']*', \)\?'[0-9]*_[A-Z]*'" "$signals" |
    sed 's/^/  /'
echo "304_SETTLED"

refund=$(call org.qrpayd.Pay1.Terminal.Refund \
    "{'attempt_id': <'$attempt_code'>, 'amount': <'2500'>, 'request_id': <'$order-refund-1'>}")
echo "Refund $(field refund_attempt_code <<<"$refund") of $(field amount <<<"$refund"):" \
    "$(field status <<<"$refund")"

if error=$(call org.qrpayd.Pay1.Terminal.Refund \
    "{'attempt_id': <'$attempt_id'>, 'amount': <'999999'>}" 2>&1 >/dev/null); then
    echo "a refund of more than was paid went through" >&2
    exit 1
elif [[ $error == RefundExceedsRemaining ]]; then
    echo "Refund of 999999 refused, as it must be: RefundExceedsRemaining"
else
    echo "unexpected: $error" >&2
    exit 3
fi

second=$(call org.qrpayd.Pay1.Terminal.Checkout "{'source_id': <'$order-2'>, 'amount': <'3000'>}")
cancel=$(call org.qrpayd.Pay1.Terminal.Cancel \
    "{'attempt_id': <'$(field attempt_id <<<"$second")'>, 'reason': <'customer left'>}")
echo "Cancel $(field attempt_code <<<"$second"): transaction $(field transaction_status <<<"$cancel")"

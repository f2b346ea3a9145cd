#!/usr/bin/env node
// A till taking a payment through qrpayd with the dbus-next package.
//
// It checks out an order, lets the simulated customer pay (against `qrpayd dev`), follows the
// signals until the transaction is 304_SETTLED, refunds part of the payment, checks out a
// second order and cancels its attempt, and handles qrpayd's named errors by name.
//
//   qrpayd dev                        # in another terminal; it prints the next line
//   export QRPAYD_BUS=unix:path=...   # or `session`, or leave unset for the session bus
//   npm ci && node till.js
'use strict';

const crypto = require('crypto');
const dbus = require('dbus-next');
const { Variant } = dbus;

const NAME = 'org.qrpayd.Pay1';
const PATH = '/org/qrpayd/Pay1';
const ERROR_PREFIX = 'org.qrpayd.Pay1.Error.';

function connect() {
  const bus = process.env.QRPAYD_BUS || 'session';
  if (bus === 'system') return dbus.systemBus();
  if (bus === 'session') return dbus.sessionBus();
  return dbus.sessionBus({ busAddress: bus });
}

// An a{sv} of strings: amounts are decimal strings, never floats.
function request(fields) {
  const map = {};
  for (const [key, value] of Object.entries(fields)) map[key] = new Variant('s', value);
  return map;
}

// The plain values of an a{sv} reply.
function plain(reply) {
  const values = {};
  for (const [key, variant] of Object.entries(reply)) values[key] = variant.value;
  return values;
}

// qrpayd's short error name (`RefundExceedsRemaining`), or null for any other failure.
function errorName(error) {
  return error instanceof dbus.DBusError && error.type.startsWith(ERROR_PREFIX)
    ? error.type.slice(ERROR_PREFIX.length)
    : null;
}

async function main() {
  const bus = connect();
  const object = await bus.getProxyObject(NAME, PATH);
  const terminal = object.getInterface('org.qrpayd.Pay1.Terminal');
  const order = `js-${crypto.randomBytes(4).toString('hex')}`;

  // Listen before the call, so that no signal is missed.
  const sale = {};
  const ended = new Promise((resolve) => {
    terminal.on('AttemptChanged', (attemptId, _transactionId, status, details) => {
      if (attemptId !== sale.attempt_id) return;
      console.log(`  AttemptChanged ${details.attempt_code.value} ${status}`);
      if (status === '500_FAIL' || status === '501_EXPIRED') resolve(status);
    });
    terminal.on('TransactionChanged', (transactionId, status, details) => {
      if (transactionId !== sale.transaction_id) return;
      console.log(`  TransactionChanged ${details.transaction_number.value} ${status}`);
      if (status === '304_SETTLED' || status === '505_CANCELLED') resolve(status);
    });
    // The daemon leaving the bus (stopped, crashed): GetTransaction tells where we are once
    // it is back.
    bus.getProxyObject('org.freedesktop.DBus', '/org/freedesktop/DBus').then((o) => {
      o.getInterface('org.freedesktop.DBus').on('NameOwnerChanged', (name, _old, owner) => {
        if (name === NAME && !owner) resolve('qrpayd left the bus');
      });
    });
    setTimeout(() => resolve('no end within 60 s'), 60_000).unref();
  });

  Object.assign(sale, plain(await terminal.Checkout(request({ source_id: order, amount: '12500' }))));
  console.log(`Checkout ${sale.transaction_number} ${sale.attempt_code} ${sale.amount} ${sale.currency}: ` +
    `show the QR ${sale.qr_text.slice(0, 24)}...`);
  if (object.interfaces['org.qrpayd.Pay1.Simulator']) {
    await object.getInterface('org.qrpayd.Pay1.Simulator').Pay(sale.attempt_id, '');
  } else {
    console.log('no simulator here: waiting for the customer to pay');
  }
  const end = await ended;
  if (end !== '304_SETTLED') {
    console.log(`the payment did not settle: ${end}`);
    bus.disconnect();
    return 1;
  }
  console.log('304_SETTLED');

  const refund = plain(await terminal.Refund(request({
    attempt_id: sale.attempt_code, amount: '2500', request_id: `${order}-refund-1`,
  })));
  console.log(`Refund ${refund.refund_attempt_code} of ${refund.amount}: ${refund.status}`);

  try {
    await terminal.Refund(request({ attempt_id: sale.attempt_id, amount: '999999' }));
  } catch (error) {
    if (errorName(error) !== 'RefundExceedsRemaining') throw error;
    console.log('Refund of 999999 refused, as it must be: RefundExceedsRemaining');
  }

  const second = plain(await terminal.Checkout(request({ source_id: `${order}-2`, amount: '3000' })));
  const cancel = plain(await terminal.Cancel(request({
    attempt_id: second.attempt_id, reason: 'customer left',
  })));
  console.log(`Cancel ${second.attempt_code}: transaction ${cancel.transaction_status}`);
  bus.disconnect();
  return 0;
}

main().then((code) => { process.exitCode = code; }, (error) => {
  // What a till does with each name: docs/integrating-a-till.md, "Errors".
  const name = errorName(error);
  console.error(name ? `qrpayd refused: ${name}: ${error.text}` : `cannot reach qrpayd: ${error.message}`);
  process.exitCode = name ? 3 : 5;
});

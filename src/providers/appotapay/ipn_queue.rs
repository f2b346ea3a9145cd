//! The queue between the IPN listener and the daemon: the invoice ids of correctly signed IPNs,
//! coalesced so that a burst of IPNs for one order makes one status check, not one each.
//!
//! An invoice id is in the queue at most once. Once it has been handed on, it is held for a
//! quiet period (`IpnLimits::quiet_period`, one second): IPNs for it meanwhile are acknowledged
//! and remembered as one, and handed on once more when the period ends, so that the check made
//! then sees whatever they announced. A burst of any length thus makes at most one check when
//! it starts and one per quiet period after; an IPN is never lost, only merged with others.
//!
//! The listener pushes without ever waiting: a full queue refuses (AppotaPay sends the IPN
//! again later).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::providers::lock;

/// Where an invoice id stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// In the channel, not yet handed on.
    Queued,
    /// Handed on; `again` once another IPN named it since.
    Held { again: bool },
}

type Invoices = Arc<Mutex<HashMap<String, Standing>>>;

/// The listener's end.
#[derive(Clone)]
pub(super) struct IpnQueue {
    invoices: Invoices,
    sender: mpsc::Sender<String>,
}

/// What [`IpnQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Queued {
    /// The invoice id was queued.
    Now,
    /// It was already queued or held: this IPN is merged into that check.
    Already,
    /// The queue is full.
    Full,
    /// Nobody takes the invoice ids any more: the daemon is stopping.
    Closed,
}

/// A queue of at most `capacity` invoice ids, each held for `quiet` once handed on.
pub(super) fn ipn_queue(capacity: usize, quiet: Duration) -> (IpnQueue, IpnNotices) {
    let (sender, receiver) = mpsc::channel(capacity);
    let invoices = Invoices::default();
    (
        IpnQueue {
            invoices: invoices.clone(),
            sender,
        },
        IpnNotices {
            invoices,
            receiver,
            held: VecDeque::new(),
            quiet,
        },
    )
}

impl IpnQueue {
    /// Queues `invoice_id` unless it is already queued or held. Never waits.
    pub fn push(&self, invoice_id: &str) -> Queued {
        let mut invoices = lock(&self.invoices);
        match invoices.get_mut(invoice_id) {
            Some(Standing::Queued) => return Queued::Already,
            Some(Standing::Held { again }) => {
                *again = true;
                return Queued::Already;
            }
            None => {}
        }
        match self.sender.try_send(invoice_id.to_owned()) {
            Ok(()) => {
                invoices.insert(invoice_id.to_owned(), Standing::Queued);
                Queued::Now
            }
            Err(mpsc::error::TrySendError::Full(_)) => Queued::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Closed,
        }
    }
}

/// The daemon's end: the invoices to check.
pub struct IpnNotices {
    invoices: Invoices,
    receiver: mpsc::Receiver<String>,
    /// The invoice ids handed on, with the end of their quiet period, earliest first (every
    /// period is as long, so the order they were handed on in is the order they end in).
    held: VecDeque<(Instant, String)>,
    quiet: Duration,
}

impl IpnNotices {
    /// The next invoice to check with AppotaPay's status API; `None` once the listener is
    /// gone. Keep calling it: it also ends the quiet periods, and hands an invoice on again
    /// when IPNs named it during its period.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            let next_end = self.held.front().map(|(until, _)| *until);
            let received = match next_end {
                Some(until) => tokio::select! {
                    received = self.receiver.recv() => Some(received),
                    () = tokio::time::sleep_until(until) => None,
                },
                None => Some(self.receiver.recv().await),
            };
            if let Some(received) = received {
                return self.hand_on(received?);
            }
            let Some((_, invoice_id)) = self.held.pop_front() else {
                continue;
            };
            let again = {
                let mut invoices = lock(&self.invoices);
                match invoices.get(&invoice_id) {
                    Some(Standing::Held { again: true }) => true,
                    _ => {
                        invoices.remove(&invoice_id);
                        false
                    }
                }
            };
            if again {
                return self.hand_on(invoice_id);
            }
        }
    }

    /// Marks `invoice_id` held for a quiet period from now, and returns it.
    fn hand_on(&mut self, invoice_id: String) -> Option<String> {
        lock(&self.invoices).insert(invoice_id.clone(), Standing::Held { again: false });
        self.held
            .push_back((Instant::now() + self.quiet, invoice_id.clone()));
        Some(invoice_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(50);

    /// `next()`, bounded so that a wrong queue fails instead of hanging.
    async fn next(notices: &mut IpnNotices) -> String {
        tokio::time::timeout(Duration::from_secs(10), notices.next())
            .await
            .expect("an invoice within 10 s")
            .expect("the queue is open")
    }

    #[tokio::test]
    async fn a_burst_for_one_invoice_is_handed_on_once_then_once_more_after_the_quiet_period() {
        let (queue, mut notices) = ipn_queue(8, QUIET);
        assert_eq!(queue.push("INV-1"), Queued::Now);
        assert_eq!(queue.push("INV-1"), Queued::Already);
        assert_eq!(queue.push("INV-2"), Queued::Now);
        let started = Instant::now();
        assert_eq!(next(&mut notices).await, "INV-1");
        // Held: the burst goes on, and is remembered as one.
        for _ in 0..20 {
            assert_eq!(queue.push("INV-1"), Queued::Already);
        }
        assert_eq!(next(&mut notices).await, "INV-2");
        assert_eq!(
            next(&mut notices).await,
            "INV-1",
            "once more, for the burst"
        );
        assert!(
            started.elapsed() >= QUIET,
            "not before its quiet period ended"
        );
        // With no IPN since, nothing more is handed on, and once their periods have ended
        // both are forgotten: a later IPN queues them anew.
        let nothing = tokio::time::timeout(QUIET * 4, notices.next()).await;
        assert!(nothing.is_err(), "handed on without an IPN: {nothing:?}");
        assert!(lock(&queue.invoices).is_empty());
        assert_eq!(queue.push("INV-1"), Queued::Now);
        assert_eq!(next(&mut notices).await, "INV-1");
    }

    #[tokio::test]
    async fn a_full_or_closed_queue_refuses_and_keeps_nothing() {
        let (queue, notices) = ipn_queue(1, QUIET);
        assert_eq!(queue.push("INV-1"), Queued::Now);
        assert_eq!(queue.push("INV-2"), Queued::Full);
        assert!(!lock(&queue.invoices).contains_key("INV-2"));
        drop(notices);
        assert_eq!(queue.push("INV-3"), Queued::Closed);
        assert!(!lock(&queue.invoices).contains_key("INV-3"));
    }
}

//! One supervisor task per attempt that still needs the daemon.
//!
//! For a payment attempt it resolves an invoice creation whose outcome is unknown, polls the
//! live invoice at the provider's interval (checking at once when nudged), backs off on
//! errors (honouring a rate limit's retry-after), expires the attempt at its deadline with a
//! final check, and then closes the invoice at the provider, acting on the answer: closed, paid
//! (the money is recorded), already gone, or not closable at all (AppotaPay), in which case it
//! keeps checking slowly until the provider can no longer take money for it. For a cancel or
//! refund attempt whose outcome is unknown it repeats the call with the same key until the
//! outcome is known. An outcome unknown for longer than `unknown_outcome_alert_after` is
//! reported to the till.
//!
//! Deadlines are kept on tokio's monotonic clock from the moment supervision starts (the wall
//! clock only across a restart), so a step of the system clock never expires a live QR, and a
//! provider's Retry-After never keeps a dead QR on screen past its expiry.
//!
//! Every provider call holds the attempt's lock, so there is never more than one in flight for
//! an attempt, and a `Verify` or `Cancel` from the till waits its turn. A supervisor that
//! panics is restarted a few times; then the daemon reports itself unhealthy, so that systemd's
//! watchdog restarts it.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::time::Instant;
use tracing::Instrument;

use super::checkout::{create_request, load_pair_in, lookup_created};
use super::money::{check_provider_amount, record_money, refund_overpayment};
use super::{Changes, Engine, EngineError, Event, HandleRef, SYSTEM_PROVIDER, Stamp, lock};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Failure, PaymentResult, Timestamp, Transaction,
};
use crate::logging;
use crate::providers::{
    CancelOutcome, CheckResult, Disposition, InvoiceState, Provider, ProviderError,
};
use crate::store::Tx;

/// The longest wait between two tries after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The first wait between two checks of an invoice the provider cannot close; it doubles up to
/// [`SLOW_CHECK_MAX`].
const SLOW_CHECK_FIRST: Duration = Duration::from_secs(30);
const SLOW_CHECK_MAX: Duration = Duration::from_secs(15 * 60);
/// How often a supervisor that panicked is started again before the daemon gives up on itself.
pub(super) const SUPERVISOR_RESTARTS: u32 = 3;

/// What the supervisor should do next for an attempt.
pub(super) enum Step {
    /// Wait this long (or until nudged), then look again.
    Wait(Duration),
    /// Nothing more to do.
    Done,
}

/// What a supervisor knows between its steps, in memory: rebuilt from the store after a
/// restart.
#[derive(Debug, Default)]
pub(super) struct Watch {
    started: bool,
    /// The recorded expiry the deadlines were fixed from.
    expires_at: Option<Timestamp>,
    /// The attempt's expiry, on the monotonic clock.
    deadline: Option<Instant>,
    /// Until when an invoice the provider cannot close is watched for money.
    watch_until: Option<Instant>,
    /// The provider asked not to be called before this (Retry-After).
    not_before: Option<Instant>,
    /// The provider cannot close the invoice: check it slowly until `watch_until`.
    watching: bool,
    slow_checks: u32,
}

impl Watch {
    /// Fixes the deadlines on the monotonic clock from the attempt's recorded expiry, and fixes
    /// them again when that changes (a provider's own expiry, earlier than ours, recorded with
    /// an invoice found by a lookup).
    fn start(&mut self, attempt: &Attempt, wall_now: Timestamp, late_payment_watch: Duration) {
        if self.started && self.expires_at == attempt.expires_at {
            return;
        }
        self.started = true;
        self.expires_at = attempt.expires_at;
        let now = Instant::now();
        if let Some(expires_at) = attempt.expires_at {
            let left = Duration::from_millis(wall_now.millis_until(expires_at));
            let watch_end = expires_at.plus_millis(late_payment_watch.as_millis() as u64);
            let watch_left = Duration::from_millis(wall_now.millis_until(watch_end));
            self.deadline = Some(now + left);
            self.watch_until = Some(now + watch_left);
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
    }

    fn until_deadline(&self, now: Instant) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(now))
    }

    fn rate_limited(&self, now: Instant) -> bool {
        self.not_before.is_some_and(|not_before| now < not_before)
    }
}

/// How an attempt to close an invoice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// Closed: no more money can arrive (any that raced the close is recorded).
    Closed,
    /// The customer paid it; the money is recorded.
    Paid,
    /// The provider cannot close it; it stays payable and is watched.
    StillPayable,
}

impl Engine {
    /// Starts the attempt's supervisor unless one is running.
    pub(super) fn supervise(&self, attempt_id: &str) {
        if !lock(&self.inner.supervised).insert(attempt_id.to_owned()) {
            return;
        }
        let engine = self.clone();
        let attempt_id = attempt_id.to_owned();
        tokio::spawn(async move {
            // Every line the supervisor logs, its provider's included, names the attempt.
            let span = engine.supervisor_span(&attempt_id).await;
            let run = tokio::spawn(
                engine
                    .clone()
                    .run_supervisor(attempt_id.clone())
                    .instrument(span),
            );
            let ended = run.await;
            lock(&engine.inner.supervised).remove(&attempt_id);
            if let Err(error) = ended
                && error.is_panic()
            {
                engine.supervisor_panicked(&attempt_id).await;
            }
        });
    }

    /// The loop of one attempt's supervisor.
    async fn run_supervisor(self, attempt_id: String) {
        let handle = self.handle(&attempt_id);
        let mut watch = Watch::default();
        let mut failures: u32 = 0;
        let mut failing_since: Option<(Instant, Timestamp)> = None;
        loop {
            let wait = match self.step(&attempt_id, &handle, &mut watch).await {
                Ok(Step::Done) => break,
                Ok(Step::Wait(wait)) => {
                    failures = 0;
                    if failing_since.take().is_some() {
                        self.resolved(&attempt_id);
                    }
                    wait
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let (since, since_wall) =
                        *failing_since.get_or_insert((Instant::now(), self.now()));
                    if since.elapsed() >= self.inner.settings.unknown_outcome_alert_after {
                        self.unresolved(&attempt_id, since_wall, &error).await;
                    }
                    if let StepError::Provider(provider_error) = &error
                        && let Disposition::Retry { after: Some(after) } =
                            provider_error.disposition()
                    {
                        watch.not_before = Some(Instant::now() + after);
                    }
                    let wait = self.backoff(&attempt_id, failures, &watch).await;
                    tracing::warn!(
                        %error,
                        retry_in_ms = wait.as_millis() as u64,
                        "attempt step failed; will retry"
                    );
                    wait
                }
            };
            if !wait.is_zero() {
                // Biased: a pending wake-up is always taken here, rather than left to cut the
                // next wait short at random (a seeded simulation replays exactly).
                tokio::select! {
                    biased;
                    _ = handle.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        if failing_since.is_some() {
            self.resolved(&attempt_id);
        }
    }

    /// A supervisor panicked (a bug): it is started again a few times, then the daemon reports
    /// itself unhealthy so that systemd restarts it rather than leave the attempt unwatched.
    async fn supervisor_panicked(&self, attempt_id: &str) {
        let restarts = {
            let mut health = lock(&self.inner.health);
            let count = health.panics.entry(attempt_id.to_owned()).or_insert(0);
            *count += 1;
            let count = *count;
            if count > SUPERVISOR_RESTARTS {
                health.wedged = true;
            }
            count
        };
        if restarts > SUPERVISOR_RESTARTS {
            tracing::error!(
                attempt_id,
                "an attempt's supervisor panicked {restarts} times; the daemon reports itself \
                 unhealthy so that systemd restarts it"
            );
            return;
        }
        tracing::error!(
            attempt_id,
            restarts,
            "an attempt's supervisor panicked; restarting it"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.supervise(attempt_id);
    }

    /// The span of an attempt's supervisor ([`logging::attempt_span`]); only the attempt's id
    /// when the attempt cannot be read now (its first step then fails on the same read).
    async fn supervisor_span(&self, attempt_id: &str) -> tracing::Span {
        match self.load_pair(attempt_id).await {
            Ok((_, attempt)) => {
                logging::attempt_span(&attempt.transaction_id, &attempt.id, &attempt.provider)
            }
            Err(_) => tracing::error_span!(parent: None, "attempt", attempt_id = %attempt_id),
        }
    }

    /// How long to wait after `failures` failed steps: the poll interval doubled per failure,
    /// at most a minute, at least what a rate limit asked for; but never past a live attempt's
    /// deadline, which is processed on time, provider or not.
    async fn backoff(&self, attempt_id: &str, failures: u32, watch: &Watch) -> Duration {
        let attempt = self.load_pair(attempt_id).await.ok().map(|(_, a)| a);
        let interval = attempt
            .as_ref()
            .and_then(|a| self.inner.providers.get(&a.provider))
            .map(|p| p.poll_interval())
            .unwrap_or(Duration::from_secs(5));
        let now = Instant::now();
        let exponent = failures.min(8);
        let mut backoff = interval.saturating_mul(1 << exponent).min(MAX_BACKOFF);
        if let Some(not_before) = watch.not_before {
            backoff = backoff.max(not_before.saturating_duration_since(now));
        }
        if attempt.as_ref().is_some_and(|a| a.status.is_open())
            && let Some(left) = watch.until_deadline(now).filter(|left| !left.is_zero())
        {
            // A live QR is expired on time, whatever the provider does; a floor, so that a
            // step failing for another reason right at expiry cannot spin. Past the deadline
            // (an unknown creation still being looked up) the back-off is the usual one: found
            // by the campaign, a lookup retried every 100 ms while the provider was down.
            backoff = backoff.min(left).max(Duration::from_millis(100));
        }
        backoff
    }

    /// Reports an attempt whose provider call has had no known outcome for too long (once).
    async fn unresolved(&self, attempt_id: &str, since: Timestamp, error: &StepError) {
        let reason = error.to_string();
        let counts = {
            let mut health = lock(&self.inner.health);
            if health.unresolved.contains_key(attempt_id) {
                return;
            }
            health
                .unresolved
                .insert(attempt_id.to_owned(), reason.clone());
            (health.unresolved.len(), health.orphaned.len())
        };
        tracing::error!(
            %reason,
            since = %since.to_rfc3339(),
            "a provider call on this attempt has had no known outcome for too long; still retrying"
        );
        if let Ok((_, attempt)) = self.load_pair(attempt_id).await {
            let publisher = &self.inner.publisher;
            let _ = publisher.events.send(Event::AttemptUnresolved {
                seq: publisher.next_seq(),
                attempt,
                since,
                reason,
            });
        }
        self.publish_health(counts);
    }

    /// The attempt's outcome is known again.
    fn resolved(&self, attempt_id: &str) {
        let counts = {
            let mut health = lock(&self.inner.health);
            if health.unresolved.remove(attempt_id).is_none() {
                return;
            }
            (health.unresolved.len(), health.orphaned.len())
        };
        tracing::info!("the attempt's outcome is known again");
        self.publish_health(counts);
    }

    /// One step of an attempt's supervision, under its lock.
    async fn step(
        &self,
        attempt_id: &str,
        handle: &HandleRef,
        watch: &mut Watch,
    ) -> Result<Step, StepError> {
        let _guard = handle.lock.lock().await;
        let (transaction, attempt) = self.load_pair(attempt_id).await?;
        if attempt.provider != SYSTEM_PROVIDER
            && self.inner.providers.get(&attempt.provider).is_none()
        {
            self.orphaned(&attempt);
            return Ok(Step::Done);
        }
        watch.start(&attempt, self.now(), self.inner.settings.late_payment_watch);
        match attempt.kind {
            AttemptType::Payment => self.step_payment(transaction, attempt, watch).await,
            AttemptType::RefundPayment => self.step_refund(attempt).await,
            AttemptType::CancelPayment => self.step_cancel(attempt).await,
        }
    }

    async fn step_payment(
        &self,
        transaction: Transaction,
        attempt: Attempt,
        watch: &mut Watch,
    ) -> Result<Step, StepError> {
        if attempt.provider == SYSTEM_PROVIDER {
            // Cash waits for the cashier; nothing to poll.
            return Ok(Step::Done);
        }
        let provider = self.provider(&attempt.provider)?;
        let recheck = self.take_recheck(&attempt.id);
        let now = Instant::now();
        match (attempt.status, attempt.invoice_id.clone()) {
            (AttemptStatus::New, _) => {
                // Creation's outcome is unknown: find what the provider made, if anything. A
                // card or account payment is only ever looked up here: its details are gone.
                let request =
                    create_request(&transaction, &attempt, &self.inner.settings.terminal_id);
                match lookup_created(provider.as_ref(), &attempt, &request).await? {
                    Some(invoice) => {
                        // Found: record it, live if there is time left, otherwise expired so
                        // that it gets closed.
                        let target = if watch.expired(now) {
                            AttemptStatus::Expired
                        } else {
                            AttemptStatus::Sent
                        };
                        self.record_invoice(&attempt.id, invoice, Some(target))
                            .await?;
                        Ok(Step::Wait(Duration::ZERO))
                    }
                    None => {
                        let failure = Failure {
                            code: "NOT_CREATED".to_owned(),
                            message: "the provider never created this payment".to_owned(),
                        };
                        self.fail_attempt(&attempt.id, failure).await?;
                        Ok(Step::Done)
                    }
                }
            }
            (AttemptStatus::Sent, Some(invoice_id)) => {
                if watch.expired(now) {
                    self.expire(&attempt, &invoice_id, watch.rate_limited(now))
                        .await?;
                    return Ok(Step::Wait(Duration::ZERO));
                }
                let check = provider.check(&invoice_id).await?;
                let attempt = self.apply_check(&attempt, check).await?;
                if !attempt.status.is_open() {
                    return Ok(Step::Wait(Duration::ZERO));
                }
                let poll = provider.poll_interval();
                Ok(Step::Wait(
                    watch
                        .until_deadline(now)
                        .map_or(poll, |left| poll.min(left)),
                ))
            }
            (_, Some(invoice_id)) if attempt.provider_open => {
                self.close_step(&attempt, &invoice_id, watch).await
            }
            (_, Some(invoice_id)) if recheck => {
                // A closed attempt the provider notified about: check once, and record any
                // money (late money is never dropped).
                match provider.check(&invoice_id).await {
                    Ok(check) => {
                        self.apply_check(&attempt, check).await?;
                        Ok(Step::Done)
                    }
                    Err(error) => {
                        self.recheck_later(&attempt.id);
                        Err(error.into())
                    }
                }
            }
            _ => Ok(Step::Done),
        }
    }

    /// A closed attempt whose invoice may still take money: close it, or, when the provider
    /// cannot close it, check it slowly until the provider can no longer take money for it.
    async fn close_step(
        &self,
        attempt: &Attempt,
        invoice_id: &str,
        watch: &mut Watch,
    ) -> Result<Step, StepError> {
        let now = Instant::now();
        if !watch.watching {
            match self.close_invoice(attempt, invoice_id).await? {
                Closing::Closed | Closing::Paid => return Ok(Step::Done),
                Closing::StillPayable => {
                    watch.watching = true;
                    let until = *watch
                        .watch_until
                        .get_or_insert(now + self.inner.settings.late_payment_watch);
                    tracing::info!(
                        "the provider cannot close this invoice; watching it for late money"
                    );
                    return Ok(Step::Wait(
                        SLOW_CHECK_FIRST.min(until.saturating_duration_since(now)),
                    ));
                }
            }
        }
        let provider = self.provider(&attempt.provider)?;
        let updated = match provider.check(invoice_id).await {
            Ok(check) => self.apply_check(attempt, check).await?,
            Err(ProviderError::NotFound(_)) => {
                self.mark_closed(&attempt.id, "the provider no longer has it")
                    .await?
            }
            Err(error) => return Err(error.into()),
        };
        if !updated.provider_open {
            return Ok(Step::Done);
        }
        let until = watch.watch_until.unwrap_or(now);
        if now >= until {
            self.mark_closed(
                &attempt.id,
                "the provider's window for paying it has passed",
            )
            .await?;
            return Ok(Step::Done);
        }
        watch.slow_checks = watch.slow_checks.saturating_add(1);
        let slow = SLOW_CHECK_FIRST
            .saturating_mul(1 << watch.slow_checks.min(5))
            .min(SLOW_CHECK_MAX);
        Ok(Step::Wait(slow.min(until.saturating_duration_since(now))))
    }

    /// Asks the provider where the attempt's invoice stands and applies the answer (for the
    /// till's `Verify` and for reconciliation, in the attempt's span).
    pub(super) async fn check_now(
        &self,
        attempt: &Attempt,
    ) -> Result<(Attempt, CheckResult), EngineError> {
        let provider = self.provider(&attempt.provider)?;
        let invoice_id = attempt.invoice_id.clone().ok_or_else(|| {
            EngineError::InvalidTransactionStatus(format!(
                "attempt {} has no invoice at the provider yet",
                attempt.code
            ))
        })?;
        let span = logging::attempt_span(&attempt.transaction_id, &attempt.id, &attempt.provider);
        async {
            let check = provider.check(&invoice_id).await?;
            let updated = self.apply_check(attempt, check.clone()).await?;
            Ok((updated, check))
        }
        .instrument(span)
        .await
    }

    /// At the deadline: one final check (a late payment is never lost), unless the provider
    /// asked to wait (the QR must leave the screen on time all the same), then `501_EXPIRED`
    /// (or a partial `302_SUCCESS` if some money came), leaving the invoice to be closed.
    async fn expire(
        &self,
        attempt: &Attempt,
        invoice_id: &str,
        rate_limited: bool,
    ) -> Result<(), EngineError> {
        let provider = self.provider(&attempt.provider)?;
        if rate_limited {
            tracing::info!("expiring without a final check: the provider asked to wait");
        } else {
            match provider.check(invoice_id).await {
                Ok(check) => {
                    let updated = self.apply_check(attempt, check).await?;
                    if !updated.status.is_open() {
                        return Ok(());
                    }
                }
                Err(error) => tracing::warn!(
                    %error,
                    "final check at expiry failed; expiring now and checking again when closing"
                ),
            }
        }
        let id = attempt.id.clone();
        let now = self.now();
        self.write(move |tx, changes| {
            let (transaction, mut attempt) = load_pair_in(tx, &id)?;
            if !attempt.status.is_open() {
                return Ok(());
            }
            if attempt.paid > Decimal::ZERO {
                attempt.transition_to(AttemptStatus::Success, now)?;
            } else {
                attempt.transition_to(AttemptStatus::Expired, now)?;
            }
            tx.update_attempt(&attempt)?;
            tracing::info!(
                attempt_id = %attempt.id,
                transaction_id = %transaction.id,
                provider = %attempt.provider,
                status = %attempt.status,
                "attempt expired"
            );
            changes.attempt(&attempt, &transaction);
            Ok(())
        })
        .await
    }

    /// Closes an invoice that must not be paid any more and acts on the provider's answer:
    /// closed (then checked once more, so money that raced the close is recorded), paid (the
    /// money is checked and recorded), already gone at the provider (closed), or not closable
    /// (watched). Any other failure leaves the invoice open at the provider for a retry.
    pub(super) async fn close_invoice(
        &self,
        attempt: &Attempt,
        invoice_id: &str,
    ) -> Result<Closing, EngineError> {
        let provider = self.provider(&attempt.provider)?;
        let outcome = provider.cancel(invoice_id).await;
        tracing::info!(?outcome, "closing the invoice at the provider");
        match outcome {
            Ok(CancelOutcome::Cancelled) => {
                match provider.check(invoice_id).await {
                    Ok(mut check) => {
                        if matches!(
                            check.state,
                            InvoiceState::Closed | InvoiceState::Failed { .. }
                        ) {
                            // Closed because we just closed it (a gateway may call a cancelled
                            // attempt failed, as MQ-Pay's `500_FAIL`): the caller records why
                            // (cancel or expiry), so only the money in this answer counts.
                            check.state = InvoiceState::Open;
                        }
                        self.apply_check(attempt, check).await?;
                    }
                    Err(ProviderError::NotFound(_)) => {}
                    Err(error) => return Err(error.into()),
                }
                self.mark_closed(&attempt.id, "closed at the provider")
                    .await?;
                Ok(Closing::Closed)
            }
            Ok(CancelOutcome::AlreadyPaid) => {
                let check = provider.check(invoice_id).await?;
                let updated = self.apply_check(attempt, check).await?;
                if updated.provider_open {
                    return Err(EngineError::ProviderUnavailable(
                        "the provider says the invoice was paid but has not reported the payment \
                         yet; checking again"
                            .to_owned(),
                    ));
                }
                Ok(Closing::Paid)
            }
            Ok(CancelOutcome::StillPayable) => {
                let check = provider.check(invoice_id).await?;
                let updated = self.apply_check(attempt, check).await?;
                Ok(match (updated.provider_open, updated.paid > attempt.paid) {
                    (true, _) => Closing::StillPayable,
                    (false, true) => Closing::Paid,
                    (false, false) => Closing::Closed,
                })
            }
            Err(ProviderError::NotFound(_)) => {
                self.mark_closed(&attempt.id, "the provider no longer has it")
                    .await?;
                Ok(Closing::Closed)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Records that the attempt's invoice can take no more money.
    async fn mark_closed(
        &self,
        attempt_id: &str,
        why: &'static str,
    ) -> Result<Attempt, EngineError> {
        let id = attempt_id.to_owned();
        let now = self.now();
        self.write(move |tx, changes| {
            let (transaction, mut attempt) = load_pair_in(tx, &id)?;
            if attempt.provider_open {
                attempt.provider_open = false;
                attempt.updated_at = now;
                tx.update_attempt(&attempt)?;
                changes.attempt(&attempt, &transaction);
                tracing::info!(
                    attempt_id = %attempt.id,
                    provider = %attempt.provider,
                    why,
                    "the invoice can take no more money"
                );
            }
            Ok(attempt)
        })
        .await
    }

    /// Applies a provider's check: records each payment once, moves money onto the attempt and
    /// the transaction, and settles, fails or leaves the attempt live as the answer says; money
    /// the sale did not need is refunded automatically where the provider can.
    pub(super) async fn apply_check(
        &self,
        attempt: &Attempt,
        check: CheckResult,
    ) -> Result<Attempt, EngineError> {
        let id = attempt.id.clone();
        let refunder = self.refunder(&attempt.provider);
        let stamp = self.stamp();
        self.write(move |tx, changes| {
            apply_check_in(tx, changes, &id, &check, refunder.as_deref(), &stamp)
        })
        .await
    }

    /// The provider that refunds overpayments automatically for attempts of `provider`, if the
    /// daemon is set to.
    pub(super) fn refunder(&self, provider: &str) -> Option<Arc<dyn Provider>> {
        if !self.inner.settings.auto_refund_overpayment {
            return None;
        }
        self.inner.providers.get(provider).cloned()
    }

    /// Fails an attempt that is still open, recording why; a closed one is left as it is.
    pub(super) async fn fail_attempt(
        &self,
        attempt_id: &str,
        failure: Failure,
    ) -> Result<Attempt, EngineError> {
        let id = attempt_id.to_owned();
        let now = self.now();
        self.write(move |tx, changes| {
            let (transaction, mut attempt) = load_pair_in(tx, &id)?;
            if attempt.status.is_open() {
                attempt.failure = Some(failure);
                attempt.transition_to(AttemptStatus::Fail, now)?;
                tx.update_attempt(&attempt)?;
                changes.attempt(&attempt, &transaction);
            }
            Ok(attempt)
        })
        .await
    }

    /// Checks the attempt once more at its next step although it is closed (an IPN came).
    pub(super) fn recheck_later(&self, attempt_id: &str) {
        lock(&self.inner.rechecks).insert(attempt_id.to_owned());
    }

    fn take_recheck(&self, attempt_id: &str) -> bool {
        lock(&self.inner.rechecks).remove(attempt_id)
    }

    async fn step_refund(&self, refund: Attempt) -> Result<Step, StepError> {
        if !refund.status.is_open() {
            return Ok(Step::Done);
        }
        match self.send_refund(&refund.id).await? {
            (_, Some(unknown)) => Err(StepError::Provider(unknown)),
            (_, None) => Ok(Step::Done),
        }
    }

    async fn step_cancel(&self, cancel: Attempt) -> Result<Step, StepError> {
        if !cancel.status.is_open() {
            return Ok(Step::Done);
        }
        let Some(parent_id) = cancel.parent_id.clone() else {
            return Ok(Step::Done);
        };
        // The parent's lock is taken inside; this attempt's lock is held by `step`.
        self.finish_cancel(&parent_id, &cancel.id, None).await?;
        Ok(Step::Done)
    }
}

/// A supervisor step failed: a provider error (for back-off) or anything else.
#[derive(Debug, thiserror::Error)]
pub(super) enum StepError {
    #[error(transparent)]
    Provider(ProviderError),
    #[error(transparent)]
    Engine(EngineError),
}

impl From<ProviderError> for StepError {
    fn from(error: ProviderError) -> Self {
        StepError::Provider(error)
    }
}

impl From<EngineError> for StepError {
    fn from(error: EngineError) -> Self {
        StepError::Engine(error)
    }
}

/// The store step of [`Engine::apply_check`].
fn apply_check_in(
    tx: &Tx<'_>,
    changes: &mut Changes,
    attempt_id: &str,
    check: &CheckResult,
    refunder: Option<&dyn Provider>,
    stamp: &Stamp,
) -> Result<Attempt, EngineError> {
    let now = stamp.now;
    let (mut transaction, mut attempt) = load_pair_in(tx, attempt_id)?;
    let before = attempt.clone();
    for payment in &check.payments {
        check_provider_amount(payment, transaction.currency)?;
    }
    let mut received = Decimal::ZERO;
    for payment in &check.payments {
        let result = PaymentResult {
            attempt_id: attempt.id.clone(),
            provider: attempt.provider.clone(),
            provider_payment_id: payment.payment_id.clone(),
            amount: payment.amount,
            paid_at: payment.paid_at,
            observed_at: now,
        };
        if tx.insert_payment_result(&result)? {
            received = super::money::add(received, payment.amount, "the money received")?;
            tracing::info!(
                attempt_id = %attempt.id,
                transaction_id = %transaction.id,
                provider = %attempt.provider,
                payment_id = %payment.payment_id,
                amount = %payment.amount,
                "payment received"
            );
        }
    }
    let excess = record_money(tx, changes, &mut transaction, &mut attempt, received, now)?;

    let fully_paid = attempt.paid >= attempt.amount;
    let has_money = attempt.paid > Decimal::ZERO;
    let target = match (&check.state, attempt.status) {
        // Late money on an attempt that had expired, failed or been cancelled: it succeeds with
        // what it received (the money is never lost, and can be refunded from there).
        (_, AttemptStatus::Expired | AttemptStatus::Fail) if received > Decimal::ZERO => {
            Some(AttemptStatus::Success)
        }
        (_, AttemptStatus::New | AttemptStatus::Sent) if fully_paid => Some(AttemptStatus::Success),
        (
            InvoiceState::Paid | InvoiceState::Closed | InvoiceState::Failed { .. },
            AttemptStatus::New | AttemptStatus::Sent,
        ) if has_money => Some(AttemptStatus::Success),
        (InvoiceState::Failed { code, message }, AttemptStatus::New | AttemptStatus::Sent) => {
            attempt.failure = Some(Failure {
                code: code.clone(),
                message: message.clone(),
            });
            Some(AttemptStatus::Fail)
        }
        (InvoiceState::Closed, AttemptStatus::New | AttemptStatus::Sent) => {
            Some(AttemptStatus::Expired)
        }
        _ => None,
    };
    if let Some(target) = target
        && target != attempt.status
    {
        attempt.transition_to(target, now)?;
    }
    if matches!(
        check.state,
        InvoiceState::Paid | InvoiceState::Closed | InvoiceState::Failed { .. }
    ) || fully_paid
    {
        // Paid in full, closed or failed at the provider: nothing more can arrive.
        attempt.provider_open = false;
    }
    if attempt != before {
        attempt.updated_at = now;
        tx.update_attempt(&attempt)?;
        changes.attempt(&attempt, &transaction);
    }
    refund_overpayment(tx, changes, &transaction, &attempt, excess, refunder, stamp)?;
    Ok(attempt)
}

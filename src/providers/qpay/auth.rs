//! QPay's access and refresh tokens: fetched once, reused by every call, renewed before they
//! expire, and kept in the provider's durable state so that a restarted daemon reuses them.
//!
//! QPay objects to a token request per call, so one token serves every payment: a tokio mutex
//! around the token makes concurrent calls wait for one fetch instead of each making their own.
//! `expires_in` and `refresh_expires_in` are read as provider-notes.md says: a value larger
//! than 120 days in seconds is an absolute Unix timestamp (what QPay sends in practice), a
//! smaller one a duration. The JWT's own `exp` is never read.
//!
//! This module owns the tokens and the client secret. It never logs them, never puts them in an
//! error, and never derives `Debug` on anything that holds one.

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::answers::TokenLifetimes;
use super::client::{CallError, Credentials, Transport, parse_json};
use super::model::TokenReply;
use super::state::StateStore;
use crate::providers::ProviderError;

/// Values above this many seconds (120 days) are timestamps, not durations.
const TIMESTAMP_THRESHOLD: u64 = 120 * 24 * 3600;
/// A token's lifetime when QPay does not say, or says something impossible.
const FALLBACK_LIFETIME: i64 = 30 * 60;
/// Renew this long before expiry at most.
const RENEW_MARGIN: i64 = 60;
/// The provider-state key of the tokens.
const STATE_KEY: &str = "tokens";

/// A pair of tokens and when to renew them (Unix seconds).
#[derive(Clone)]
pub(super) struct Tokens {
    access: SecretString,
    refresh: Option<SecretString>,
    access_expires_at: i64,
    renew_at: i64,
    refresh_expires_at: Option<i64>,
}

/// The persisted form (the tokens must be readable after a restart; the store keeps them in
/// its `provider_state` table). Tied to the host and client they were issued for.
#[derive(Serialize, Deserialize)]
struct StoredTokens {
    issued_for: String,
    access_token: String,
    refresh_token: Option<String>,
    access_expires_at: i64,
    renew_at: i64,
    refresh_expires_at: Option<i64>,
}

#[derive(Default)]
struct Slot {
    loaded: bool,
    tokens: Option<Tokens>,
}

/// Keeps the tokens of one QPay client.
pub(super) struct TokenKeeper {
    client_id: String,
    client_secret: SecretString,
    /// `base_url client_id`: stored tokens issued for anything else are ignored.
    issued_for: String,
    state: StateStore,
    slot: tokio::sync::Mutex<Slot>,
}

impl std::fmt::Debug for TokenKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeeper")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenKeeper {
    pub fn new(
        base_url: &str,
        client_id: &str,
        client_secret: SecretString,
        state: StateStore,
    ) -> TokenKeeper {
        TokenKeeper {
            client_id: client_id.to_owned(),
            client_secret,
            issued_for: format!("{base_url} {client_id}"),
            state,
            slot: tokio::sync::Mutex::new(Slot::default()),
        }
    }

    /// A valid access token: the one held (or stored) while it is fresh, else a renewed one.
    pub async fn access(&self, transport: &Transport) -> Result<SecretString, ProviderError> {
        let mut slot = self.slot.lock().await;
        self.load_once(&mut slot).await;
        let now = unix_now();
        if let Some(tokens) = &slot.tokens
            && now < tokens.renew_at
        {
            return Ok(tokens.access.clone());
        }
        let fresh = self.obtain(transport, slot.tokens.as_ref(), now).await?;
        Ok(self.keep(&mut slot, fresh).await)
    }

    /// After QPay refused `refused`: a renewed token, unless another call renewed it already.
    /// One refresh, or one new token when there is no usable refresh token.
    pub async fn renew_after_refusal(
        &self,
        transport: &Transport,
        refused: &SecretString,
    ) -> Result<SecretString, ProviderError> {
        let mut slot = self.slot.lock().await;
        let now = unix_now();
        if let Some(tokens) = &slot.tokens
            && tokens.access.expose_secret() != refused.expose_secret()
            && now < tokens.renew_at
        {
            return Ok(tokens.access.clone());
        }
        let fresh = self.obtain(transport, slot.tokens.as_ref(), now).await?;
        Ok(self.keep(&mut slot, fresh).await)
    }

    /// Refreshes when a refresh token is usable, else authenticates with the client secret.
    async fn obtain(
        &self,
        transport: &Transport,
        current: Option<&Tokens>,
        now: i64,
    ) -> Result<Tokens, ProviderError> {
        if let Some(tokens) = current
            && let Some(refresh) = &tokens.refresh
            && tokens.refresh_expires_at.is_none_or(|at| now + 30 < at)
        {
            match self.refresh(transport, refresh, now).await {
                Ok(tokens) => return Ok(tokens),
                Err(CallError::Refused(refusal)) if (400..500).contains(&refusal.status) => {
                    tracing::info!(
                        provider = "qpay",
                        status = refusal.status,
                        "QPay refused the refresh token; asking for a new token"
                    );
                }
                Err(error) => return Err(error.into_error(None)),
            }
        }
        self.authenticate(transport, now).await
    }

    async fn authenticate(&self, transport: &Transport, now: i64) -> Result<Tokens, ProviderError> {
        let answer = transport
            .send(
                Method::POST,
                "/v2/auth/token",
                None,
                Credentials::Basic {
                    user: &self.client_id,
                    password: &self.client_secret,
                },
                transport.timeout(),
            )
            .await;
        let bytes = match answer {
            Ok(bytes) => bytes,
            Err(CallError::Refused(refusal)) if matches!(refusal.status, 401 | 403) => {
                tracing::error!(
                    provider = "qpay",
                    status = refusal.status,
                    code = %refusal.code,
                    "QPay refused qrpayd's client_id and client_secret"
                );
                return Err(ProviderError::Unauthorized);
            }
            Err(error) => return Err(error.into_error(None)),
        };
        let tokens = token_answer("/v2/auth/token", &bytes, None, now)?;
        tracing::info!(provider = "qpay", "QPay issued a new access token");
        Ok(tokens)
    }

    async fn refresh(
        &self,
        transport: &Transport,
        refresh: &SecretString,
        now: i64,
    ) -> Result<Tokens, CallError> {
        let bytes = transport
            .send(
                Method::POST,
                "/v2/auth/refresh",
                None,
                Credentials::Bearer(refresh),
                transport.timeout(),
            )
            .await?;
        let tokens = token_answer("/v2/auth/refresh", &bytes, Some(refresh), now)
            .map_err(CallError::Failed)?;
        tracing::info!(provider = "qpay", "QPay refreshed the access token");
        Ok(tokens)
    }

    /// Holds and stores fresh tokens; returns the access token.
    async fn keep(&self, slot: &mut Slot, tokens: Tokens) -> SecretString {
        let stored = StoredTokens {
            issued_for: self.issued_for.clone(),
            access_token: tokens.access.expose_secret().to_owned(),
            refresh_token: tokens
                .refresh
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
            access_expires_at: tokens.access_expires_at,
            renew_at: tokens.renew_at,
            refresh_expires_at: tokens.refresh_expires_at,
        };
        match serde_json::to_string(&stored) {
            Ok(text) => {
                if let Err(error) = self.state.save(STATE_KEY, text).await {
                    // The token still works; the next start fetches a new one.
                    tracing::warn!(provider = "qpay", %error, "cannot store the QPay tokens");
                }
            }
            Err(error) => {
                tracing::warn!(provider = "qpay", %error, "cannot encode the QPay tokens")
            }
        }
        let access = tokens.access.clone();
        slot.tokens = Some(tokens);
        access
    }

    /// Reads the stored tokens on first use.
    async fn load_once(&self, slot: &mut Slot) {
        if slot.loaded {
            return;
        }
        slot.loaded = true;
        let Some(text) = self.state.load(STATE_KEY).await else {
            return;
        };
        match serde_json::from_str::<StoredTokens>(&text) {
            Ok(stored) if stored.issued_for == self.issued_for => {
                tracing::info!(provider = "qpay", "reusing the stored QPay token");
                slot.tokens = Some(Tokens {
                    access: SecretString::from(stored.access_token),
                    refresh: stored.refresh_token.map(SecretString::from),
                    access_expires_at: stored.access_expires_at,
                    renew_at: stored.renew_at,
                    refresh_expires_at: stored.refresh_expires_at,
                });
            }
            Ok(_) => tracing::info!(
                provider = "qpay",
                "the stored QPay token was issued for another host or client; ignoring it"
            ),
            Err(_) => tracing::warn!(provider = "qpay", "the stored QPay token is unreadable"),
        }
    }
}

/// The tokens of the answer `bytes` to `path` (`/v2/auth/token` or `/v2/auth/refresh`),
/// received at `now`: the one reading of a token answer, for the keeper and the property run.
pub(super) fn token_answer(
    path: &str,
    bytes: &[u8],
    previous_refresh: Option<&SecretString>,
    now: i64,
) -> Result<Tokens, ProviderError> {
    let reply: TokenReply = parse_json(path, bytes)?;
    Ok(tokens_of(reply, previous_refresh, now))
}

impl Tokens {
    /// When the tokens expire and are renewed: everything about them but the secrets.
    pub(super) fn lifetimes(&self) -> TokenLifetimes {
        TokenLifetimes {
            access_expires_at: self.access_expires_at,
            renew_at: self.renew_at,
            refresh_expires_at: self.refresh_expires_at,
            has_refresh_token: self.refresh.is_some(),
        }
    }
}

/// Tokens from a token answer received at `now`. A refresh answer without a new refresh token
/// keeps the old one.
fn tokens_of(reply: TokenReply, previous_refresh: Option<&SecretString>, now: i64) -> Tokens {
    let access_expires_at =
        expiry_of(reply.expires_in.map(|c| c.0), now).unwrap_or(now + FALLBACK_LIFETIME);
    let lifetime = (access_expires_at - now).max(0);
    // A minute before expiry, or a quarter of a short lifetime (at least a second) before.
    let renew_at = access_expires_at - RENEW_MARGIN.min((lifetime / 4).max(1));
    let refresh = reply
        .refresh_token
        .filter(|t| !t.is_empty())
        .map(SecretString::from)
        .or_else(|| previous_refresh.cloned());
    Tokens {
        access: SecretString::from(reply.access_token),
        refresh,
        access_expires_at,
        renew_at,
        refresh_expires_at: expiry_of(reply.refresh_expires_in.map(|c| c.0), now),
    }
}

/// When a token expires (Unix seconds): `value` is a timestamp when larger than 120 days in
/// seconds, else a duration from `now`. A timestamp already past (a clock far off, or
/// nonsense) gives the fallback lifetime, leaving a 401 to say when it really ends.
pub(super) fn expiry_of(value: Option<u64>, now: i64) -> Option<i64> {
    let value = value?;
    let seconds = i64::try_from(value).ok()?;
    if value > TIMESTAMP_THRESHOLD {
        if seconds <= now {
            tracing::warn!(
                provider = "qpay",
                "QPay's token expiry is in the past; is the clock right?"
            );
            return Some(now + FALLBACK_LIFETIME);
        }
        Some(seconds)
    } else {
        Some(now.saturating_add(seconds))
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::qpay::model::WireCount;

    #[test]
    fn large_values_are_timestamps_small_ones_durations() {
        let now = 1_769_670_125;
        // The sandbox sample: 24 hours after issue, as a timestamp.
        assert_eq!(expiry_of(Some(1_769_756_525), now), Some(1_769_756_525));
        assert_eq!(expiry_of(Some(3600), now), Some(now + 3600));
        assert_eq!(
            expiry_of(Some(TIMESTAMP_THRESHOLD), now),
            Some(now + TIMESTAMP_THRESHOLD as i64)
        );
        assert_eq!(
            expiry_of(Some(1_000_000_000), now),
            Some(now + FALLBACK_LIFETIME)
        );
        assert_eq!(expiry_of(None, now), None);
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let now = 1_769_670_125;
        let reply = TokenReply {
            access_token: "a".into(),
            refresh_token: Some("r".into()),
            expires_in: Some(WireCount(1_769_756_525)),
            refresh_expires_in: Some(WireCount(1_769_756_525)),
        };
        let tokens = tokens_of(reply, None, now);
        assert_eq!(tokens.access_expires_at, 1_769_756_525);
        assert_eq!(tokens.renew_at, 1_769_756_525 - RENEW_MARGIN);
        // A token that lives two seconds is renewed after one.
        let short = TokenReply {
            access_token: "a".into(),
            refresh_token: None,
            expires_in: Some(WireCount(2)),
            refresh_expires_in: None,
        };
        let previous = SecretString::from("old-refresh");
        let tokens = tokens_of(short, Some(&previous), now);
        assert_eq!(tokens.renew_at, now + 1);
        assert_eq!(
            tokens.refresh.map(|r| r.expose_secret().to_owned()),
            Some("old-refresh".to_owned())
        );
    }

    #[test]
    fn the_keeper_debug_shows_no_secret() {
        let state = StateStore::in_memory();
        let keeper = TokenKeeper::new(
            "https://merchant.qpay.mn",
            "client-1",
            SecretString::from("very-secret-value"),
            state,
        );
        let text = format!("{keeper:?}");
        assert!(text.contains("client-1"));
        assert!(!text.contains("very-secret-value"));
    }
}

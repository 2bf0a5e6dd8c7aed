//! Passwords, sessions and who is asking.
//!
//! Passwords are hashed with argon2id (the crate's defaults, OWASP's minimum). A session is a
//! random 256-bit token in an HttpOnly, SameSite=Lax cookie; the store keeps only its SHA-256,
//! so a leaked database signs nobody in.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use http::header::{COOKIE, SET_COOKIE};
use http::HeaderValue;
use leptos::prelude::*;
use sha2::{Digest, Sha256};

use super::state::AppState;
use super::store::SessionUser;
use crate::error::AppError;

pub const SESSION_COOKIE: &str = "sipfleet_session";
/// How long a session lasts without signing in again.
pub const SESSION_DAYS: i64 = 14;

/// Hashes a new password. Slow by design: run it off the async threads.
pub async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|_| AppError::Internal)?
    .map_err(|error| {
        tracing::error!(%error, "password hashing failed");
        AppError::Internal
    })
}

/// Checks a password against a stored hash. With no hash (unknown email) it still does the
/// work of one check, so response time does not reveal which emails exist.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let stored = hash.unwrap_or_else(|| dummy_hash().to_string());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && !stored.is_empty()
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not a password anyone has", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// A fresh session token (sent to the browser) and its hash (stored).
pub fn new_session_token() -> (String, String) {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Failed sign-ins per email: at most [`LoginLimiter::MAX_FAILURES`] in
/// [`LoginLimiter::WINDOW`], after which even the right password is refused until the
/// window passes. Kept in memory: a restart forgets it, which only helps the legitimate user.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub const MAX_FAILURES: usize = 5;
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);

    pub fn allowed(&self, email: &str) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = map.get_mut(email) else {
            return true;
        };
        while times.front().is_some_and(|t| t.elapsed() > Self::WINDOW) {
            times.pop_front();
        }
        times.len() < Self::MAX_FAILURES
    }

    pub fn record_failure(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded memory under a spray of random emails: forget the oldest window entirely.
        if map.len() > 100_000 {
            map.retain(|_, times| times.back().is_some_and(|t| t.elapsed() <= Self::WINDOW));
        }
        map.entry(email.to_string())
            .or_default()
            .push_back(Instant::now());
    }

    pub fn clear(&self, email: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(email);
    }
}

/// The session token the current request carries, if any.
pub fn request_token() -> Option<String> {
    let parts = use_context::<http::request::Parts>()?;
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// The signed-in user, or [`AppError::NotSignedIn`]. Every server function that touches
/// account data starts here.
pub async fn require_user() -> Result<SessionUser, AppError> {
    current_user().await?.ok_or(AppError::NotSignedIn)
}

pub async fn current_user() -> Result<Option<SessionUser>, AppError> {
    let Some(token) = request_token() else {
        return Ok(None);
    };
    let state = AppState::current()?;
    Ok(state.store.session_user(&token_hash(&token)).await?)
}

/// Sets (or, with `None`, clears) the session cookie on the response.
pub fn set_session_cookie(token: Option<&str>) {
    let max_age = if token.is_some() {
        SESSION_DAYS * 24 * 3600
    } else {
        0
    };
    let cookie = cookie::Cookie::build((SESSION_COOKIE, token.unwrap_or("").to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
            options.append_header(SET_COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_refuses_after_five_failures_and_forgets_on_success() {
        let limiter = LoginLimiter::default();
        for _ in 0..LoginLimiter::MAX_FAILURES {
            assert!(limiter.allowed("a@b.co"));
            limiter.record_failure("a@b.co");
        }
        assert!(!limiter.allowed("a@b.co"));
        assert!(limiter.allowed("other@b.co"));
        limiter.clear("a@b.co");
        assert!(limiter.allowed("a@b.co"));
    }

    #[tokio::test]
    async fn a_password_verifies_against_its_hash_only() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse battery".into(), Some(hash)).await);
        assert!(!verify_password("anything at all".into(), None).await);
    }
}

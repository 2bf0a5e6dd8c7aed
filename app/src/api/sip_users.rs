//! SIP users (the phones that register to the account's servers) and the registrations the
//! nodes hold for them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::listing::{ListQuery, Paged};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipUserRow {
    pub id: i64,
    pub username: String,
    pub keepalive: crate::model::KeepAlive,
    /// `YYYY-MM-DD`.
    pub created: String,
}

/// One binding as the Registrations view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRow {
    pub aor: String,
    pub contact: String,
    /// Where the REGISTER really came from (the NAT's public side).
    pub received: String,
    pub transport: String,
    pub expires_in: u64,
    pub user_agent: Option<String>,
    /// Last keep-alive round trip, when one was measured.
    pub latency_ms: Option<String>,
    /// False once the phone missed its keep-alives.
    pub online: bool,
}

#[cfg(feature = "ssr")]
fn check_username(username: &str) -> Result<String, AppError> {
    let username = username.trim();
    if username.is_empty()
        || username.len() > 64
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    {
        return Err(AppError::field(
            "username",
            "A username has 1 to 64 letters, digits, dots, dashes, underscores or pluses.",
        ));
    }
    Ok(username.to_string())
}

#[cfg(feature = "ssr")]
fn check_password(password: &str) -> Result<&str, AppError> {
    let n = password.chars().count();
    if !(8..=128).contains(&n) || password.chars().any(char::is_control) {
        return Err(AppError::field("password", "Use 8 to 128 characters."));
    }
    Ok(password)
}

/// One page of the account's SIP users by username, those whose name holds `query.search`.
#[server(prefix = "/api", endpoint = "list_sip_users")]
pub async fn list_sip_users(
    #[server(default)] query: ListQuery,
) -> Result<Paged<SipUserRow>, AppError> {
    use crate::ssr::{auth::require_user, date, state::AppState};
    let user = require_user().await?;
    let page = AppState::current()?
        .store
        .sip_user_page(user.account_id, &query)
        .await?;
    Ok(page.map(|(id, username, keepalive, created)| SipUserRow {
        id,
        username,
        keepalive: crate::model::KeepAlive::parse(&keepalive).unwrap_or_default(),
        created: date(created),
    }))
}

#[server(prefix = "/api", endpoint = "create_sip_user")]
pub async fn create_sip_user(
    username: String,
    password: String,
    #[server(default)] keepalive: Option<String>,
) -> Result<i64, AppError> {
    use crate::ssr::{auth::require_user, sip_users, state::AppState};
    let user = require_user().await?;
    let username = check_username(&username)?;
    let password = check_password(&password)?;
    let keepalive = match keepalive.as_deref().filter(|k| !k.is_empty()) {
        Some(text) => crate::model::KeepAlive::parse(text)?,
        None => crate::model::KeepAlive::default(),
    };
    sip_users::create(&AppState::current()?, &user, &username, password, keepalive).await
}

#[server(prefix = "/api", endpoint = "reset_sip_password")]
pub async fn reset_sip_password(id: i64, password: String) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, sip_users, state::AppState};
    let user = require_user().await?;
    let password = check_password(&password)?;
    sip_users::reset_password(&AppState::current()?, &user, id, password).await
}

#[server(prefix = "/api", endpoint = "delete_sip_user")]
pub async fn delete_sip_user(id: i64) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, sip_users, state::AppState};
    let user = require_user().await?;
    sip_users::delete(&AppState::current()?, &user, id).await
}

/// One page of the registrations one of the caller's servers holds, by address of record,
/// those whose AOR or contact holds `query.search`. They live in the location store, not
/// in the database, so the page is cut here: only its rows travel.
#[server(prefix = "/api", endpoint = "list_registrations")]
pub async fn list_registrations(
    server_id: i64,
    #[server(default)] query: ListQuery,
) -> Result<Paged<RegistrationRow>, AppError> {
    use crate::listing::{clamp_page, PAGE_SIZE};
    use crate::ssr::{auth::require_user, state::AppState};
    let user = require_user().await?;
    let state = AppState::current()?;
    let server = state
        .store
        .server(user.account_id, server_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let now = std::time::SystemTime::now();
    let mut bindings = state.locations.in_domain(&server.ip, now);
    let total = bindings.len() as u64;
    let needle = query.search.to_lowercase();
    bindings.retain(|(aor, b)| {
        needle.is_empty()
            || aor.to_lowercase().contains(&needle)
            || b.contact.to_lowercase().contains(&needle)
    });
    bindings.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.contact.cmp(&y.contact)));
    let matched = bindings.len() as u64;
    let page = clamp_page(query.page, matched);
    let rows = bindings
        .into_iter()
        .skip((page as usize - 1) * PAGE_SIZE as usize)
        .take(PAGE_SIZE as usize)
        .map(|(aor, b)| RegistrationRow {
            aor,
            contact: b.contact.clone(),
            received: b.received.to_string(),
            transport: format!("{:?}", b.transport).to_uppercase(),
            expires_in: b.expires_in(now),
            user_agent: b.user_agent.clone(),
            latency_ms: b
                .latency
                .map(|d| format!("{:.2} ms", d.as_secs_f64() * 1000.0)),
            online: b.online,
        })
        .collect();
    Ok(Paged {
        rows,
        matched,
        total,
        page,
    })
}

/// Changes how a SIP user's contacts are kept alive.
#[server(prefix = "/api", endpoint = "set_sip_keepalive")]
pub async fn set_sip_keepalive(id: i64, keepalive: String) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, sip_users, state::AppState};
    let user = require_user().await?;
    let mode = crate::model::KeepAlive::parse(&keepalive)?;
    sip_users::set_keepalive(&AppState::current()?, &user, id, mode).await
}

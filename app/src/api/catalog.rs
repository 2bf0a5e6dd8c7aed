//! Media relays and certificates as the console lists them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtpRow {
    pub ip: String,
    pub aliases: String,
    pub zone: String,
}

/// The operator's media relays: the same list for every signed-in account.
#[server(prefix = "/api", endpoint = "list_rtp_servers")]
pub async fn list_rtp_servers() -> Result<Vec<RtpRow>, AppError> {
    use crate::ssr::{auth::require_user, state::AppState};
    require_user().await?;
    let relays = expect_context::<AppState>().store.rtp_servers().await?;
    Ok(relays
        .into_iter()
        .map(|r| RtpRow {
            ip: r.ip,
            aliases: r.aliases,
            zone: r.zone,
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRow {
    pub id: i64,
    pub subject: String,
    pub sans: String,
    pub issuer: String,
    /// `YYYY-MM-DD`.
    pub expires: String,
}

/// The account's certificates, without their keys (keys never leave the server).
#[server(prefix = "/api", endpoint = "list_certificates")]
pub async fn list_certificates() -> Result<Vec<CertificateRow>, AppError> {
    use crate::ssr::{auth::require_user, date, state::AppState};
    let user = require_user().await?;
    let certificates = expect_context::<AppState>()
        .store
        .certificates(user.account_id)
        .await?;
    Ok(certificates
        .into_iter()
        .map(|c| CertificateRow {
            id: c.id,
            subject: c.subject,
            sans: c.sans,
            issuer: c.issuer,
            expires: date(c.not_after),
        })
        .collect())
}

//! TLS certificates: upload (checked with real X.509 parsing), list, delete, attach to a
//! server as Server or Client, detach. The private key is stored and never sent back.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRow {
    pub id: i64,
    pub subject: String,
    pub sans: String,
    pub issuer: String,
    /// `YYYY-MM-DD`.
    pub expires: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedCertificate {
    pub id: i64,
    pub subject: String,
    /// `server` or `client`.
    pub usage: String,
}

#[server(prefix = "/api", endpoint = "list_certificates")]
pub async fn list_certificates() -> Result<Vec<CertificateRow>, AppError> {
    use crate::ssr::{auth::require_user, date, state::AppState};
    let user = require_user().await?;
    let certificates = AppState::current()?
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

#[server(prefix = "/api", endpoint = "upload_certificate")]
pub async fn upload_certificate(chain: String, key: String) -> Result<i64, AppError> {
    use crate::ssr::{auth::require_user, certificates, state::AppState};
    let user = require_user().await?;
    if chain.len() > 64 * 1024 || key.len() > 16 * 1024 {
        return Err(AppError::field(
            "chain",
            "That is larger than any certificate chain we accept.",
        ));
    }
    certificates::upload(&AppState::current()?, &user, &chain, &key).await
}

#[server(prefix = "/api", endpoint = "delete_certificate")]
pub async fn delete_certificate(id: i64) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, certificates, state::AppState};
    let user = require_user().await?;
    certificates::delete(&AppState::current()?, &user, id).await
}

#[server(prefix = "/api", endpoint = "server_certificates")]
pub async fn server_certificates(server_id: i64) -> Result<Vec<AttachedCertificate>, AppError> {
    use crate::ssr::{auth::require_user, state::AppState};
    let user = require_user().await?;
    let attached = AppState::current()?
        .store
        .server_certificates(user.account_id, server_id)
        .await?;
    Ok(attached
        .into_iter()
        .map(|(id, subject, usage)| AttachedCertificate { id, subject, usage })
        .collect())
}

#[server(prefix = "/api", endpoint = "attach_certificate")]
pub async fn attach_certificate(
    server_id: i64,
    certificate_id: i64,
    usage: String,
) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, certificates, state::AppState};
    let user = require_user().await?;
    let usage = match usage.as_str() {
        "server" | "client" => usage,
        _ => return Err(AppError::field("usage", "Choose Server or Client.")),
    };
    certificates::attach(
        &AppState::current()?,
        &user,
        server_id,
        certificate_id,
        &usage,
    )
    .await
}

#[server(prefix = "/api", endpoint = "detach_certificate")]
pub async fn detach_certificate(server_id: i64, certificate_id: i64) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, certificates, state::AppState};
    let user = require_user().await?;
    certificates::detach(&AppState::current()?, &user, server_id, certificate_id).await
}

//! Media relays as the console lists them.

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
    let relays = AppState::current()?.store.rtp_servers().await?;
    Ok(relays
        .into_iter()
        .map(|r| RtpRow {
            ip: r.ip,
            aliases: r.aliases,
            zone: r.zone,
        })
        .collect())
}

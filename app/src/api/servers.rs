//! The Servers list, one server, and deploying.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ServerRow, ZoneInfo};

/// The caller's servers, oldest first.
#[server(prefix = "/api", endpoint = "list_servers")]
pub async fn list_servers() -> Result<Vec<ServerRow>, AppError> {
    use crate::ssr::{auth::require_user, fleet::row, state::AppState};
    let user = require_user().await?;
    let state = expect_context::<AppState>();
    Ok(state
        .store
        .list_servers(user.account_id)
        .await?
        .iter()
        .map(row)
        .collect())
}

/// One of the caller's servers. Another account's id is "not found", exactly like an id
/// that does not exist.
#[server(prefix = "/api", endpoint = "get_server")]
pub async fn get_server(id: i64) -> Result<ServerRow, AppError> {
    use crate::ssr::{auth::require_user, fleet::row, state::AppState};
    let user = require_user().await?;
    let state = expect_context::<AppState>();
    let server = state
        .store
        .server(user.account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(row(&server))
}

/// Zones a server can be deployed into.
#[server(prefix = "/api", endpoint = "list_zones")]
pub async fn list_zones() -> Result<Vec<ZoneInfo>, AppError> {
    use crate::ssr::{auth::require_user, state::AppState};
    require_user().await?;
    let state = expect_context::<AppState>();
    let used = state.store.used_ips().await?;
    let zones = state.store.zones().await?;
    Ok(zones
        .into_iter()
        .map(|z| {
            let first: u32 = z
                .pool_first
                .parse::<std::net::Ipv4Addr>()
                .map(u32::from)
                .unwrap_or(1);
            let last: u32 = z
                .pool_last
                .parse::<std::net::Ipv4Addr>()
                .map(u32::from)
                .unwrap_or(0);
            let total = if last >= first { last - first + 1 } else { 0 };
            let taken = (first..=last)
                .filter(|ip| used.contains(&std::net::Ipv4Addr::from(*ip).to_string()))
                .count() as u32;
            ZoneInfo {
                name: z.name,
                label: z.label,
                free_addresses: total.saturating_sub(taken),
            }
        })
        .collect())
}

/// Deploys a server; returns it once its node answers (status Running).
#[server(prefix = "/api", endpoint = "deploy_server")]
pub async fn deploy_server(
    zone: String,
    kind: String,
    #[server(default)] channels: Option<String>,
    #[server(default)] cps: Option<String>,
) -> Result<ServerRow, AppError> {
    use crate::model::{Channels, Cps, ServerKind};
    use crate::ssr::fleet::{deploy, DeployRequest, DEFAULT_CHANNELS, DEFAULT_CPS};
    use crate::ssr::{auth::require_user, state::AppState};
    use std::str::FromStr;

    let user = require_user().await?;
    let kind = ServerKind::from_str(&kind)?;
    let channels = match channels.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Channels::parse(text)?,
        None => Channels::new(DEFAULT_CHANNELS).ok_or(AppError::Internal)?,
    };
    let cps = match cps.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Cps::parse(text)?,
        None => Cps::new(DEFAULT_CPS).ok_or(AppError::Internal)?,
    };
    let state = expect_context::<AppState>();
    deploy(
        &state,
        &user,
        DeployRequest {
            zone: zone.trim().to_string(),
            kind,
            channels,
            cps,
        },
    )
    .await
}

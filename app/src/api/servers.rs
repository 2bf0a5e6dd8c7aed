//! The Servers list, one server, and deploying.

use leptos::prelude::*;

use crate::error::AppError;
use crate::listing::{Paged, ServerQuery};
use crate::model::{ServerRow, ZoneInfo};

/// The caller's servers, oldest first.
#[server(prefix = "/api", endpoint = "list_servers")]
pub async fn list_servers() -> Result<Vec<ServerRow>, AppError> {
    use crate::ssr::{auth::require_user, fleet::server_row, state::AppState};
    let user = require_user().await?;
    let state = AppState::current()?;
    Ok(state
        .store
        .list_servers(user.account_id)
        .await?
        .iter()
        .map(|s| server_row(&state, s))
        .collect())
}

/// One page of the caller's servers, filtered and ordered by `query`, with the counts.
#[server(prefix = "/api", endpoint = "server_page")]
pub async fn server_page(
    #[server(default)] query: ServerQuery,
) -> Result<Paged<ServerRow>, AppError> {
    use crate::ssr::{auth::require_user, fleet::server_row, state::AppState};
    let user = require_user().await?;
    let state = AppState::current()?;
    let page = state.store.server_page(user.account_id, &query).await?;
    Ok(page.map(|s| server_row(&state, &s)))
}

/// One of the caller's servers. Another account's id is "not found", exactly like an id
/// that does not exist.
#[server(prefix = "/api", endpoint = "get_server")]
pub async fn get_server(id: i64) -> Result<ServerRow, AppError> {
    use crate::ssr::{auth::require_user, fleet::server_row, state::AppState};
    let user = require_user().await?;
    let state = AppState::current()?;
    let server = state
        .store
        .server(user.account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(server_row(&state, &server))
}

/// Zones a server can be deployed into.
#[server(prefix = "/api", endpoint = "list_zones")]
pub async fn list_zones() -> Result<Vec<ZoneInfo>, AppError> {
    use crate::ssr::{auth::require_user, state::AppState};
    require_user().await?;
    let state = AppState::current()?;
    // Each pool's addresses in use are counted by the store over the address order's
    // index: neither the pool nor every server's address is walked per page view.
    let mut zones = Vec::new();
    for z in state.store.zones().await? {
        let bound = |ip: &str, fallback: u32| {
            ip.parse::<std::net::Ipv4Addr>()
                .map(u32::from)
                .unwrap_or(fallback)
        };
        let (first, last) = (bound(&z.pool_first, 1), bound(&z.pool_last, 0));
        let total = if last >= first { last - first + 1 } else { 0 };
        let taken = state.store.servers_in_range(first, last).await?;
        zones.push(ZoneInfo {
            name: z.name,
            label: z.label,
            free_addresses: total.saturating_sub(taken),
        });
    }
    Ok(zones)
}

/// Deploys a server; returns it once its node answers (status Running). Blank optional
/// fields take their defaults: an alias like `switch-3`, 100 channels, 10 CPS, no cluster.
#[server(prefix = "/api", endpoint = "deploy_server")]
pub async fn deploy_server(
    zone: String,
    kind: String,
    #[server(default)] cluster: Option<String>,
    #[server(default)] alias: Option<String>,
    #[server(default)] channels: Option<String>,
    #[server(default)] cps: Option<String>,
) -> Result<ServerRow, AppError> {
    use crate::model::{Alias, Channels, Cps, ServerKind};
    use crate::ssr::fleet::{deploy, DeployRequest, DEFAULT_CHANNELS, DEFAULT_CPS};
    use crate::ssr::{auth::require_user, state::AppState};
    use std::str::FromStr;

    fn given(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    let user = require_user().await?;
    let kind = ServerKind::from_str(&kind)?;
    let channels = match given(&channels) {
        Some(text) => Channels::parse(text)?,
        None => Channels::new(DEFAULT_CHANNELS).ok_or(AppError::Internal)?,
    };
    let cps = match given(&cps) {
        Some(text) => Cps::parse(text)?,
        None => Cps::new(DEFAULT_CPS).ok_or(AppError::Internal)?,
    };
    let alias = given(&alias).map(Alias::parse).transpose()?;
    let cluster_id = match given(&cluster) {
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| AppError::field("cluster", "Choose one of your clusters."))?,
        ),
        None => None,
    };
    let state = AppState::current()?;
    deploy(
        &state,
        &user,
        DeployRequest {
            zone: zone.trim().to_string(),
            kind,
            cluster_id,
            alias,
            channels,
            cps,
        },
    )
    .await
}

/// Runs one of the Actions menu's actions on the caller's server, on its node, now.
#[server(prefix = "/api", endpoint = "run_server_action")]
pub async fn run_server_action(id: i64, action: String) -> Result<ServerRow, AppError> {
    use crate::model::ServerCommand;
    use crate::ssr::{auth::require_user, fleet, state::AppState};
    use std::str::FromStr;
    let user = require_user().await?;
    let action = ServerCommand::from_str(&action)?;
    let state = AppState::current()?;
    fleet::run_action(&state, &user, id, action).await
}

/// Resizes a server's channels ("active at …" after the configured delay; 1001 or more
/// reboots now and needs `confirm_reboot`).
#[server(prefix = "/api", endpoint = "resize_capacity")]
pub async fn resize_capacity(
    id: i64,
    channels: String,
    #[server(default)] confirm_reboot: Option<String>,
) -> Result<ServerRow, AppError> {
    use crate::model::Channels;
    use crate::ssr::{auth::require_user, fleet, state::AppState};
    let user = require_user().await?;
    let channels = Channels::parse(&channels)?;
    let state = AppState::current()?;
    fleet::resize(&state, &user, id, channels, confirm_reboot.is_some()).await
}

/// Deletes the caller's server (another account's is "not found"). Refused, with the
/// reason, while another server fails over to it or it is the only Dispatcher of a cluster
/// with Switches. Once deleted, the browser goes to the Servers list.
#[server(prefix = "/api", endpoint = "delete_server")]
pub async fn delete_server(id: i64) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, fleet, state::AppState};
    let user = require_user().await?;
    let state = AppState::current()?;
    fleet::delete(&state, &user, id).await?;
    leptos_axum::redirect("/servers");
    Ok(())
}

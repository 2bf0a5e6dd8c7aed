//! Clusters: named groups of an account's servers that share CPS and channel budgets,
//! dialogs and registrations: creating, renaming and deleting one, each written with its
//! audit row. Membership is part of a server's configuration ([`super::config`]); nodes know
//! a cluster by its members, so these changes have nothing to push. Also what the console
//! shows of a cluster at work: its picture, and a Dispatcher's view of its switches.

use super::state::AppState;
use super::store::{AccountId, Audit, ClusterError, SessionUser};
use crate::error::AppError;
use crate::model::{
    ClusterName, ClusterPicture, PictureNode, ServerKind, ServerStatus, Shade, SwitchHealth,
};

/// Creates a cluster in the user's account; returns its id.
pub async fn create(
    state: &AppState,
    user: &SessionUser,
    name: &ClusterName,
) -> Result<i64, AppError> {
    state
        .store
        .create_cluster(user.account_id, name.as_str(), |id| {
            Audit::by(
                user,
                "cluster.create",
                format!("cluster {id}"),
                name.as_str(),
            )
        })
        .await
        .map_err(refusal)
}

/// Renames one of the account's clusters.
pub async fn rename(
    state: &AppState,
    user: &SessionUser,
    id: i64,
    name: &ClusterName,
) -> Result<(), AppError> {
    let audit = Audit::by(
        user,
        "cluster.rename",
        format!("cluster {id}"),
        name.as_str(),
    );
    state
        .store
        .rename_cluster(user.account_id, id, name.as_str(), audit)
        .await
        .map_err(refusal)
}

/// Deletes one of the account's clusters that has no servers left.
pub async fn delete(state: &AppState, user: &SessionUser, id: i64) -> Result<(), AppError> {
    let audit = Audit::by(user, "cluster.delete", format!("cluster {id}"), "");
    state
        .store
        .delete_cluster(user.account_id, id, audit)
        .await
        .map_err(refusal)
}

/// What the user is told when the store refuses a change.
fn refusal(error: ClusterError) -> AppError {
    match error {
        ClusterError::NameTaken => {
            AppError::field("name", "You have a cluster with this name already.")
        }
        ClusterError::NotEmpty => {
            AppError::Refused("This cluster still has servers. Move them out of it first.".into())
        }
        ClusterError::NotFound => AppError::NotFound,
        ClusterError::Store(e) => e.into(),
    }
}

/// Every cluster of the account as a picture: its Dispatchers above its Switches, each
/// with its live channels and CPS. A switch is drawn down when it does not run or when a
/// running Dispatcher of its cluster probes it in vain.
pub async fn pictures(
    state: &AppState,
    account_id: AccountId,
) -> Result<Vec<ClusterPicture>, AppError> {
    let servers = state.store.list_servers(account_id).await?;
    let mut pictures: Vec<ClusterPicture> = state
        .store
        .cluster_options(account_id)
        .await?
        .into_iter()
        .map(|(id, name)| ClusterPicture {
            id,
            name,
            dispatchers: Vec::new(),
            switches: Vec::new(),
        })
        .collect();
    for picture in &mut pictures {
        let members = servers
            .iter()
            .filter(|s| s.cluster.as_deref() == Some(picture.name.as_str()));
        // What the cluster's running Dispatchers see of each switch.
        let mut inactive = std::collections::HashSet::new();
        let mut probed = std::collections::HashSet::new();
        for dispatcher in members
            .clone()
            .filter(|s| s.kind() == ServerKind::Dispatcher)
        {
            for switch in state
                .engine
                .dispatch_status(dispatcher.id)
                .unwrap_or_default()
            {
                probed.insert(switch.id);
                if !switch.active {
                    inactive.insert(switch.id);
                }
            }
        }
        for server in members {
            let row = super::fleet::server_row(state, server);
            let (shade, words) = match row.status {
                ServerStatus::Running if inactive.contains(&server.id) => {
                    (Shade::Down, "Inactive".to_string())
                }
                ServerStatus::Running if probed.contains(&server.id) => {
                    (Shade::Up, "Active".to_string())
                }
                ServerStatus::Running => (Shade::Up, row.status.label().to_string()),
                ServerStatus::Installing | ServerStatus::Rebooting | ServerStatus::Updating => {
                    (Shade::Busy, row.status.label().to_string())
                }
                ServerStatus::Stopped | ServerStatus::Expired => {
                    (Shade::Down, row.status.label().to_string())
                }
            };
            let node = PictureNode {
                id: row.id,
                alias: row.alias,
                ip: row.ip,
                shade,
                state: words,
                channels_in_use: row.channels_in_use,
                channels: row.channels,
                cps_now: row.cps_now,
                cps: row.cps,
            };
            match row.kind {
                ServerKind::Dispatcher => picture.dispatchers.push(node),
                ServerKind::Switch => picture.switches.push(node),
            }
        }
    }
    Ok(pictures)
}

/// A Dispatcher's switches as it sees them: every Switch of its cluster, with the probe
/// state, latency and traffic its node reports (unknown while it does not run).
pub async fn switch_health(
    state: &AppState,
    account_id: AccountId,
    id: i64,
) -> Result<Vec<SwitchHealth>, AppError> {
    let record = state
        .store
        .server_config(account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let Some(cluster) = record.cluster_id else {
        return Ok(Vec::new());
    };
    let seen = state.engine.dispatch_status(id);
    Ok(state
        .store
        .cluster_members(account_id, cluster)
        .await?
        .into_iter()
        .filter(|(_, _, _, kind)| kind == ServerKind::Switch.as_str())
        .map(|(switch, alias, ip, _)| {
            let status = seen
                .as_ref()
                .and_then(|all| all.iter().find(|s| s.id == switch));
            SwitchHealth {
                id: switch,
                alias,
                ip,
                active: status.map(|s| s.active),
                latency_us: status.and_then(|s| s.latency_us),
                sent_last_minute: status.map_or(0, |s| s.sent_last_minute),
                share: status.map_or(0.0, |s| s.share),
            }
        })
        .collect())
}

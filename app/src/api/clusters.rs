//! Clusters: named groups of an account's servers that share CPS and channel budgets,
//! dialogs and registrations.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ClusterPicture, ClusterRow, SwitchHealth};

/// The caller's clusters with their members' totals.
#[server(prefix = "/api", endpoint = "list_clusters")]
pub async fn list_clusters() -> Result<Vec<ClusterRow>, AppError> {
    use crate::ssr::{auth::require_user, state::AppState};
    let user = require_user().await?;
    let clusters = AppState::current()?
        .store
        .cluster_totals(user.account_id)
        .await?;
    Ok(clusters
        .into_iter()
        .map(|c| ClusterRow {
            id: c.id,
            name: c.name,
            members: c.members,
            channels: c.channels,
            cps: c.cps,
        })
        .collect())
}

/// Creates a cluster; returns its id.
#[server(prefix = "/api", endpoint = "create_cluster")]
pub async fn create_cluster(name: String) -> Result<i64, AppError> {
    use crate::model::ClusterName;
    use crate::ssr::{auth::require_user, clusters, state::AppState};
    let user = require_user().await?;
    let name = ClusterName::parse(&name)?;
    clusters::create(&AppState::current()?, &user, &name).await
}

#[server(prefix = "/api", endpoint = "rename_cluster")]
pub async fn rename_cluster(id: i64, name: String) -> Result<(), AppError> {
    use crate::model::ClusterName;
    use crate::ssr::{auth::require_user, clusters, state::AppState};
    let user = require_user().await?;
    let name = ClusterName::parse(&name)?;
    clusters::rename(&AppState::current()?, &user, id, &name).await
}

/// Deletes a cluster that has no servers left.
#[server(prefix = "/api", endpoint = "delete_cluster")]
pub async fn delete_cluster(id: i64) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, clusters, state::AppState};
    let user = require_user().await?;
    clusters::delete(&AppState::current()?, &user, id).await
}

/// The caller's clusters as pictures: Dispatchers above Switches, each with its state and
/// live channels and CPS.
#[server(prefix = "/api", endpoint = "cluster_pictures")]
pub async fn cluster_pictures() -> Result<Vec<ClusterPicture>, AppError> {
    use crate::ssr::{auth::require_user, clusters, state::AppState};
    let user = require_user().await?;
    clusters::pictures(&AppState::current()?, user.account_id).await
}

/// The switches one of the caller's Dispatchers balances over, as it sees them ("not
/// found" for another account's server).
#[server(prefix = "/api", endpoint = "dispatcher_switches")]
pub async fn dispatcher_switches(id: i64) -> Result<Vec<SwitchHealth>, AppError> {
    use crate::ssr::{auth::require_user, clusters, state::AppState};
    let user = require_user().await?;
    clusters::switch_health(&AppState::current()?, user.account_id, id).await
}

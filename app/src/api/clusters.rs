//! Clusters: named groups of an account's servers that share CPS and channel budgets,
//! dialogs and registrations.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::ClusterRow;

#[cfg(feature = "ssr")]
fn cluster_error(error: crate::ssr::store::ClusterError) -> AppError {
    use crate::ssr::store::ClusterError;
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

#[server(prefix = "/api", endpoint = "create_cluster")]
pub async fn create_cluster(name: String) -> Result<i64, AppError> {
    use crate::model::ClusterName;
    use crate::ssr::{auth::require_user, state::AppState, store::Audit};
    let user = require_user().await?;
    let name = ClusterName::parse(&name)?;
    let state = AppState::current()?;
    state
        .store
        .create_cluster(user.account_id, name.as_str(), |id| {
            Audit::by(
                &user,
                "cluster.create",
                format!("cluster {id}"),
                name.as_str(),
            )
        })
        .await
        .map_err(cluster_error)
}

#[server(prefix = "/api", endpoint = "rename_cluster")]
pub async fn rename_cluster(id: i64, name: String) -> Result<(), AppError> {
    use crate::model::ClusterName;
    use crate::ssr::{auth::require_user, state::AppState, store::Audit};
    let user = require_user().await?;
    let name = ClusterName::parse(&name)?;
    let state = AppState::current()?;
    let audit = Audit::by(
        &user,
        "cluster.rename",
        format!("cluster {id}"),
        name.as_str(),
    );
    state
        .store
        .rename_cluster(user.account_id, id, name.as_str(), audit)
        .await
        .map_err(cluster_error)
}

/// Deletes a cluster that has no servers left.
#[server(prefix = "/api", endpoint = "delete_cluster")]
pub async fn delete_cluster(id: i64) -> Result<(), AppError> {
    use crate::ssr::{auth::require_user, state::AppState, store::Audit};
    let user = require_user().await?;
    let state = AppState::current()?;
    let audit = Audit::by(&user, "cluster.delete", format!("cluster {id}"), "");
    state
        .store
        .delete_cluster(user.account_id, id, audit)
        .await
        .map_err(cluster_error)
}

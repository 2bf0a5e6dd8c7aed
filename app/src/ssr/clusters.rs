//! Clusters: named groups of an account's servers that share CPS and channel budgets,
//! dialogs and registrations: creating, renaming and deleting one, each written with its
//! audit row. Membership is part of a server's configuration ([`super::config`]); nodes know
//! a cluster by its members, so these changes have nothing to push.

use super::state::AppState;
use super::store::{Audit, ClusterError, SessionUser};
use crate::error::AppError;
use crate::model::ClusterName;

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

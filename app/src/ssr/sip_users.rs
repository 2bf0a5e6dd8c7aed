//! SIP users, the phones that register to the account's servers: creating one, resetting
//! its password, changing its keep-alive, deleting it. Each change is written with its
//! audit row, then copied into the nodes' [`super::directory`], so the next REGISTER sees
//! it.

use super::state::AppState;
use super::store::{Audit, SessionUser};
use crate::error::AppError;
use crate::model::KeepAlive;

/// Creates a SIP user in the user's account; returns its id. A username the account has
/// already is a field error.
pub async fn create(
    state: &AppState,
    user: &SessionUser,
    username: &str,
    password: &str,
    keepalive: KeepAlive,
) -> Result<i64, AppError> {
    let audit = Audit::by(user, "sip_user.create", username, "");
    let id = state
        .store
        .create_sip_user(
            user.account_id,
            username,
            password,
            keepalive.as_str(),
            audit,
        )
        .await?
        .ok_or_else(|| {
            AppError::field(
                "username",
                "You have a SIP user with this username already.",
            )
        })?;
    state.directory.reload(&state.store).await?;
    Ok(id)
}

/// Sets a new password on one of the account's SIP users.
pub async fn reset_password(
    state: &AppState,
    user: &SessionUser,
    id: i64,
    password: &str,
) -> Result<(), AppError> {
    let audit = Audit::by(
        user,
        "sip_user.reset_password",
        format!("sip user {id}"),
        "",
    );
    if !state
        .store
        .reset_sip_password(user.account_id, id, password, audit)
        .await?
    {
        return Err(AppError::NotFound);
    }
    state.directory.reload(&state.store).await?;
    Ok(())
}

/// Changes how one of the account's SIP users' contacts are kept alive.
pub async fn set_keepalive(
    state: &AppState,
    user: &SessionUser,
    id: i64,
    mode: KeepAlive,
) -> Result<(), AppError> {
    let audit = Audit::by(
        user,
        "sip_user.keepalive",
        format!("sip user {id}"),
        mode.as_str(),
    );
    if !state
        .store
        .set_sip_keepalive(user.account_id, id, mode.as_str(), audit)
        .await?
    {
        return Err(AppError::NotFound);
    }
    state.directory.reload(&state.store).await?;
    Ok(())
}

/// Deletes one of the account's SIP users.
pub async fn delete(state: &AppState, user: &SessionUser, id: i64) -> Result<(), AppError> {
    state
        .store
        .delete_sip_user(user.account_id, id, |username| {
            Audit::by(user, "sip_user.delete", username, "")
        })
        .await?
        .ok_or(AppError::NotFound)?;
    state.directory.reload(&state.store).await?;
    Ok(())
}

//! The operator's tools. Every function here answers "not found" to anyone but the operator,
//! so a provider cannot even tell they exist.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{AccountRow, NodeReleaseView};

#[cfg(feature = "ssr")]
async fn require_operator() -> Result<crate::ssr::store::SessionUser, AppError> {
    let user = crate::ssr::auth::require_user().await?;
    if user.is_operator {
        Ok(user)
    } else {
        Err(AppError::NotFound)
    }
}

/// What a credit or a debit starts with: the operator, an amount above zero, an account
/// that exists.
#[cfg(feature = "ssr")]
async fn balance_change(
    account_id: crate::ssr::store::AccountId,
    amount: &str,
) -> Result<
    (
        crate::ssr::store::SessionUser,
        crate::ssr::state::AppState,
        crate::model::Usd,
    ),
    AppError,
> {
    let operator = require_operator().await?;
    let amount = crate::model::Usd::parse(amount)?;
    if amount.0 == 0 {
        return Err(AppError::field("amount", "Enter an amount above zero."));
    }
    let state = crate::ssr::state::AppState::current()?;
    if !state.store.account_exists(account_id).await? {
        return Err(AppError::NotFound);
    }
    Ok((operator, state, amount))
}

#[server(prefix = "/api", endpoint = "list_accounts")]
pub async fn list_accounts() -> Result<Vec<AccountRow>, AppError> {
    use crate::model::Usd;
    use crate::ssr::state::AppState;
    require_operator().await?;
    let accounts = AppState::current()?.store.accounts().await?;
    Ok(accounts
        .into_iter()
        .map(|a| AccountRow {
            id: a.id.get(),
            company: a.company,
            email: a.email,
            balance: Usd(a.balance_cents),
            servers: a.servers,
        })
        .collect())
}

/// Credits a provider account (a top-up received). Recorded in the audit log with the
/// operator's user.
#[server(prefix = "/api", endpoint = "credit_account")]
pub async fn credit_account(account_id: i64, amount: String) -> Result<(), AppError> {
    use crate::ssr::store::{AccountId, Audit};
    let account_id = AccountId::new(account_id);
    let (operator, state, amount) = balance_change(account_id, &amount).await?;
    state
        .store
        .credit(account_id, amount, |balance| {
            Audit::by_operator(
                &operator,
                Some(account_id),
                "account.credit",
                format!("account {account_id}"),
                format!("{amount} credited by {}; balance {balance}", operator.email),
            )
        })
        .await?;
    Ok(())
}

/// Takes an amount from a provider account's balance: the operator's correction of a
/// mistaken credit, or a charge made outside the console. Refused, with nothing changed,
/// when the balance is smaller than the amount (a balance never goes below zero). Recorded
/// in the audit log with the operator's user. A server whose period ends after a debit is
/// renewed or expired on what is left, as after any other change of balance.
#[server(prefix = "/api", endpoint = "debit_account")]
pub async fn debit_account(account_id: i64, amount: String) -> Result<(), AppError> {
    use crate::ssr::store::{AccountId, Audit};
    let account_id = AccountId::new(account_id);
    let (operator, state, amount) = balance_change(account_id, &amount).await?;
    let debited = state
        .store
        .debit(account_id, amount, |balance| {
            Audit::by_operator(
                &operator,
                Some(account_id),
                "account.debit",
                format!("account {account_id}"),
                format!("{amount} debited by {}; balance {balance}", operator.email),
            )
        })
        .await?;
    if debited.is_none() {
        let balance = state.store.balance(account_id).await?;
        return Err(AppError::field(
            "amount",
            format!("The balance is {balance}: a debit cannot take it below zero."),
        ));
    }
    Ok(())
}

/// Adds a media relay to a zone.
#[server(prefix = "/api", endpoint = "add_rtp_server")]
pub async fn add_rtp_server(ip: String, aliases: String, zone: String) -> Result<(), AppError> {
    use crate::model::ServerIp;
    use crate::ssr::{state::AppState, store::Audit};
    let operator = require_operator().await?;
    let ip = ServerIp::parse(&ip)?;
    let aliases: Vec<&str> = aliases
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if aliases.iter().any(|a| {
        a.len() > 64
            || a.chars()
                .any(|c| !(c.is_ascii_alphanumeric() || ".-_".contains(c)))
    }) {
        return Err(AppError::field(
            "aliases",
            "Aliases are names of letters, digits, dots and dashes, separated by commas.",
        ));
    }
    let state = AppState::current()?;
    if state.store.zone(zone.trim()).await?.is_none() {
        return Err(AppError::field("zone", "Choose one of the zones."));
    }
    let audit = Audit::by_operator(&operator, None, "rtp.add", ip.to_string(), zone.trim());
    if !state
        .store
        .add_rtp_server(&ip.to_string(), &aliases.join(", "), zone.trim(), audit)
        .await?
    {
        return Err(AppError::field("ip", "This address is listed already."));
    }
    Ok(())
}

#[server(prefix = "/api", endpoint = "remove_rtp_server")]
pub async fn remove_rtp_server(ip: String) -> Result<(), AppError> {
    use crate::ssr::{state::AppState, store::Audit};
    let operator = require_operator().await?;
    let state = AppState::current()?;
    let audit = Audit::by_operator(&operator, None, "rtp.remove", ip.trim(), "");
    if !state.store.remove_rtp_server(ip.trim(), audit).await? {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// The node release nodes get when they start.
#[server(prefix = "/api", endpoint = "node_release")]
pub async fn node_release() -> Result<NodeReleaseView, AppError> {
    use crate::ssr::state::AppState;
    require_operator().await?;
    let release = AppState::current()?.engine.release();
    Ok(NodeReleaseView {
        revision: release.revision,
        keepalive_seconds: release.keepalive.interval.as_secs(),
    })
}

/// Publishes a new node release: new node settings (the NAT keep-alive interval) for every
/// node started from now on. Running nodes keep theirs, and their servers show a pending
/// update until updated (by hand, or by Auto Upgrade once they carry no calls).
#[server(prefix = "/api", endpoint = "publish_node_release")]
pub async fn publish_node_release(keepalive_seconds: String) -> Result<NodeReleaseView, AppError> {
    use crate::ssr::{state::AppState, store::Audit};
    use sip_engine::KeepAliveSettings;
    let operator = require_operator().await?;
    let seconds = keepalive_seconds
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| (5..=3600).contains(s))
        .ok_or_else(|| {
            AppError::field(
                "keepalive_seconds",
                "Enter a whole number of seconds from 5 to 3600.",
            )
        })?;
    let state = AppState::current()?;
    let current = state.engine.release();
    let keepalive = KeepAliveSettings {
        interval: std::time::Duration::from_secs(seconds),
        ..current.keepalive
    };
    // Stored first: a release the store refused is not published.
    let revision = current.revision + 1;
    let audit = Audit::by_operator(
        &operator,
        None,
        "node.release",
        format!("release {revision}"),
        format!(
            "keep-alive every {seconds} s, published by {}",
            operator.email
        ),
    );
    state
        .store
        .publish_release(revision as i64, seconds as i64, operator.user_id, audit)
        .await?;
    let release = state.engine.publish(keepalive);
    // Every account's pages learn that their servers have an update pending.
    for account in state.store.accounts().await? {
        state.monitor.changed(account.id, None);
    }
    Ok(NodeReleaseView {
        revision: release.revision,
        keepalive_seconds: seconds,
    })
}

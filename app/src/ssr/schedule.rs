//! Work that happens on time, not on request: renewing or expiring servers whose period
//! ended, activating resizes whose time has come, and Auto Upgrade (a server with a pending
//! update and Auto Upgrade on is updated once its node carries no calls).
//!
//! Billing (PRODUCT.md is silent on prices; this is our choice): a server's trial is free;
//! after it, each period of [`PERIOD_DAYS`] days costs [`period_price`], taken from the
//! account's balance when the period ends. A server the balance cannot renew becomes
//! Expired: its node keeps answering (so monitoring and a quick return work) but refuses new
//! calls with 503. A top-up renews it at the next run, back to what it was before it
//! expired: a server that was Stopped stays Stopped, one whose node ran is Running again
//! once its node answers.

use std::time::Duration;

use super::config;
use super::fleet;
use super::state::AppState;
use super::store::Audit;
use crate::error::AppError;
use crate::model::{ServerStatus, Usd};

/// Days one paid period lasts.
pub const PERIOD_DAYS: i64 = 30;

/// What one period of one server costs: the same $20 the deploy rule counts per server.
pub fn period_price() -> Usd {
    Usd::dollars(20)
}

/// One pass over everything that is due at `now`.
pub async fn run_once(state: &AppState, now: i64) -> Result<(), AppError> {
    for server in state.store.servers_due(now).await? {
        let subject = format!("server {}", server.id);
        let audit = Audit::by_platform(
            server.account_id,
            "server.renew",
            &subject,
            period_price().to_string(),
        );
        let renewed = state
            .store
            .renew(server.id, period_price(), PERIOD_DAYS, audit)
            .await?;
        let status = server.status();
        if renewed {
            if status == ServerStatus::Expired {
                // A node that does not come back leaves its server Stopped (with the reason
                // logged); the pass goes on with the other servers.
                if let Err(error) = fleet::restore_after_renewal(state, &server).await {
                    tracing::warn!(server = server.id, %error, "renewed server not restored");
                }
            }
            state.monitor.changed(server.account_id, Some(server.id));
        } else if status != ServerStatus::Expired {
            let audit = Audit::by_platform(
                server.account_id,
                "server.expire",
                subject,
                "balance could not renew it",
            );
            state.store.set_expired(server.id, status, audit).await?;
            state.monitor.forget(server.id);
            state.monitor.changed(server.account_id, Some(server.id));
            config::push(state, server.account_id, server.id).await?;
        }
    }
    for server in state.store.resizes_due(now).await? {
        let Some(channels) = server.pending_channels else {
            continue;
        };
        let audit = Audit::by_platform(
            server.account_id,
            "server.resize.active",
            format!("server {}", server.id),
            format!("{channels} channels"),
        );
        state.store.set_channels(server.id, channels, audit).await?;
        // The node enforces the new channel count from now on.
        config::push(state, server.account_id, server.id).await?;
        state.monitor.changed(server.account_id, Some(server.id));
    }
    for server in state.store.servers_with_nodes().await? {
        if !fleet::update_pending(state, server.id) {
            continue;
        }
        let auto = state
            .engine
            .config(server.id)
            .is_some_and(|config| config.auto_upgrade);
        let idle = state
            .engine
            .call_figures(server.id)
            .is_some_and(|calls| calls.channels_in_use == 0);
        if auto && idle {
            // The update is on the node, not a stored row: recorded before it runs.
            state
                .store
                .record(Audit::by_platform(
                    server.account_id,
                    "server.update",
                    format!("server {}", server.id),
                    "Auto Upgrade: the node carried no calls",
                ))
                .await?;
            fleet::update(state, &server).await?;
        }
    }
    Ok(())
}

/// Runs [`run_once`] every `interval` for as long as the process lives.
pub fn spawn(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = run_once(&state, super::now()).await {
                tracing::error!(%error, "scheduled work failed");
            }
        }
    })
}

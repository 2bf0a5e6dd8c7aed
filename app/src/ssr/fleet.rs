//! Servers as the control plane runs them: deploying, bringing nodes up, restoring them at
//! start. A server is *Running* only once its node has answered a real SIP OPTIONS ping.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use sip_engine::{options_ping, NodeRole, NodeSpec, ProbeTransport};

use super::now;
use super::state::AppState;
use super::store::{AccountId, Audit, NewServer, ServerRecord, SessionUser, ZoneRecord};
use crate::error::AppError;
use crate::model::{
    deploy_requirement, Alias, Channels, Checklist, Cps, ServerCommand, ServerKind, ServerRow,
    ServerStatus, Usd,
};

/// Channels and CPS a server gets when the deploy form does not say.
pub const DEFAULT_CHANNELS: u32 = 100;
pub const DEFAULT_CPS: u32 = 10;

/// How long the control plane waits for a new node's first answer before calling the
/// deploy failed. Nodes start in milliseconds; this only absorbs a loaded machine.
const FIRST_ANSWER: Duration = Duration::from_secs(3);

/// What a deploy asks for, parsed.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub zone: String,
    pub kind: ServerKind,
    /// One of the account's clusters (checked here, not trusted from the form).
    pub cluster_id: Option<i64>,
    /// `None` picks the next free `<kind>-<n>`.
    pub alias: Option<Alias>,
    pub channels: Channels,
    pub cps: Cps,
}

/// The Getting Started checklist of an account.
pub async fn checklist(state: &AppState, account_id: AccountId) -> Result<Checklist, sqlx::Error> {
    let record = state.store.checklist(account_id).await?;
    Ok(Checklist {
        company: record.company,
        address: record.address.unwrap_or_default(),
        country: record.country.unwrap_or_default(),
        company_details: record.company_details_at.is_some(),
        first_top_up: record.first_top_up_at.is_some(),
        terms_accepted: record.terms_accepted_at.is_some(),
    })
}

/// Deploys a server for the signed-in user's account: checks the checklist and the balance
/// rule, takes the zone's next free address, stores the server as Installing, starts its
/// node and marks it Running once the node answers. A refused deploy stores nothing.
pub async fn deploy(
    state: &AppState,
    user: &SessionUser,
    request: DeployRequest,
) -> Result<ServerRow, AppError> {
    let store = &state.store;
    let record = {
        let _one_at_a_time = state.deploy_lock.lock().await;
        let list = checklist(state, user.account_id).await?;
        if !list.complete() {
            return Err(AppError::Refused(format!(
                "Complete the Getting Started checklist before deploying: {} still open.",
                list.missing().join(", ")
            )));
        }
        if let Some(cluster) = request.cluster_id {
            if store
                .cluster_name(user.account_id, cluster)
                .await?
                .is_none()
            {
                return Err(AppError::field("cluster", "Choose one of your clusters."));
            }
        }
        let zone = store
            .zone(&request.zone)
            .await?
            .ok_or_else(|| AppError::field("zone", "Choose one of the zones listed."))?;
        let others = store.count_servers(user.account_id).await?;
        let needed = deploy_requirement(others);
        let balance = Usd(user.balance_cents);
        if balance < needed {
            return Err(AppError::Refused(format!(
                "Deploying needs {needed} of available balance ($20 + $20 × {others} other \
                 server{s} in your account); you have {balance}. Top up {missing} to deploy.",
                s = if others == 1 { "" } else { "s" },
                missing = Usd(needed.0 - balance.0),
            )));
        }
        let alias = match &request.alias {
            Some(alias) if store.alias_taken(user.account_id, alias.as_str()).await? => {
                return Err(AppError::field(
                    "alias",
                    "Another of your servers has this alias.",
                ));
            }
            Some(alias) => alias.as_str().to_string(),
            None => next_alias(state, user.account_id, request.kind).await?,
        };
        let ip = next_free_address(state, &zone).await?;
        let expires_at = now() + state.settings.trial_seconds();
        let new = NewServer {
            account_id: user.account_id,
            alias: &alias,
            zone: &zone.name,
            kind: request.kind,
            cluster_id: request.cluster_id,
            ip: &ip.to_string(),
            channels: request.channels.get(),
            cps: request.cps.get(),
            expires_at,
        };
        let detail = format!(
            "{} {} in {} at {ip}",
            request.kind.label(),
            alias,
            zone.name
        );
        let id = store
            .insert_server(&new, |id| {
                Audit::by(user, "server.deploy", format!("server {id}"), detail)
            })
            .await?;
        store
            .server(user.account_id, id)
            .await?
            .ok_or(AppError::Internal)?
    };
    // The new address is a domain phones can now register in.
    state.directory.reload(store).await?;
    bring_up(state, &record).await?;
    // The cluster's other members reach the new member's registrations, and it theirs.
    if let Some(cluster) = request.cluster_id {
        for (member, ..) in store.cluster_members(user.account_id, cluster).await? {
            super::config::push(state, user.account_id, member).await?;
        }
    }
    let record = store
        .server(user.account_id, record.id)
        .await?
        .ok_or(AppError::Internal)?;
    Ok(server_row(state, &record))
}

/// Starts a stored server's node and waits for its first OPTIONS answer. The server ends
/// Running when it answered, Stopped (with the reason in the error) when it did not.
pub async fn bring_up(state: &AppState, server: &ServerRecord) -> Result<Duration, AppError> {
    let spec = node_spec(server)?;
    let target = SocketAddr::new(spec.ip, spec.udp_port);
    if let Err(error) = state.engine.start(spec).await {
        tracing::warn!(server = server.id, %error, "node did not start");
        mark(
            state,
            server.account_id,
            server.id,
            ServerStatus::Stopped,
            None,
        )
        .await?;
        return Err(AppError::Refused(format!(
            "The server's node could not start ({error}). It is stored as Stopped."
        )));
    }
    super::config::push(state, server.account_id, server.id).await?;
    match options_ping(target, ProbeTransport::Udp, FIRST_ANSWER).await {
        Ok(rtt) => {
            mark(
                state,
                server.account_id,
                server.id,
                // An expired server's node runs (it must answer 503) but stays Expired.
                if server.status() == ServerStatus::Expired {
                    ServerStatus::Expired
                } else {
                    ServerStatus::Running
                },
                Some(state.engine.build()),
            )
            .await?;
            tracing::info!(server = server.id, %target, ?rtt, "node answered OPTIONS");
            let control = super::monitor::control_probe(state, server.id);
            let health = state
                .monitor
                .measure(target.ip(), target.port(), control)
                .await;
            state.monitor.record(server.id, health);
            state.monitor.changed(server.account_id, Some(server.id));
            Ok(rtt)
        }
        Err(error) => {
            state.engine.stop(server.id).await;
            mark(
                state,
                server.account_id,
                server.id,
                ServerStatus::Stopped,
                None,
            )
            .await?;
            Err(AppError::Refused(format!(
                "The server's node did not answer a SIP OPTIONS ping ({error}). It is stored as Stopped."
            )))
        }
    }
}

/// Stores a server's new status and tells the account's live pages. A status other than
/// Running drops the last health measurement: it described a node that no longer runs.
pub(crate) async fn mark(
    state: &AppState,
    account_id: AccountId,
    id: i64,
    status: ServerStatus,
    engine_build: Option<&str>,
) -> Result<(), sqlx::Error> {
    state.store.set_status(id, status, engine_build).await?;
    if status != ServerStatus::Running {
        state.monitor.forget(id);
    }
    state.monitor.changed(account_id, Some(id));
    Ok(())
}

/// Runs an Actions-menu action on one of the account's servers. Every action acts on the
/// node itself; the stored status follows what the node did.
///
/// OS Cycle drains first: the node refuses new calls (503) while its active calls finish,
/// for up to `drain_seconds` (Leptos.toml), then restarts; the action returns when the node
/// is back; calls still up when the time is over end as with Restart. Stop, Restart,
/// Install and an update end the node's calls with a BYE to both ends of each (the node
/// keeps each call's ends for that), then stop it. Power Cycle stops it at once: its calls
/// drop without a word to either end, as a power cut would.
pub async fn run_action(
    state: &AppState,
    user: &SessionUser,
    id: i64,
    action: ServerCommand,
) -> Result<ServerRow, AppError> {
    let store = &state.store;
    let server = store
        .server(user.account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if server.status() == ServerStatus::Expired && action != ServerCommand::Stop {
        return Err(AppError::Refused(
            "This server has expired: top up your balance to renew it before starting it again."
                .into(),
        ));
    }
    // The action is on the node, not a stored row: recorded before it runs, so a node that
    // fails midway still leaves the attempt in the log.
    store
        .record(Audit::by(
            user,
            format!("server.{}", action.as_str()),
            format!("server {id}"),
            &server.ip,
        ))
        .await?;
    match action {
        ServerCommand::Stop => {
            state.engine.shut_down(id, "Server stopped").await;
            mark(state, user.account_id, id, ServerStatus::Stopped, None).await?;
        }
        ServerCommand::Start => {
            bring_up(state, &server).await?;
        }
        ServerCommand::Restart | ServerCommand::OsCycle | ServerCommand::PowerCycle => {
            mark(state, user.account_id, id, ServerStatus::Rebooting, None).await?;
            if action == ServerCommand::OsCycle {
                drain(state, id).await;
            }
            if action == ServerCommand::PowerCycle {
                state.engine.stop(id).await;
            } else {
                state.engine.shut_down(id, "Server restart").await;
            }
            bring_up(state, &server).await?;
        }
        ServerCommand::Update if !update_pending(state, id) => {
            return Err(AppError::Refused(
                "No update is pending on this server: its node runs the current release.".into(),
            ));
        }
        ServerCommand::Update => update(state, &server).await?,
        // A fresh node from the standard image; the server's configuration belongs to the
        // console and `bring_up` pushes it onto the new node.
        ServerCommand::Install => {
            mark(state, user.account_id, id, ServerStatus::Installing, None).await?;
            state.engine.shut_down(id, "Server reinstall").await;
            bring_up(state, &server).await?;
        }
    }
    let server = store
        .server(user.account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(server_row(state, &server))
}

/// Gives a renewed server back the state it had before it expired: a server that was
/// Stopped stays Stopped (its node, if one somehow runs, is stopped); any other ends
/// Running only once its node answers an OPTIONS ping, started again when it does not run
/// or does not answer (and Stopped, with the reason, when it still does not).
pub async fn restore_after_renewal(
    state: &AppState,
    server: &ServerRecord,
) -> Result<(), AppError> {
    let (account, id) = (server.account_id, server.id);
    if server.status_before_expiry() == ServerStatus::Stopped {
        if state.engine.is_running(id) {
            state.engine.shut_down(id, "Server stopped").await;
        }
        mark(state, account, id, ServerStatus::Stopped, None).await?;
        return Ok(());
    }
    if state.engine.is_running(id) {
        let spec = node_spec(server)?;
        mark(state, account, id, ServerStatus::Rebooting, None).await?;
        // Without Expired the pushed configuration no longer refuses calls.
        super::config::push(state, account, id).await?;
        let target = SocketAddr::new(spec.ip, spec.udp_port);
        if options_ping(target, ProbeTransport::Udp, FIRST_ANSWER)
            .await
            .is_ok()
        {
            mark(state, account, id, ServerStatus::Running, None).await?;
            return Ok(());
        }
        state.engine.stop(id).await;
    }
    mark(state, account, id, ServerStatus::Rebooting, None).await?;
    let record = state
        .store
        .server(account, id)
        .await?
        .ok_or(AppError::NotFound)?;
    bring_up(state, &record).await?;
    Ok(())
}

/// Deletes one of the account's servers. Refused, with the reason, while another server's
/// Capacity Failover hands calls to it, or while it is the only Dispatcher of a cluster that
/// has Switches (they would be left without a way in). Otherwise its node ends its calls
/// with a BYE to both ends (as Stop does) and stops; the server's row goes, and with it its
/// configuration, its address (free for the next deploy) and its billing (nothing is due
/// for a server that is gone); its registrations are removed; the audit log keeps its
/// history and records the deletion. The account's other servers get their configuration
/// again: their cluster peers and location-sharing peers may have changed.
pub async fn delete(state: &AppState, user: &SessionUser, id: i64) -> Result<(), AppError> {
    use sip_engine::LocationStore;

    let store = &state.store;
    let account = user.account_id;
    let server = store.server(account, id).await?.ok_or(AppError::NotFound)?;
    let config = store
        .server_config(account, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let sources = store.failover_sources(account, id).await?;
    if !sources.is_empty() {
        return Err(AppError::Refused(format!(
            "{} cannot be deleted: Capacity Failover of {} hands calls to it. Choose another \
             failover member there first.",
            server.alias,
            sources.join(", ")
        )));
    }
    if let (ServerKind::Dispatcher, Some(cluster)) = (server.kind(), config.cluster_id) {
        let members = store.cluster_members(account, cluster).await?;
        let is = |kind: ServerKind| {
            move |m: &&(i64, String, String, String)| m.0 != id && m.3 == kind.as_str()
        };
        let dispatchers = members.iter().filter(is(ServerKind::Dispatcher)).count();
        let switches = members.iter().filter(is(ServerKind::Switch)).count();
        if dispatchers == 0 && switches > 0 {
            return Err(AppError::Refused(format!(
                "{} cannot be deleted: it is the only Dispatcher of cluster {}, which still has \
                 {switches} Switch{es}. Deploy another Dispatcher into the cluster, or move the \
                 Switches out, first.",
                server.alias,
                server.cluster.as_deref().unwrap_or_default(),
                es = if switches == 1 { "" } else { "es" },
            )));
        }
    }
    state.engine.shut_down(id, "Server deleted").await;
    let mut domains = vec![server.ip.as_str()];
    domains.extend(config.fqdn.as_deref());
    let detail = format!(
        "{} {} at {}",
        server.kind().label(),
        server.alias,
        server.ip
    );
    let audit = Audit::by(user, "server.delete", format!("server {id}"), detail);
    if !store.delete_server(account, id, &domains, audit).await? {
        return Err(AppError::NotFound);
    }
    let now = std::time::SystemTime::now();
    for domain in &domains {
        for (aor, _) in state.locations.in_domain(domain, now) {
            let _ = state.locations.remove_all(&aor);
        }
    }
    state.directory.reload(store).await?;
    state.monitor.forget(id);
    // Live pages drop its row.
    state.monitor.changed(account, Some(id));
    for other in store.list_servers(account).await? {
        super::config::push(state, account, other.id).await?;
    }
    Ok(())
}

/// Restarts a server's node on the current node release (status Updating meanwhile).
pub async fn update(state: &AppState, server: &ServerRecord) -> Result<(), AppError> {
    mark(
        state,
        server.account_id,
        server.id,
        ServerStatus::Updating,
        None,
    )
    .await?;
    state.engine.shut_down(server.id, "Server update").await;
    bring_up(state, server).await?;
    Ok(())
}

/// Refuses new calls on a running node and waits until its calls have ended, or
/// `drain_seconds` have passed.
async fn drain(state: &AppState, id: i64) {
    let Some(mut config) = state.engine.config(id) else {
        return;
    };
    config.refusing = Some("draining before an OS Cycle".into());
    state.engine.configure(id, config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(state.settings.drain_seconds);
    while state
        .engine
        .call_figures(id)
        .is_some_and(|calls| calls.channels_in_use > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the node of every server stored as Running (or caught mid-install by a restart).
/// One that fails is logged and left Stopped; the rest still start.
pub async fn restore_nodes(state: &AppState) -> Result<usize, AppError> {
    let mut started = 0;
    for server in state.store.servers_to_restore().await? {
        match bring_up(state, &server).await {
            Ok(_) => started += 1,
            Err(error) => tracing::error!(server = server.id, %error, "node not restored"),
        }
    }
    Ok(started)
}

/// The node spec a stored server runs with.
pub fn node_spec(server: &ServerRecord) -> Result<NodeSpec, AppError> {
    let ip: IpAddr = server.ip.parse().map_err(|_| AppError::Internal)?;
    let port = |p: i64| u16::try_from(p).map_err(|_| AppError::Internal);
    Ok(NodeSpec {
        id: server.id,
        ip,
        udp_port: port(server.udp_port)?,
        tcp_port: port(server.tcp_port)?,
        role: match server.kind() {
            ServerKind::Dispatcher => NodeRole::Dispatcher,
            ServerKind::Switch => NodeRole::Switch,
        },
    })
}

/// The list's view of a stored server, with the monitor's latest measurement and what its
/// node carries now (channels in use, calls in the last second: the node's own counters,
/// the same ones its limits are checked against).
pub fn server_row(state: &AppState, server: &ServerRecord) -> ServerRow {
    let health = match server.status() {
        ServerStatus::Running => state.monitor.health(server.id),
        _ => None,
    };
    let calls = state.engine.call_figures(server.id).unwrap_or_default();
    ServerRow {
        health,
        channels_in_use: calls.channels_in_use,
        cps_now: calls.cps_now,
        pending_update: update_pending(state, server.id),
        ..row(server)
    }
}

/// Whether a running node runs an older node release than the current one.
pub fn update_pending(state: &AppState, id: i64) -> bool {
    state
        .engine
        .node_release(id)
        .is_some_and(|running| running.revision < state.engine.release().revision)
}

fn row(server: &ServerRecord) -> ServerRow {
    ServerRow {
        id: server.id,
        alias: server.alias.clone(),
        ip: server.ip.clone(),
        zone: server.zone.clone(),
        kind: server.kind(),
        cluster: server.cluster.clone(),
        channels_in_use: 0,
        channels: server.channels as u32,
        cps_now: 0,
        cps: server.cps as u32,
        expires: super::date(server.expires_at),
        status: server.status(),
        health: None,
        pending_update: false,
        pending_resize: server
            .pending_channels
            .zip(server.pending_channels_at)
            .map(|(channels, at)| (channels as u32, super::date_time(at))),
    }
}

/// The zone's lowest address that no server holds.
async fn next_free_address(state: &AppState, zone: &ZoneRecord) -> Result<Ipv4Addr, AppError> {
    let first: Ipv4Addr = zone.pool_first.parse().map_err(|_| AppError::Internal)?;
    let last: Ipv4Addr = zone.pool_last.parse().map_err(|_| AppError::Internal)?;
    let used = state.store.used_ips().await?;
    (u32::from(first)..=u32::from(last))
        .map(Ipv4Addr::from)
        .find(|ip| !used.contains(&ip.to_string()))
        .ok_or_else(|| {
            AppError::field(
                "zone",
                format!("Zone {} has no free addresses left.", zone.name),
            )
        })
}

/// `switch-1`, `switch-2`… the first free one in the account.
async fn next_alias(
    state: &AppState,
    account_id: AccountId,
    kind: ServerKind,
) -> Result<String, AppError> {
    let base = state.store.count_servers(account_id).await? + 1;
    for n in base..base + 1000 {
        let alias = format!("{}-{n}", kind.as_str());
        if !state.store.alias_taken(account_id, &alias).await? {
            return Ok(alias);
        }
    }
    Err(AppError::Internal)
}

/// Channels from which a resize needs a reboot (PRODUCT.md: "1001 or more").
pub const REBOOT_CHANNELS: u32 = 1001;

/// Resizes a server's channels. Below [`REBOOT_CHANNELS`] the new count becomes active after
/// the configured delay; at or above it the server reboots now, which drops every call, so
/// the caller must have confirmed that.
pub async fn resize(
    state: &AppState,
    user: &SessionUser,
    id: i64,
    channels: Channels,
    reboot_confirmed: bool,
) -> Result<ServerRow, AppError> {
    let store = &state.store;
    let server = store
        .server(user.account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if channels.get() >= REBOOT_CHANNELS {
        if !reboot_confirmed {
            return Err(AppError::field(
                "channels",
                "1001 channels or more reboot the server at once and drop all its calls: confirm to go ahead.",
            ));
        }
        let audit = Audit::by(
            user,
            "server.resize.reboot",
            format!("server {id}"),
            format!("{channels} channels"),
        );
        store
            .set_channels(id, i64::from(channels.get()), audit)
            .await?;
        mark(state, user.account_id, id, ServerStatus::Rebooting, None).await?;
        state.engine.shut_down(id, "Server resize").await;
        bring_up(state, &server).await?;
    } else {
        let active_at = super::now() + i64::from(state.settings.resize_activation_minutes) * 60;
        let audit = Audit::by(
            user,
            "server.resize",
            format!("server {id}"),
            format!(
                "{channels} channels, active at {}",
                super::date_time(active_at)
            ),
        );
        store
            .schedule_resize(user.account_id, id, channels.get(), active_at, audit)
            .await?;
        state.monitor.changed(user.account_id, Some(id));
    }
    let server = store
        .server(user.account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(server_row(state, &server))
}

//! Server configuration: what the detail page edits, checked, stored, and pushed to the
//! node at once. The node's own report ([`sip_engine::Engine::config`]) is what the page
//! compares against to show a pending update.

use std::net::{IpAddr, SocketAddr};

use sip_engine::{
    CallLimits, DigestAlgorithms, DispatchConfig, NodeConfig, StartError, SwitchTarget, TlsSpec,
};

use super::fleet::node_spec;
use super::state::AppState;
use super::store::{AccountId, Audit, ConfigRecord, ServerRecord, SessionUser};
use crate::error::AppError;
use crate::model::{
    Balancing, DataZone, DigestChoice, Dispatching, ServerConfig, ServerConfigView, ServerKind,
    ServerStatus, TraceLine, TraceView,
};

/// What a node runs for a stored server and its configuration: its channels and CPS as
/// limits, its cluster (whose members share one call budget and each other's
/// registrations), its failover member's address, and Restrict Direct's list of the
/// cluster's dispatchers.
pub async fn node_config(
    state: &AppState,
    server: &ServerRecord,
    record: &ConfigRecord,
) -> Result<NodeConfig, sqlx::Error> {
    let account_id = server.account_id;
    let members = match record.cluster_id {
        Some(cluster) => state.store.cluster_members(account_id, cluster).await?,
        None => Vec::new(),
    };
    let peers = members.iter().filter(|(member, ..)| *member != server.id);
    let allowed_sources = match record.restrict_direct {
        true => peers
            .clone()
            .filter(|(_, _, _, kind)| kind == ServerKind::Dispatcher.as_str())
            .filter_map(|(_, _, ip, _)| ip.parse::<IpAddr>().ok())
            .collect(),
        false => Vec::new(),
    };
    let cluster_peers = peers
        .filter_map(|(_, _, ip, _)| ip.parse::<IpAddr>().ok())
        .collect();
    // A failover target must be in the same cluster (checked when saved; a target that left
    // the cluster since is not used).
    let failover = match (record.failover_enabled, record.failover_target_id) {
        (true, Some(target)) if members.iter().any(|(member, ..)| *member == target) => state
            .store
            .server(account_id, target)
            .await?
            .and_then(|target| {
                let ip = target.ip.parse::<IpAddr>().ok()?;
                Some(SocketAddr::new(ip, u16::try_from(target.udp_port).ok()?))
            }),
        _ => None,
    };
    let sharing_peers = match (record.uac_location_sharing, record.cluster_id) {
        (true, None) => state
            .store
            .location_sharing_servers(account_id)
            .await?
            .into_iter()
            .filter(|(other, _)| *other != server.id)
            .filter_map(|(_, ip)| ip.parse::<IpAddr>().ok())
            .collect(),
        _ => Vec::new(),
    };
    let dispatch = match (server.kind(), record.cluster_id) {
        (ServerKind::Dispatcher, Some(cluster)) => Some(dispatch_config(
            record,
            state.store.cluster_switches(account_id, cluster).await?,
        )),
        _ => None,
    };
    Ok(NodeConfig {
        version: record.config_version,
        interconnect: record.interconnect,
        disable_uac_ping: record.disable_uac_ping,
        uac_location_sharing: record.uac_location_sharing,
        sharing_peers,
        tls_internals: record.tls_internals,
        restrict_direct: record.restrict_direct,
        allowed_sources,
        tcp_sip_trace: record.tcp_sip_trace,
        auto_upgrade: record.auto_upgrade,
        data_zone: record.data_zone.clone(),
        fqdn: record.fqdn.clone(),
        digest: match DigestChoice::parse(&record.digest_algorithms).unwrap_or_default() {
            DigestChoice::Md5ThenSha256 => DigestAlgorithms::Md5ThenSha256,
            DigestChoice::Sha256ThenMd5 => DigestAlgorithms::Sha256ThenMd5,
            DigestChoice::Sha256Only => DigestAlgorithms::Sha256Only,
        },
        uac_auth_username: record.uac_auth_username.clone(),
        uac_registration: uac_registration(record),
        refusing: None,
        limits: Some(CallLimits {
            channels: u32::try_from(server.channels).unwrap_or(0),
            cps: u32::try_from(server.cps).unwrap_or(0),
        }),
        cluster: record.cluster_id,
        cluster_peers,
        failover,
        trace: trace_target(state, server, record),
        dispatch,
    })
}

/// What a Dispatcher balances over: every Switch of its cluster (whatever its state: the
/// Dispatcher's own probes say which answer), with its algorithm and probe settings.
fn dispatch_config(
    record: &ConfigRecord,
    switches: Vec<(i64, String, i64, i64)>,
) -> DispatchConfig {
    let algorithm = match Balancing::parse(&record.balancing).unwrap_or_default() {
        Balancing::RoundRobin => sip_engine::Balancing::RoundRobin,
        Balancing::Weighted => sip_engine::Balancing::Weighted,
        Balancing::LeastChannels => sip_engine::Balancing::LeastChannels,
        Balancing::HashCallId => sip_engine::Balancing::HashCallId,
        Balancing::HashUser => sip_engine::Balancing::HashUser,
    };
    let count = |n: i64| u32::try_from(n).unwrap_or(1).max(1);
    DispatchConfig {
        algorithm,
        switches: switches
            .into_iter()
            .filter_map(|(id, ip, port, weight)| {
                Some(SwitchTarget {
                    id,
                    addr: SocketAddr::new(ip.parse().ok()?, u16::try_from(port).ok()?),
                    weight: count(weight),
                })
            })
            .collect(),
        probe_interval: std::time::Duration::from_secs(count(record.probe_interval).into()),
        probe_failures: count(record.probe_failures),
        probe_successes: count(record.probe_successes),
        any_reg: record.any_reg,
    }
}

/// The server's SIP trace from its data zone's collector ("not found" for another
/// account's server).
pub async fn trace(
    state: &AppState,
    account_id: AccountId,
    id: i64,
) -> Result<TraceView, AppError> {
    let server = state
        .store
        .server(account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let record = state
        .store
        .server_config(account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let zone = DataZone::parse(&record.data_zone).unwrap_or(DataZone::Us);
    let collector = state.traces.zone(zone);
    let agent = u32::try_from(server.id).unwrap_or(u32::MAX);
    let kept = collector.map(|c| c.messages(agent)).unwrap_or_default();
    let over = |tcp: bool| if tcp { "TCP" } else { "UDP" }.to_string();
    Ok(TraceView {
        zone: zone.as_str().to_uppercase(),
        collector: collector.map_or_else(|| "not listening".into(), |c| c.addr.to_string()),
        shipped_over: over(record.tcp_sip_trace),
        messages: kept
            .into_iter()
            .rev()
            .map(|kept| {
                let text = String::from_utf8_lossy(&kept.message.payload).into_owned();
                let at = kept
                    .message
                    .at
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let time = time::OffsetDateTime::from_unix_timestamp(at.as_secs() as i64)
                    .map(|t| {
                        format!(
                            "{:02}:{:02}:{:02}.{:03}",
                            t.hour(),
                            t.minute(),
                            t.second(),
                            at.subsec_millis()
                        )
                    })
                    .unwrap_or_default();
                TraceLine {
                    time,
                    from: kept.message.source.to_string(),
                    to: kept.message.destination.to_string(),
                    first_line: text.lines().next().unwrap_or_default().to_string(),
                    shipped_over: over(kept.over_tcp),
                    text,
                }
            })
            .collect(),
    })
}

/// Where the server's nodes ship their SIP trace: its data zone's collector, over TCP with
/// TCP SIP Trace. `None` (nothing traced) only before the collectors are bound.
fn trace_target(
    state: &AppState,
    server: &ServerRecord,
    record: &ConfigRecord,
) -> Option<sip_engine::TraceTarget> {
    let zone = DataZone::parse(&record.data_zone).unwrap_or(DataZone::Us);
    let collector = state.traces.zone(zone)?.addr;
    Some(sip_engine::TraceTarget {
        collector,
        node: SocketAddr::new(
            server.ip.parse().ok()?,
            u16::try_from(server.udp_port).ok()?,
        ),
        agent: u32::try_from(server.id).ok()?,
        over_tcp: record.tcp_sip_trace,
    })
}

/// The node's upstream registration, for the page.
fn uac_words(status: Option<sip_engine::UacStatus>) -> String {
    use sip_engine::UacStatus;
    match status {
        None | Some(UacStatus::Off) => {
            "UAC Auth: not registering (needs a username, a password and a registrar).".into()
        }
        Some(UacStatus::Registering) => "UAC Auth: registering…".into(),
        Some(UacStatus::Registered { until }) => {
            let at = until
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            format!(
                "UAC Auth: registered upstream until {}.",
                super::date_time(at)
            )
        }
        Some(UacStatus::Failed(why)) => format!("UAC Auth: registration failed ({why})."),
    }
}

/// UAC Auth's upstream registration, when username, password and registrar are all set.
fn uac_registration(record: &ConfigRecord) -> Option<sip_engine::UacRegistration> {
    Some(sip_engine::UacRegistration {
        registrar: record.uac_auth_registrar.as_deref()?.parse().ok()?,
        username: record.uac_auth_username.clone()?,
        password: record.uac_auth_password.clone()?,
    })
}

/// Pushes a server's stored configuration to its node, when the node runs.
pub async fn push(state: &AppState, account_id: AccountId, server_id: i64) -> Result<(), AppError> {
    if !state.engine.is_running(server_id) {
        return Ok(());
    }
    let record = state
        .store
        .server_config(account_id, server_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let server = state
        .store
        .server(account_id, server_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut config = node_config(state, &server, &record).await?;
    if server.status() == ServerStatus::Expired {
        config.refusing = Some("the server's paid period ended".into());
    }
    state.engine.configure(server_id, config);
    if let Err(error) = apply_tls(state, server_id, &record).await {
        tracing::warn!(server = server_id, %error, "SIP over TLS not served");
    }
    apply_control(state, server_id, record.tls_internals).await;
    Ok(())
}

/// TLS Internals: the node's control listener with a certificate from the control plane's
/// authority when on, none when off (the probe then goes to the SIP port over UDP).
async fn apply_control(state: &AppState, server_id: i64, on: bool) {
    let running = state.engine.control_port(server_id).is_some();
    if on == running {
        return;
    }
    let identity = match on {
        true => match state.authority.issue(server_id) {
            Ok(identity) => Some(identity),
            Err(error) => {
                tracing::error!(server = server_id, %error, "no control certificate");
                return;
            }
        },
        false => None,
    };
    if let Err(error) = state.engine.serve_control(server_id, identity).await {
        tracing::warn!(server = server_id, %error, "control listener not served");
    }
}

/// Serves SIP over TLS on the server's node when WebRTC/TLS can work: an FQDN is set and a
/// Server certificate is attached; stops serving it otherwise.
pub async fn apply_tls(
    state: &AppState,
    server_id: i64,
    record: &ConfigRecord,
) -> Result<(), AppError> {
    if !state.engine.is_running(server_id) {
        return Ok(());
    }
    let identity = match record.fqdn {
        Some(_) => state.store.server_tls_identity(server_id).await?,
        None => None,
    };
    let spec = identity.map(|(chain_pem, key_pem)| TlsSpec {
        port: u16::try_from(record.tls_port).unwrap_or(5061),
        chain_pem,
        key_pem,
    });
    state
        .engine
        .serve_tls(server_id, spec)
        .await
        .map_err(|error| AppError::Refused(format!("SIP over TLS could not start: {error}.")))
}

/// The detail page's configuration sections.
pub async fn view(
    state: &AppState,
    account_id: AccountId,
    id: i64,
) -> Result<ServerConfigView, AppError> {
    let record = state
        .store
        .server_config(account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let server = state
        .store
        .server(account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let failover_candidates = match record.cluster_id {
        Some(cluster) => state
            .store
            .cluster_members(account_id, cluster)
            .await?
            .into_iter()
            .filter(|(member, ..)| *member != id)
            .map(|(member, alias, ip, _)| (member, format!("{alias} ({ip})")))
            .collect(),
        None => Vec::new(),
    };
    Ok(ServerConfigView {
        server_id: id,
        config: ServerConfig {
            cluster_id: record.cluster_id,
            interconnect: record.interconnect,
            uac_auth_username: record.uac_auth_username.clone(),
            uac_auth_password_set: record.uac_auth_password.is_some(),
            uac_auth_registrar: record.uac_auth_registrar.clone(),
            fqdn: record.fqdn.clone(),
            auto_upgrade: record.auto_upgrade,
            disable_uac_ping: record.disable_uac_ping,
            uac_location_sharing: record.uac_location_sharing,
            tls_internals: record.tls_internals,
            restrict_direct: record.restrict_direct,
            tcp_sip_trace: record.tcp_sip_trace,
            data_zone: DataZone::parse(&record.data_zone).unwrap_or(DataZone::Us),
            digest_algorithms: DigestChoice::parse(&record.digest_algorithms).unwrap_or_default(),
            udp_port: record.udp_port as u16,
            tcp_port: record.tcp_port as u16,
            tls_port: record.tls_port as u16,
            failover_enabled: record.failover_enabled,
            failover_target_id: record.failover_target_id,
            dispatching: Dispatching {
                balancing: Balancing::parse(&record.balancing).unwrap_or_default(),
                probe_interval: u32::try_from(record.probe_interval).unwrap_or(5),
                probe_failures: u32::try_from(record.probe_failures).unwrap_or(2),
                probe_successes: u32::try_from(record.probe_successes).unwrap_or(2),
                any_reg: record.any_reg,
            },
            weight: u32::try_from(record.weight).unwrap_or(1),
            version: record.config_version,
        },
        kind: server.kind(),
        clusters: state.store.cluster_options(account_id).await?,
        failover_candidates,
        node_version: state.engine.config(id).map(|c| c.version),
        tls_serving: state.engine.tls_port(id),
        websocket_refused: state.engine.websocket_refused(id),
        control_port: state.engine.control_port(id),
        uac_status: uac_words(state.engine.uac_status(id)),
    })
}

/// Checks and applies a new configuration. Ports that change are rebound first: a port in
/// use is an error on its field, the node keeps its old sockets and nothing is stored.
pub async fn save(
    state: &AppState,
    user: &SessionUser,
    id: i64,
    new: ConfigRecord,
) -> Result<ServerConfigView, AppError> {
    let store = &state.store;
    let server = store
        .server(user.account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let old = store
        .server_config(user.account_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if let Some(cluster) = new.cluster_id {
        if store
            .cluster_name(user.account_id, cluster)
            .await?
            .is_none()
        {
            return Err(AppError::field("cluster", "Choose one of your clusters."));
        }
    }
    if new.failover_enabled {
        let (Some(cluster), Some(target)) = (new.cluster_id, new.failover_target_id) else {
            return Err(AppError::field(
                "failover_target",
                "Capacity failover needs another server of this server's cluster as its target.",
            ));
        };
        let members = store.cluster_members(user.account_id, cluster).await?;
        if target == id || !members.iter().any(|(member, ..)| *member == target) {
            return Err(AppError::field(
                "failover_target",
                "The failover target must be another server in the same cluster.",
            ));
        }
    }
    let moved = new.udp_port != old.udp_port || new.tcp_port != old.tcp_port;
    if moved && state.engine.is_running(id) {
        let mut spec = node_spec(&server)?;
        spec.udp_port = new.udp_port as u16;
        spec.tcp_port = new.tcp_port as u16;
        if let Err(StartError::Bind {
            transport, addr, ..
        }) = state.engine.start(spec).await
        {
            let field = if transport == "UDP" {
                "udp_port"
            } else {
                "tcp_port"
            };
            return Err(AppError::field(
                field,
                format!(
                    "{transport} port {} on {} is in use; the server keeps its current ports.",
                    addr.port(),
                    addr.ip()
                ),
            ));
        }
    }
    // SIP over TLS moving to another port: that port must be free (the old one keeps
    // serving otherwise).
    let tls_on = new.fqdn.is_some() && store.server_tls_identity(id).await?.is_some();
    if tls_on
        && state.engine.is_running(id)
        && state.engine.tls_port(id) != Some(new.tls_port as u16)
    {
        let addr = std::net::SocketAddr::new(
            server.ip.parse().map_err(|_| AppError::Internal)?,
            new.tls_port as u16,
        );
        if tokio::net::TcpListener::bind(addr).await.is_err() {
            return Err(AppError::field(
                "tls_port",
                format!(
                    "TLS port {} on {} is in use; the server keeps its current ports.",
                    addr.port(),
                    addr.ip()
                ),
            ));
        }
    }
    store
        .save_config(user.account_id, id, &new, |version| {
            Audit::by(
                user,
                "server.config",
                format!("server {id}"),
                format!("configuration version {version}"),
            )
        })
        .await?;
    // A new FQDN is a new domain phones may register in.
    state.directory.reload(store).await?;
    // Restrict Direct lists of the clusters it left and joined change too, and so do the
    // sharing lists of the servers that share registrations with it.
    let mut affected = vec![id];
    if old.uac_location_sharing || new.uac_location_sharing {
        affected.extend(
            store
                .location_sharing_servers(user.account_id)
                .await?
                .into_iter()
                .map(|(other, _)| other),
        );
    }
    for cluster in [old.cluster_id, new.cluster_id].into_iter().flatten() {
        affected.extend(
            store
                .cluster_members(user.account_id, cluster)
                .await?
                .into_iter()
                .map(|(m, ..)| m),
        );
    }
    affected.sort_unstable();
    affected.dedup();
    for member in affected {
        push(state, user.account_id, member).await?;
    }
    state.monitor.changed(user.account_id, Some(id));
    view(state, user.account_id, id).await
}

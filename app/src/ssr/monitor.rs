//! Watching the nodes: every few seconds the control plane sends each running node a SIP
//! OPTIONS and an ICMP echo and keeps the round trips, and tells live pages what changed.
//!
//! The figures live in memory only: they describe this moment, and a restart measures
//! them again within one interval.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sip_engine::{options_ping, options_ping_tls, ProbeTransport};
use tokio::sync::broadcast;
use tokio_rustls::rustls::ClientConfig;

use super::state::AppState;
use super::store::AccountId;
use crate::model::Health;

/// Something about an account's servers changed: one server (`Some(id)`) or possibly all
/// of them (`None`, after a measurement round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetEvent {
    pub account_id: AccountId,
    pub server_id: Option<i64>,
}

/// Latest health per server and the channel live pages listen on.
pub struct Monitor {
    health: RwLock<HashMap<i64, Health>>,
    events: broadcast::Sender<FleetEvent>,
    /// `None` when this process may not open an ICMP socket; ICMP then shows as no answer.
    icmp: Option<surge_ping::Client>,
}

/// How long one ping may take before it counts as unanswered.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Pings in flight at once, so a round over 1,000 servers takes a few seconds, not minutes.
const CONCURRENCY: usize = 64;

impl Default for Monitor {
    fn default() -> Self {
        let icmp = match surge_ping::Client::new(&surge_ping::Config::default()) {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::warn!(%error, "no ICMP socket: ICMP latency will show as unanswered");
                None
            }
        };
        Monitor {
            health: RwLock::default(),
            events: broadcast::channel(1024).0,
            icmp,
        }
    }
}

impl Monitor {
    pub fn health(&self, server_id: i64) -> Option<Health> {
        self.health
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&server_id)
            .copied()
    }

    pub fn forget(&self, server_id: i64) {
        self.health
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&server_id);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }

    /// Tells live pages that a server changed. Nobody listening is fine.
    pub fn changed(&self, account_id: AccountId, server_id: Option<i64>) {
        let _ = self.events.send(FleetEvent {
            account_id,
            server_id,
        });
    }

    /// One SIP and one ICMP round trip to `ip`: the SIP one to `sip_port` over UDP, or,
    /// with TLS Internals (`control`: the node's control port, the name its certificate
    /// carries and a client that trusts only the control plane's authority), over TLS there.
    pub async fn measure(
        &self,
        ip: IpAddr,
        sip_port: u16,
        control: Option<(u16, String, Arc<ClientConfig>)>,
    ) -> Health {
        let sip = async {
            match control {
                Some((port, name, client)) => {
                    options_ping_tls(SocketAddr::new(ip, port), &name, client, PING_TIMEOUT).await
                }
                None => {
                    options_ping(
                        SocketAddr::new(ip, sip_port),
                        ProbeTransport::Udp,
                        PING_TIMEOUT,
                    )
                    .await
                }
            }
        };
        let icmp = self.icmp_ping(ip);
        let (sip, icmp) = tokio::join!(sip, icmp);
        let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        Health {
            sip_us: sip.ok().map(micros),
            icmp_us: icmp.map(micros),
        }
    }

    async fn icmp_ping(&self, ip: IpAddr) -> Option<Duration> {
        let client = self.icmp.as_ref()?;
        let mut pinger = client
            .pinger(ip, surge_ping::PingIdentifier(rand::random()))
            .await;
        pinger.timeout(PING_TIMEOUT);
        pinger
            .ping(surge_ping::PingSequence(0), &[0u8; 16])
            .await
            .ok()
            .map(|(_, rtt)| rtt)
    }

    pub fn record(&self, server_id: i64, health: Health) {
        self.health
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server_id, health);
    }
}

/// Where and how the control plane probes a server's node over TLS: its control port, the
/// name of its certificate and a client that trusts only the control plane's authority;
/// `None` without TLS Internals.
pub fn control_probe(state: &AppState, server_id: i64) -> Option<(u16, String, Arc<ClientConfig>)> {
    let port = state.engine.control_port(server_id)?;
    Some((
        port,
        super::internal_tls::node_name(server_id),
        state.authority.client(),
    ))
}

/// Measures every running node once, then tells each affected account's pages.
pub async fn measure_round(state: &AppState) {
    use futures::StreamExt;
    let servers = match state.store.servers_with_nodes().await {
        Ok(servers) => servers,
        Err(error) => {
            tracing::error!(%error, "monitor cannot list servers");
            return;
        }
    };
    let monitor = state.monitor.clone();
    let mut accounts: Vec<AccountId> = futures::stream::iter(servers)
        .map(|server| {
            let monitor = monitor.clone();
            let control = control_probe(state, server.id);
            async move {
                let ip: IpAddr = server.ip.parse().ok()?;
                let port = u16::try_from(server.udp_port).ok()?;
                let health = monitor.measure(ip, port, control).await;
                monitor.record(server.id, health);
                Some(server.account_id)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|account| async move { account })
        .collect()
        .await;
    accounts.sort_unstable();
    accounts.dedup();
    for account in accounts {
        monitor.changed(account, None);
    }
}

/// Runs [`measure_round`] every `interval` for as long as the process lives.
pub fn spawn(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            measure_round(&state).await;
        }
    })
}

/// How often [`watch_calls`] reads the nodes' call counters: a row shows a new call within
/// this (plus the page's own delay).
pub const CALLS_INTERVAL: Duration = Duration::from_millis(250);

/// Tells live pages about every server whose channels in use or current CPS changed since
/// the last look, every [`CALLS_INTERVAL`], for as long as the process lives. Reading the
/// counters is a lock per node; the store is asked only when something changed.
pub fn watch_calls(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: HashMap<i64, sip_engine::CallFigures> = HashMap::new();
        let mut ticks = tokio::time::interval(CALLS_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now: HashMap<i64, sip_engine::CallFigures> =
                state.engine.all_call_figures().into_iter().collect();
            let changed: Vec<i64> = now
                .iter()
                .filter(|(id, figures)| seen.get(id).unwrap_or(&Default::default()) != *figures)
                .map(|(id, _)| *id)
                .collect();
            seen = now;
            if changed.is_empty() {
                continue;
            }
            match state.store.servers_with_nodes().await {
                Ok(servers) => servers
                    .iter()
                    .filter(|server| changed.contains(&server.id))
                    .for_each(|server| state.monitor.changed(server.account_id, Some(server.id))),
                Err(error) => tracing::error!(%error, "call watch cannot list servers"),
            }
        }
    })
}

/// Shared handle type kept in [`AppState`].
pub type SharedMonitor = Arc<Monitor>;

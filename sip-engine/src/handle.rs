//! [`Engine`]: the one API the control plane uses to run nodes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{NodeConfig, NodeRole};
use crate::digest::Authenticator;
use crate::directory::{domain_of, UserDirectory};
use crate::health::{self, SwitchStatus, Switches};
use crate::keepalive::{self, KeepAlive, KeepAliveSettings};
use crate::limits::{Budget, CallFigures};
use crate::location::LocationStore;
use crate::node::{run_timers, Node, StatsSnapshot};
use crate::registrar::Registrar;
use crate::route::dispatch::DispatchRouter;
use crate::route::location::LocationRouter;
use crate::route::Router;
use crate::trace::Tracer;
use crate::transport::{tcp, tls, udp, ws, Inbound};

/// How long a nonce of [`Engine::with_directory`] stays valid: long enough for a slow phone
/// to answer its challenge, short enough that a captured one soon becomes useless.
const NONCE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// How long [`Engine::hang_up`] waits for its BYEs to be answered before the node stops:
/// long enough for two UDP retransmissions (at 0.5 s and 1.5 s), short enough that a
/// restart with silent phones is not held up.
pub const BYE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The receive buffer a node asks for on its UDP socket: 8 MB, about 16,000 datagrams of a
/// typical REGISTER's size.
const UDP_RECEIVE_BUFFER: usize = 8 << 20;

/// How many threads read a node's UDP socket: one per core (at most four). Idle readers
/// cost nothing but a blocked thread; under load they let one node use every core, as
/// Kamailio's UDP worker processes do.
fn udp_readers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Everything needed to start one server's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The control plane's id for the server; the engine only uses it as a key.
    pub id: i64,
    pub ip: IpAddr,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub role: NodeRole,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {transport} {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("the node does not run")]
    NotRunning,
}

/// SIP over TLS for a running node: the port, and the certificate chain (leaf first) and
/// private key it presents, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSpec {
    pub port: u16,
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for TlsSpec {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSpec")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// A node's TLS listener.
struct TlsRunning {
    spec: TlsSpec,
    /// The port it listens on (the spec's, or the one picked for port 0).
    port: u16,
    /// Why the secure WebSocket port for browsers is not served beside it (taken by
    /// another process, say); `None` when it is, or is not wanted.
    websocket_error: Option<String>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// What a node gets when it starts, beside its own spec and configuration: the node
/// settings the operator published last. A running node keeps the release it started with
/// until it is restarted (a server update), so a new release is pending on every node that
/// runs an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Grows by one with every published release.
    pub revision: u64,
    pub keepalive: KeepAliveSettings,
}

impl Default for Release {
    /// Release 1, with the default keep-alive settings.
    fn default() -> Self {
        Release {
            revision: 1,
            keepalive: KeepAliveSettings::default(),
        }
    }
}

/// A running node: its logic, where it listens, and how to stop it.
struct Running {
    spec: NodeSpec,
    /// The release it started with.
    release: Release,
    tls: Option<TlsRunning>,
    /// The control listener (TLS Internals).
    control: Option<TlsRunning>,
    node: Arc<Node>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// A node's TLS listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// SIP over TLS and secure WebSocket, for phones.
    Sip,
    /// The control plane's (TLS Internals).
    Control,
}

impl Running {
    fn listener(&mut self, which: Listener) -> &mut Option<TlsRunning> {
        match which {
            Listener::Sip => &mut self.tls,
            Listener::Control => &mut self.control,
        }
    }
}

/// Starts, stops and reports on the nodes of this process.
///
/// Cloning is cheap and every clone sees the same nodes. The map sits behind a std `Mutex`,
/// not tokio's: it is never held across an `.await`.
#[derive(Clone, Default)]
pub struct Engine {
    nodes: Arc<Mutex<HashMap<i64, Running>>>,
    /// Each cluster's shared call budget, alive as long as a member node holds it.
    budgets: Arc<Mutex<HashMap<i64, Weak<Budget>>>>,
    build: Arc<str>,
    /// Given to every node started afterwards; `None` leaves REGISTER unserved (405).
    registrar: Option<Registrar>,
    /// What nodes started afterwards get (keep-alive settings for their registered
    /// contacts); shared by every clone, replaced by [`Engine::publish`].
    release: Arc<RwLock<Release>>,
}

impl Engine {
    /// `build` names the engine build the nodes report (`Server:` header).
    pub fn new(build: &str) -> Self {
        Engine {
            nodes: Arc::default(),
            budgets: Arc::default(),
            build: build.into(),
            registrar: None,
            release: Arc::default(),
        }
    }

    /// Nodes started from now on serve REGISTER: users come from `directory`, bindings live
    /// in `store` (shared by every node, so any of them can find a user registered at
    /// another). Nonces are sealed with a secret random to this engine and live 5 minutes;
    /// use [`with_registrar`](Self::with_registrar) to choose them.
    pub fn with_directory(
        self,
        directory: Arc<dyn UserDirectory>,
        store: Arc<dyn LocationStore>,
    ) -> Self {
        let auth = Arc::new(Authenticator::with_random_secret(NONCE_LIFETIME));
        self.with_registrar(Registrar::new(directory, store, auth))
    }

    /// Nodes started from now on serve REGISTER with `registrar` (its directory, store,
    /// nonce secret and Expires bounds).
    pub fn with_registrar(mut self, registrar: Registrar) -> Self {
        self.registrar = Some(registrar);
        self
    }

    /// Nodes started from now on send keep-alives with these settings (interval, missed
    /// answers before a contact is offline) instead of the defaults (30 s, 3).
    pub fn with_keepalive(self, settings: KeepAliveSettings) -> Self {
        self.write_release().keepalive = settings;
        self
    }

    /// Starts from `release` (the last one the control plane published, when it kept one).
    pub fn with_release(self, release: Release) -> Self {
        *self.write_release() = release;
        self
    }

    /// Publishes new node settings as the next release, for nodes started from now on;
    /// running nodes keep theirs until restarted. Returns the new release.
    pub fn publish(&self, keepalive: KeepAliveSettings) -> Release {
        let mut release = self.write_release();
        release.revision += 1;
        release.keepalive = keepalive;
        *release
    }

    /// The release nodes started now get.
    pub fn release(&self) -> Release {
        *self.release.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The release a running node started with.
    pub fn node_release(&self, id: i64) -> Option<Release> {
        self.lock().get(&id).map(|r| r.release)
    }

    fn write_release(&self) -> std::sync::RwLockWriteGuard<'_, Release> {
        self.release.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn build(&self) -> &str {
        &self.build
    }

    /// Binds the node's sockets and starts serving. Binding happens before this returns, so
    /// a port already in use is reported here and nothing is left half-started. Starting a
    /// node that runs already with the same spec does nothing; with another spec, the old
    /// one is stopped first.
    pub async fn start(&self, spec: NodeSpec) -> Result<(), StartError> {
        let current = self.spec(spec.id);
        if current.as_ref() == Some(&spec) {
            return Ok(());
        }
        // A running node moving to other addresses keeps running unless every new address
        // can be bound: try each one that changes before stopping the old node. (Another
        // process could take a port in the instant between; then the error comes below.)
        if let Some(current) = &current {
            probe_free(current, &spec).await?;
        }
        let config = self.config(spec.id);
        self.stop(spec.id).await;
        let udp_addr = SocketAddr::new(spec.ip, spec.udp_port);
        let tcp_addr = SocketAddr::new(spec.ip, spec.tcp_port);
        let udp_bind = |source| StartError::Bind {
            transport: "UDP",
            addr: udp_addr,
            source,
        };
        // Read by threads of its own (see `transport::udp`): a plain, blocking socket.
        let socket = std::net::UdpSocket::bind(udp_addr).map_err(udp_bind)?;
        let listener = TcpListener::bind(tcp_addr)
            .await
            .map_err(|source| StartError::Bind {
                transport: "TCP",
                addr: tcp_addr,
                source,
            })?;
        // Bursts of datagrams (every phone of a site re-registering after an outage) must
        // wait in the kernel rather than be dropped: ask for a large receive buffer, as
        // Kamailio does; the kernel caps it at net.core.rmem_max.
        if let Err(error) = socket2::SockRef::from(&socket).set_recv_buffer_size(UDP_RECEIVE_BUFFER)
        {
            tracing::debug!(%error, "udp receive buffer left at the system default");
        }
        // Keep-alives leave from the node's own socket; the address is what they put in Via.
        let local = socket.local_addr().unwrap_or(udp_addr);
        let release = self.release();
        let (tracer, captured) = Tracer::new();
        let mut node = Node::new(spec.role, &self.build).with_tracer(tracer.clone());
        if spec.role == NodeRole::Dispatcher {
            // A Dispatcher balances over its switches, whoever the users are. It gets the
            // engine's registrar all the same, for AnyReg: the node hands it REGISTERs only
            // while its configuration says `any_reg` (else they go on to the switches), and
            // never asks it about a call. It keeps open the NAT mappings of the phones that
            // registered through it (either way), which are with its address.
            let switches = Arc::new(Switches::new());
            let router: Arc<dyn Router> =
                Arc::new(DispatchRouter::new(node.subscribe(), switches.clone()));
            node = node.with_router(router, local).with_switches(switches);
            if let Some(registrar) = &self.registrar {
                node = node.with_registrar(registrar.clone()).with_keepalive(
                    KeepAlive::new(
                        registrar.directory().clone(),
                        registrar.store().clone(),
                        domain_of(spec.ip),
                        release.keepalive,
                    )
                    .for_edge(local),
                );
            }
        } else if let Some(registrar) = &self.registrar {
            // A Switch that knows users also routes calls to them.
            let router: Arc<dyn Router> = Arc::new(LocationRouter::new(
                domain_of(local.ip()),
                registrar.directory().clone(),
                registrar.store().clone(),
                node.streams_handle(),
            ));
            node = node
                .with_router(router, local)
                .with_registrar(registrar.clone())
                .with_keepalive(KeepAlive::new(
                    registrar.directory().clone(),
                    registrar.store().clone(),
                    domain_of(spec.ip),
                    release.keepalive,
                ));
        }
        if let Some(config) = config {
            self.apply(&node, config);
        }
        // Keep-alives leave straight from a clone of the socket, a batch per wake-up of
        // their own task (see `transport::Outlet`).
        let pings = socket.try_clone().map(udp::Sender::new).map_err(udp_bind)?;
        // A Dispatcher's probes too: the switches' Restrict Direct lets that address in.
        let probes = match spec.role {
            NodeRole::Dispatcher => {
                Some(socket.try_clone().map(udp::Sender::new).map_err(udp_bind)?)
            }
            NodeRole::Switch => None,
        };
        let node = node.with_socket(socket.try_clone().map(udp::Sender::new).map_err(udp_bind)?);
        let outgoing = node.take_outgoing();
        let node = Arc::new(node);
        let inbound: Arc<dyn Inbound> = node.clone();
        let shutdown = CancellationToken::new();
        let mut tasks = udp::serve(
            socket,
            inbound.clone(),
            outgoing,
            udp_readers(),
            shutdown.clone(),
        )
        .map_err(|error| {
            // Whatever started of it stops again.
            shutdown.cancel();
            udp_bind(error)
        })?;
        tasks.extend([
            tokio::spawn(tcp::serve(listener, inbound, shutdown.clone())),
            tokio::spawn(run_timers(node.clone(), shutdown.clone())),
            tokio::spawn(crate::trace::run(
                captured,
                spec.ip,
                tracer,
                shutdown.clone(),
            )),
            tokio::spawn(crate::uac::run(
                node.uac().clone(),
                node.subscribe(),
                local,
                node.outbound(),
                shutdown.clone(),
            )),
        ]);
        if let Some(keepalive) = node.keepalive() {
            tasks.push(tokio::spawn(keepalive::run(
                keepalive.clone(),
                node.subscribe(),
                local,
                pings,
                shutdown.clone(),
            )));
        }
        if let (Some(switches), Some(probes)) = (node.switches(), probes) {
            tasks.push(tokio::spawn(health::run(
                switches.clone(),
                node.subscribe(),
                local,
                probes,
                shutdown.clone(),
            )));
        }
        tracing::info!(id = spec.id, %udp_addr, %tcp_addr, role = ?spec.role, "node started");
        let running = Running {
            spec,
            release,
            tls: None,
            control: None,
            node,
            shutdown,
            tasks,
        };
        let previous = self.lock().insert(running.spec.id, running);
        if let Some(previous) = previous {
            // A concurrent start of the same id won the race; keep the newest.
            previous.shutdown.cancel();
        }
        Ok(())
    }

    /// Ends the calls a running node carries, with a BYE to both ends of each
    /// ([`Node::hang_up`]), and waits up to [`BYE_WAIT`] for the BYEs to be answered (the
    /// node keeps running meanwhile, so unanswered ones are retransmitted). `why` goes in
    /// each BYE's `Reason` header. Returns how many calls it ended.
    pub async fn hang_up(&self, id: i64, why: &str) -> usize {
        let Some(node) = self.lock().get(&id).map(|running| running.node.clone()) else {
            return 0;
        };
        let reason = format!("Q.850;cause=41;text=\"{}\"", why.replace('"', "'"));
        let (calls, outcomes) = node.hang_up(&reason);
        let deadline = tokio::time::Instant::now() + BYE_WAIT;
        for outcome in outcomes {
            let _ = tokio::time::timeout_at(deadline, outcome).await;
        }
        if calls > 0 {
            tracing::info!(id, calls, why, "calls ended with a BYE to both ends");
        }
        calls
    }

    /// Stops a node the orderly way: its calls ended first ([`Engine::hang_up`]), then
    /// [`Engine::stop`].
    pub async fn shut_down(&self, id: i64, why: &str) {
        self.hang_up(id, why).await;
        self.stop(id).await;
    }

    /// Stops a node at once and waits until its sockets are closed, so the ports are free
    /// when this returns: its calls drop without a word to either end (what Power Cycle
    /// promises). See [`Engine::shut_down`] for the orderly way. Stopping a node that does
    /// not run does nothing.
    pub async fn stop(&self, id: i64) {
        let Some(running) = self.lock().remove(&id) else {
            return;
        };
        running.shutdown.cancel();
        for task in running
            .tasks
            .into_iter()
            .chain(running.tls.map(|tls| tls.task))
            .chain(running.control.map(|control| control.task))
        {
            let _ = task.await;
        }
        tracing::info!(id, "node stopped");
    }

    /// Serves SIP over TLS on a running node with `spec`, or (with `None`) stops serving
    /// it. A new certificate or port replaces the old listener; the same spec again does
    /// nothing. On an error (a port in use, a chain or key rustls refuses) the node serves no
    /// TLS.
    pub async fn serve_tls(&self, id: i64, spec: Option<TlsSpec>) -> Result<(), StartError> {
        self.listen_tls(id, spec, Listener::Sip).await
    }

    /// TLS Internals: the node's control listener, on a port of its own (any free one on
    /// the node's address; [`Engine::control_port`] says which), presenting `identity`
    /// (`port` is ignored), which the control plane issued and alone trusts. The control
    /// plane's health probes go there instead of to the SIP port. `None` closes it.
    pub async fn serve_control(
        &self,
        id: i64,
        identity: Option<TlsSpec>,
    ) -> Result<(), StartError> {
        let identity = identity.map(|spec| TlsSpec { port: 0, ..spec });
        self.listen_tls(id, identity, Listener::Control).await
    }

    /// The port of a node's control listener, if it has one (TLS Internals).
    pub fn control_port(&self, id: i64) -> Option<u16> {
        self.lock()
            .get(&id)
            .and_then(|r| r.control.as_ref().map(|t| t.port))
    }

    async fn listen_tls(
        &self,
        id: i64,
        spec: Option<TlsSpec>,
        which: Listener,
    ) -> Result<(), StartError> {
        let (node, node_ip, node_shutdown, old) = {
            let mut nodes = self.lock();
            let running = nodes.get_mut(&id).ok_or(StartError::NotRunning)?;
            let slot = running.listener(which);
            if slot.as_ref().map(|t| &t.spec) == spec.as_ref() {
                return Ok(());
            }
            let old = slot.take();
            (
                running.node.clone(),
                running.spec.ip,
                running.shutdown.clone(),
                old,
            )
        };
        if let Some(old) = old {
            old.shutdown.cancel();
            let _ = old.task.await;
        }
        let Some(spec) = spec else {
            return Ok(());
        };
        let acceptor = tls::acceptor(&spec.chain_pem, &spec.key_pem)?;
        let addr = SocketAddr::new(node_ip, spec.port);
        let transport = match which {
            Listener::Sip => "TLS",
            Listener::Control => "control TLS",
        };
        let bind = |source| StartError::Bind {
            transport,
            addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind)?;
        let port = listener.local_addr().map_err(bind)?.port();
        // Phones' TLS also serves secure WebSocket on the browsers' port, when it is free.
        let mut websocket_error = None;
        let websocket = match which {
            Listener::Sip if port != ws::WSS_PORT => {
                let ws_addr = SocketAddr::new(node_ip, ws::WSS_PORT);
                match TcpListener::bind(ws_addr).await {
                    Ok(listener) => Some(listener),
                    Err(error) => {
                        tracing::warn!(id, %ws_addr, %error, "secure WebSocket port not served");
                        websocket_error = Some(error.to_string());
                        None
                    }
                }
            }
            _ => None,
        };
        let shutdown = node_shutdown.child_token();
        let task = {
            let shutdown = shutdown.clone();
            let node: Arc<dyn Inbound> = node;
            tokio::spawn(async move {
                let tls = tls::serve(listener, acceptor.clone(), node.clone(), shutdown.clone());
                match websocket {
                    Some(websocket) => {
                        let ws = tls::serve(websocket, acceptor, node, shutdown);
                        tokio::join!(tls, ws);
                    }
                    None => tls.await,
                }
            })
        };
        tracing::info!(id, %addr, port, transport, "node serves TLS");
        match self.lock().get_mut(&id) {
            Some(running) => {
                *running.listener(which) = Some(TlsRunning {
                    spec,
                    port,
                    websocket_error,
                    shutdown,
                    task,
                })
            }
            // Stopped meanwhile: its token cancelled the listener already.
            None => shutdown.cancel(),
        }
        Ok(())
    }

    /// Why a node that serves TLS does not serve secure WebSocket on the browsers' port
    /// ([`ws::WSS_PORT`]) too: the error binding it (another process holds it, say).
    /// `None` when it is served, or the node serves no TLS.
    pub fn websocket_refused(&self, id: i64) -> Option<String> {
        self.lock()
            .get(&id)
            .and_then(|r| r.tls.as_ref().and_then(|t| t.websocket_error.clone()))
    }

    /// The TLS port a running node serves, if it serves TLS.
    pub fn tls_port(&self, id: i64) -> Option<u16> {
        self.lock()
            .get(&id)
            .and_then(|r| r.tls.as_ref().map(|t| t.port))
    }

    /// Shuts every node down the orderly way (when the process stops): every node's calls
    /// are ended at once, so the BYEs' wait ([`BYE_WAIT`]) is paid once, not once a node;
    /// then the nodes stop.
    pub async fn stop_all(&self) {
        let ids: Vec<i64> = self.lock().keys().copied().collect();
        let hang_ups: Vec<JoinHandle<usize>> = ids
            .iter()
            .map(|&id| {
                let engine = self.clone();
                tokio::spawn(async move { engine.hang_up(id, "Server shutdown").await })
            })
            .collect();
        for hang_up in hang_ups {
            let _ = hang_up.await;
        }
        for id in ids {
            self.stop(id).await;
        }
    }

    pub fn is_running(&self, id: i64) -> bool {
        self.lock().contains_key(&id)
    }

    /// The spec a node runs with, as the node itself holds it.
    pub fn spec(&self, id: i64) -> Option<NodeSpec> {
        self.lock().get(&id).map(|r| r.spec.clone())
    }

    /// Pushes a configuration to a running node; false when the node does not run.
    pub fn configure(&self, id: i64, config: NodeConfig) -> bool {
        match self.lock().get(&id) {
            Some(running) => {
                self.apply(&running.node, config);
                true
            }
            None => false,
        }
    }

    /// Gives `node` its configuration, and the budget of the cluster it names (a Switch's:
    /// a Dispatcher's calls are counted by the switches it sends them to, not twice).
    fn apply(&self, node: &Node, config: NodeConfig) {
        let shares = node.role() == NodeRole::Switch;
        let budget = config.cluster.filter(|_| shares).map(|cluster| {
            let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
            budgets.retain(|_, budget| budget.strong_count() > 0);
            match budgets.get(&cluster).and_then(Weak::upgrade) {
                Some(budget) => budget,
                None => {
                    let budget = Arc::new(Budget::default());
                    budgets.insert(cluster, Arc::downgrade(&budget));
                    budget
                }
            }
        });
        node.calls().share(budget);
        node.configure(config);
    }

    /// What a node carries now: channels in use and calls in the last second.
    pub fn call_figures(&self, id: i64) -> Option<CallFigures> {
        self.lock().get(&id).map(|r| r.node.call_figures())
    }

    /// A running Dispatcher's switches as its console page shows them (state, latency,
    /// calls sent in the last minute and their share), in its configuration's order;
    /// `None` for a node that does not run or is no Dispatcher.
    pub fn dispatch_status(&self, id: i64) -> Option<Vec<SwitchStatus>> {
        let node = self.lock().get(&id).map(|r| r.node.clone())?;
        let switches = node.switches()?;
        let config = node.config();
        let targets = config
            .dispatch
            .as_ref()
            .map_or(&[][..], |d| d.switches.as_slice());
        Some(switches.status(targets, tokio::time::Instant::now()))
    }

    /// Where a running node's upstream registration (UAC Auth) stands.
    pub fn uac_status(&self, id: i64) -> Option<crate::uac::UacStatus> {
        self.lock().get(&id).map(|r| r.node.uac().status())
    }

    /// What every running node carries now, by id.
    pub fn all_call_figures(&self) -> Vec<(i64, CallFigures)> {
        self.lock()
            .iter()
            .map(|(id, running)| (*id, running.node.call_figures()))
            .collect()
    }

    /// The configuration a node runs, as the node itself holds it.
    pub fn config(&self, id: i64) -> Option<NodeConfig> {
        self.lock().get(&id).map(|r| r.node.config())
    }

    /// Trace copies a node could not ship (see [`crate::trace`]).
    pub fn trace_dropped(&self, id: i64) -> Option<u64> {
        self.lock().get(&id).map(|r| r.node.tracer().dropped())
    }

    pub fn stats(&self, id: i64) -> Option<StatsSnapshot> {
        self.lock().get(&id).map(|r| r.node.stats().snapshot())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        // A panic while holding this lock leaves the map consistent (every update is a
        // single insert or remove), so a poisoned lock is still safe to use.
        self.nodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Binds and releases each address of `next` that `current` does not already hold.
async fn probe_free(current: &NodeSpec, next: &NodeSpec) -> Result<(), StartError> {
    let udp = SocketAddr::new(next.ip, next.udp_port);
    if udp != SocketAddr::new(current.ip, current.udp_port) {
        UdpSocket::bind(udp)
            .await
            .map_err(|source| StartError::Bind {
                transport: "UDP",
                addr: udp,
                source,
            })?;
    }
    let tcp = SocketAddr::new(next.ip, next.tcp_port);
    if tcp != SocketAddr::new(current.ip, current.tcp_port) {
        TcpListener::bind(tcp)
            .await
            .map_err(|source| StartError::Bind {
                transport: "TCP",
                addr: tcp,
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(port: u16) -> NodeSpec {
        NodeSpec {
            id: 1,
            ip: "127.0.73.1".parse().unwrap(),
            udp_port: port,
            tcp_port: port,
            role: NodeRole::Switch,
        }
    }

    #[tokio::test]
    async fn moving_to_a_taken_port_fails_and_the_old_node_keeps_running_with_its_config() {
        let engine = Engine::new("test");
        engine.start(spec(15070)).await.unwrap();
        engine.configure(
            1,
            NodeConfig {
                version: 4,
                ..NodeConfig::default()
            },
        );
        let _squatter = UdpSocket::bind("127.0.73.1:15071").await.unwrap();
        assert!(matches!(
            engine.start(spec(15071)).await,
            Err(StartError::Bind {
                transport: "UDP",
                ..
            })
        ));
        assert_eq!(engine.spec(1), Some(spec(15070)));
        let rtt = crate::options_ping(
            "127.0.73.1:15070".parse().unwrap(),
            crate::ProbeTransport::Udp,
            std::time::Duration::from_secs(2),
        )
        .await;
        assert!(rtt.is_ok(), "old node still answers: {rtt:?}");

        engine.start(spec(15072)).await.unwrap();
        assert_eq!(
            engine.config(1).map(|c| c.version),
            Some(4),
            "config survives a rebind"
        );
        assert!(
            UdpSocket::bind("127.0.73.1:15070").await.is_ok(),
            "old port released"
        );
        engine.stop_all().await;
    }
}

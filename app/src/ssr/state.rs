//! What every request handler and server function can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use sip_engine::Engine;

use super::auth::LoginLimiter;
use super::directory::Directory;
use super::monitor::SharedMonitor;
use super::settings::Settings;
use super::store::Store;

/// The state of the console this process serves (see [`AppState::current`]).
static PROCESS_STATE: std::sync::OnceLock<AppState> = std::sync::OnceLock::new();

/// Shared by the router and every server function (they get it with
/// [`AppState::current`], from the context `leptos_routes_with_context` provides).
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub engine: Engine,
    pub settings: Arc<Settings>,
    pub login_limiter: Arc<LoginLimiter>,
    /// Deploys pick the next free address of a pool; one at a time keeps two deploys from
    /// picking the same one (the unique index would refuse the second anyway).
    pub deploy_lock: Arc<tokio::sync::Mutex<()>>,
    /// Node health and the live-update channel.
    pub monitor: SharedMonitor,
    /// SIP users as the nodes' registrar sees them.
    pub directory: Arc<Directory>,
    /// Registrations, shared by every node of this process.
    pub locations: Arc<super::locations::PersistentLocations>,
    /// The data zones' SIP trace collectors.
    pub traces: Arc<super::traces::Collectors>,
    /// TLS Internals' certificate authority.
    pub authority: Arc<super::internal_tls::InternalAuthority>,
    /// The detail page's network tools (ping, trace route from a node).
    pub nettools: Arc<super::nettools::NetTools>,
}

impl AppState {
    /// The state, from the reactive context of the request being served, else the
    /// process's own.
    ///
    /// During server rendering Leptos can build a page's nested components twice; the
    /// resources of the discarded copy keep running after their owner (and the owner's
    /// context) was disposed, and the browser hydrates from whichever copy's values carry
    /// its resource ids. Such a resource must still compute what the kept copy computes:
    /// an error there became a hydration mismatch, a panic a page whose HTML never ended.
    /// So a server function that lost its context takes the state this process serves
    /// with (the first one made; a process serves one console).
    pub fn current() -> Result<AppState, crate::error::AppError> {
        leptos::prelude::use_context::<AppState>()
            .or_else(|| PROCESS_STATE.get().cloned())
            .ok_or(crate::error::AppError::Internal)
    }

    /// `engine` must have been given `directory` and `locations` (see `server::prepare`).
    pub fn new(
        leptos_options: LeptosOptions,
        store: Store,
        engine: Engine,
        settings: Settings,
        directory: Arc<Directory>,
        locations: Arc<super::locations::PersistentLocations>,
    ) -> Self {
        let state = AppState {
            leptos_options,
            store,
            engine,
            settings: Arc::new(settings),
            login_limiter: Arc::default(),
            deploy_lock: Arc::default(),
            monitor: Arc::default(),
            directory,
            locations,
            traces: Arc::default(),
            authority: Arc::new(
                super::internal_tls::InternalAuthority::new()
                    .expect("ring generates keys and rcgen signs with them"),
            ),
            nettools: Arc::default(),
        };
        let _ = PROCESS_STATE.set(state.clone());
        state
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

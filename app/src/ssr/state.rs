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
}

impl AppState {
    /// The state, from the reactive context of the request being served.
    ///
    /// An error, never a panic, when the context is gone: during server rendering a lazy
    /// route's page can be built twice, and a resource of the discarded copy keeps running
    /// after its owner (and the owner's context) was disposed. Its result is never used, but
    /// a panic there would leave the page's HTML stream waiting for it for ever.
    pub fn current() -> Result<AppState, crate::error::AppError> {
        leptos::prelude::use_context::<AppState>().ok_or_else(|| {
            tracing::debug!("a server function ran without its request's context");
            crate::error::AppError::Internal
        })
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
        AppState {
            leptos_options,
            store,
            engine,
            settings: Arc::new(settings),
            login_limiter: Arc::default(),
            deploy_lock: Arc::default(),
            monitor: Arc::default(),
            directory,
            locations,
        }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

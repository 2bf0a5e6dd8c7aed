//! The sipfleet server: serves the console, owns the store and runs the SIP nodes.
//!
//! `main.rs` only parses the command line; everything it runs is here so that tests and
//! benchmarks start the very same thing ([`Server::start`]).

pub mod config;
pub mod live;
pub mod tools;

use std::net::SocketAddr;

use app::ssr::auth::hash_password;
use app::ssr::fleet::restore_nodes;
use app::ssr::settings::Settings;
use app::ssr::state::AppState;
use app::ssr::store::Store;
use app::{shell, App};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;

use app::ssr::directory::Directory;
use app::ssr::locations::PersistentLocations;
use sip_engine::{Engine, KeepAliveSettings, Release};

/// How often the control plane pings every running node (SIP OPTIONS and ICMP echo).
pub const MONITOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

/// The engine build this binary runs (reported by every node it starts).
pub const ENGINE_BUILD: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the store and returns the shared state, with an engine whose nodes authenticate
/// the store's SIP users. Zones are synced from the settings only by [`Server::start`]: a
/// one-off command (such as `credit`) run with other settings must not rewrite the pools of
/// the console that is serving.
pub async fn prepare(
    leptos_options: LeptosOptions,
    settings: Settings,
) -> Result<AppState, StartError> {
    let store = Store::open(&settings.database_path()).await?;
    let directory = Arc::new(Directory::default());
    directory.reload(&store).await?;
    let locations = PersistentLocations::open(store.clone()).await?;
    let keepalive = KeepAliveSettings {
        interval: std::time::Duration::from_secs(settings.keepalive_seconds),
        ..KeepAliveSettings::default()
    };
    // The operator's last published node release, when there is one, is what nodes run.
    let release = match store.latest_release().await? {
        Some((revision, seconds)) => Release {
            revision: u64::try_from(revision).unwrap_or(1),
            keepalive: KeepAliveSettings {
                interval: std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(30)),
                ..keepalive
            },
        },
        None => Release {
            revision: 1,
            keepalive,
        },
    };
    let engine = Engine::new(ENGINE_BUILD)
        .with_directory(directory.clone(), locations.clone())
        .with_release(release);
    Ok(AppState::new(
        leptos_options,
        store,
        engine,
        settings,
        directory,
        locations,
    ))
}

/// The HTTP application: pages, server functions, and the compiled site's files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    Router::new()
        .route("/live/servers", axum::routing::get(live::servers))
        .route(
            "/live/servers/{id}/tools",
            axum::routing::get(tools::network_tool),
        )
        .leptos_routes_with_context(&state, routes, || {}, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state)
}

/// The operator's sign-in, created on first start.
pub const OPERATOR_EMAIL: &str = "operator@sipfleet.local";

/// Creates the operator on first start. The password is `initial_password` when given
/// (`SIPFLEET_OPERATOR_PASSWORD`, for automated set-ups), else a random one returned once so
/// the caller can print it; only its hash is kept either way.
pub async fn ensure_operator(
    store: &Store,
    initial_password: Option<String>,
) -> Result<Option<String>, StartError> {
    if store.operator_exists().await? {
        return Ok(None);
    }
    let given = initial_password.is_some();
    let password = initial_password.unwrap_or_else(hex_password);
    let hash = hash_password(password.clone())
        .await
        .map_err(|_| StartError::Store(sqlx::Error::Protocol("password hashing failed".into())))?;
    match store
        // The platform's own account, made by no one: nothing to audit.
        .create_account("sipfleet operator", OPERATOR_EMAIL, &hash, true, |_, _| {
            None
        })
        .await
    {
        Ok(_) if given => Ok(None),
        Ok(_) => Ok(Some(password)),
        Err(app::ssr::store::CreateUserError::EmailTaken) => Ok(None),
        Err(app::ssr::store::CreateUserError::Store(e)) => Err(e.into()),
    }
}

fn hex_password() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A running server: where it listens, its state, and its task.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    pub task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Syncs zones from the settings, binds `addr` (port 0 for any) and the trace
    /// collectors, restores the nodes of running servers and serves.
    pub async fn start(state: AppState, addr: SocketAddr) -> Result<Server, StartError> {
        state.store.sync_zones(&state.settings.zones).await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr, source })?;
        // Before any node starts: their configuration names the collectors' addresses.
        let trace = state.settings.trace;
        state
            .traces
            .start(trace)
            .await
            .map_err(|source| StartError::Listen {
                addr: trace.us,
                source,
            })?;
        match restore_nodes(&state).await {
            Ok(n) => tracing::info!(nodes = n, "nodes restored"),
            Err(error) => tracing::error!(%error, "restoring nodes failed"),
        }
        let monitor = app::ssr::monitor::spawn(state.clone(), MONITOR_INTERVAL);
        let every = std::time::Duration::from_secs(state.settings.schedule_seconds);
        let schedule = app::ssr::schedule::spawn(state.clone(), every);
        let calls = app::ssr::monitor::watch_calls(state.clone());
        let app = router(state.clone());
        let engine = state.engine.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%error, "http server stopped");
            }
            monitor.abort();
            schedule.abort();
            calls.abort();
            engine.stop_all().await;
        });
        Ok(Server { addr, state, task })
    }
}

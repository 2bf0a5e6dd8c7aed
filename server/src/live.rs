//! Live updates for the console: server-sent events at `/live/servers`.
//!
//! A page subscribes after hydration and gets `rows` events, each a JSON array of the
//! account's servers that changed (one after an action, all after a measurement round),
//! and a `gone` event with the id of a server that was deleted. Only the signed-in account's servers are ever sent.

use std::convert::Infallible;
use std::time::Duration;

use app::model::ServerRow;
use app::ssr::auth::{token_hash, SESSION_COOKIE};
use app::ssr::fleet::server_row;
use app::ssr::state::AppState;
use app::ssr::store::{AccountId, SessionUser};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

/// The session's account, from the request's cookie.
async fn account_of(state: &AppState, headers: &HeaderMap) -> Option<AccountId> {
    user_of(state, headers).await.map(|user| user.account_id)
}

/// The session's user, from the request's cookie.
pub async fn user_of(state: &AppState, headers: &HeaderMap) -> Option<SessionUser> {
    let token = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())?;
    state.store.session_user(&token_hash(&token)).await.ok()?
}

async fn rows(state: &AppState, account: AccountId, server: Option<i64>) -> Vec<ServerRow> {
    let records = match server {
        Some(id) => state
            .store
            .server(account, id)
            .await
            .map(|r| r.into_iter().collect()),
        None => state.store.list_servers(account).await,
    };
    match records {
        Ok(records) => records.iter().map(|r| server_row(state, r)).collect(),
        Err(error) => {
            tracing::error!(%error, "live rows");
            Vec::new()
        }
    }
}

pub async fn servers(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, StatusCode> {
    let account = account_of(&state, &headers)
        .await
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let events = state.monitor.subscribe();
    let stream = futures::stream::unfold((events, state), move |(mut events, state)| async move {
        loop {
            let wanted = match events.recv().await {
                Ok(event) if event.account_id == account => event.server_id,
                Ok(_) => continue,
                // Fell behind: the full list brings the page up to date.
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return None,
            };
            let rows = rows(&state, account, wanted).await;
            let event = match wanted {
                // The server is no more (deleted): the page drops its row.
                Some(id) if rows.is_empty() => Event::default().event("gone").data(id.to_string()),
                _ => Event::default()
                    .event("rows")
                    .json_data(&rows)
                    .unwrap_or_default(),
            };
            return Some((Ok(event), (events, state)));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

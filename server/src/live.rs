//! Live updates for the console: server-sent events at `/live/servers`.
//!
//! The Servers page subscribes after hydration, with its view's query, and gets the rows of
//! the page it shows whenever they change (see [`servers`]). Only the signed-in account's
//! servers are ever sent.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use app::listing::{Paged, ServerQuery};
use app::model::ServerRow;
use app::ssr::auth::{token_hash, SESSION_COOKIE};
use app::ssr::fleet::server_row;
use app::ssr::state::AppState;
use app::ssr::store::{AccountId, SessionUser};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

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

/// The page of `query` as the console shows it; `None` when the store could not answer.
async fn page(
    state: &AppState,
    account: AccountId,
    query: &ServerQuery,
) -> Option<Paged<ServerRow>> {
    match state.store.server_page(account, query).await {
        Ok(page) => Some(page.map(|r| server_row(state, &r))),
        Err(error) => {
            tracing::error!(%error, "live page");
            None
        }
    }
}

/// `/live/servers?<the list's query>`: `page` events, each the view's page (its rows and
/// counts) whenever it differs from the one sent before. The first is sent at once, so a
/// change made between the page's load and its subscription is not missed; after that,
/// every change of one of the account's servers runs the view's query again, and a change
/// the view does not show (a server on another page) sends nothing.
pub async fn servers(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, StatusCode> {
    let account = account_of(&state, &headers)
        .await
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let query = ServerQuery::from_params(|key| params.get(key).map(String::as_str));
    let events = state.monitor.subscribe();
    let start = (events, state, None::<Paged<ServerRow>>, true);
    let stream = futures::stream::unfold(start, move |(mut events, state, mut sent, first)| {
        let query = query.clone();
        async move {
            let mut first = first;
            loop {
                if !first {
                    match events.recv().await {
                        Ok(event) if event.account_id == account => {}
                        Ok(_) => continue,
                        // Fell behind: the query brings the page up to date all the same.
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    }
                    // Changes that came together (a measurement round, an action on a
                    // cluster) are one query, not one each: the query sees them all.
                    while !matches!(
                        events.try_recv(),
                        Err(TryRecvError::Empty | TryRecvError::Closed)
                    ) {}
                }
                first = false;
                let Some(now) = page(&state, account, &query).await else {
                    continue;
                };
                if sent.as_ref() == Some(&now) {
                    continue;
                }
                let event = Event::default()
                    .event("page")
                    .json_data(&now)
                    .unwrap_or_default();
                sent = Some(now);
                return Some((Ok(event), (events, state, sent, false)));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

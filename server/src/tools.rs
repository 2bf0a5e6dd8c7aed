//! The network tools' output, streamed: server-sent events at
//! `/live/servers/{id}/tools?tool=ping|traceroute&target=IP&count=N`.
//!
//! The page opens one stream per run. A run the form's values do not allow ends at once
//! with one `refused` event (JSON: the field, if the problem is one field's, and the
//! message); otherwise `line` events carry the tool's output as it comes and a `done`
//! event ends it. Only a server of the signed-in account can be asked (404 otherwise, 401
//! without a session); each run is in the audit log.

use std::convert::Infallible;

use app::error::AppError;
use app::ssr::nettools::Run;
use app::ssr::state::AppState;
use app::ssr::store::Audit;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use futures::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;

use crate::live::user_of;

#[derive(Debug, Deserialize)]
pub struct ToolQuery {
    #[serde(default)]
    tool: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    count: String,
}

/// The `refused` event of `error`.
fn refused(error: &AppError) -> Event {
    let (field, message) = match error {
        AppError::Field { field, message } => (Some(field.clone()), message.clone()),
        other => (None, other.general().unwrap_or_else(|| other.to_string())),
    };
    Event::default()
        .event("refused")
        .json_data(serde_json::json!({ "field": field, "message": message }))
        .unwrap_or_default()
}

pub async fn network_tool(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(query): Query<ToolQuery>,
    headers: HeaderMap,
) -> Result<Sse<BoxStream<'static, Result<Event, Infallible>>>, StatusCode> {
    let user = user_of(&state, &headers)
        .await
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let server = state
        .store
        .server(user.account_id, id)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .ok_or(StatusCode::NOT_FOUND)?;
    let once = |error: AppError| -> Sse<BoxStream<'static, Result<Event, Infallible>>> {
        Sse::new(stream::once(async move { Ok(refused(&error)) }).boxed())
    };
    let run = match Run::parse(&query.tool, &query.target, &query.count) {
        Ok(run) => run,
        Err(error) => return Ok(once(error)),
    };
    let node = match server.ip.parse() {
        Ok(ip) if state.engine.is_running(id) => ip,
        _ => {
            return Ok(once(AppError::Refused(
                "The server's node is not running: start it to run network tools from it.".into(),
            )))
        }
    };
    let lines = match state.nettools.start(node, run) {
        Ok(lines) => lines,
        Err(error) => return Ok(once(error)),
    };
    if let Err(error) = state
        .store
        .record(Audit::by(
            &user,
            format!("server.tool.{}", run.tool.as_str()),
            format!("server {id}"),
            format!("to {} ({})", run.target, run.count),
        ))
        .await
    {
        tracing::error!(%error, "audit of a network tool run");
    }
    let output = stream::unfold(lines, |mut lines| async move {
        let line = lines.recv().await?;
        Some((Ok(Event::default().event("line").data(line)), lines))
    });
    let done = stream::once(async { Ok(Event::default().event("done").data("")) });
    Ok(Sse::new(output.chain(done).boxed()))
}

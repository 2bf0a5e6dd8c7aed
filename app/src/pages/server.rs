//! One server's detail page.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::servers::{get_server, RunServerAction};
use crate::components::forms::load_error;
use crate::components::forms::FormError;
use crate::error::AppError;
use crate::model::ServerCommand;

#[component]
pub fn ServerPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok());
    let action = ServerAction::<RunServerAction>::new();
    let server = Resource::new(
        move || (id(), action.version().get()),
        |(id, _)| async move {
            match id {
                Some(id) => get_server(id).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match server.await {
                    Err(AppError::NotFound) => view! {
                        <h1>"Server not found"</h1>
                        <p><a href="/servers">"Back to Servers"</a></p>
                    }
                    .into_any(),
                    Err(error) => load_error(error),
                    Ok(s) => view! {
                        <h1>{s.alias.clone()} " " <small>{s.ip.clone()}</small></h1>
                        <section class="card">
                            <h2>"Summary"</h2>
                            <dl class="summary">
                                <dt>"IP"</dt><dd>{s.ip}</dd>
                                <dt>"Zone"</dt><dd>{s.zone}</dd>
                                <dt>"Type"</dt><dd>{s.kind.label()}</dd>
                                <dt>"Cluster"</dt><dd>{s.cluster.unwrap_or_else(|| "—".into())}</dd>
                                <dt>"Channels"</dt><dd>{format!("{} / {}", s.channels_in_use, s.channels)}</dd>
                                <dt>"CPS"</dt><dd>{format!("{} / {}", s.cps_now, s.cps)}</dd>
                                <dt>"Expires"</dt><dd>{s.expires}</dd>
                                <dt>"Status"</dt><dd data-testid="status">{s.status.label()}</dd>
                            </dl>
                        </section>
                        <Actions id=s.id action/>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

/// The Actions menu: each action first shows what it will do to live calls, and runs only
/// when confirmed.
#[component]
fn Actions(id: i64, action: ServerAction<RunServerAction>) -> impl IntoView {
    let chosen = RwSignal::new(None::<ServerCommand>);
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    // A finished action closes the confirmation.
    let done = move || action.version().get();
    view! {
        <section class="card actions">
            <h2>"Actions"</h2>
            <p class="hint">"These actions occur in real time and can affect live calls."</p>
            <div class="buttons">
                {ServerCommand::ALL
                    .into_iter()
                    .map(|a| view! {
                        <button type="button" class="secondary" data-action=a.as_str() on:click=move |_| chosen.set(Some(a))>
                            {a.label()}
                        </button>
                    })
                    .collect_view()}
            </div>
            {move || {
                let _ = done();
                chosen.get().map(|a| view! {
                    <div class="confirm" role="dialog" aria-label="Confirm action">
                        <p><strong>{a.label()}</strong>": "{a.consequence()}</p>
                        <ActionForm action=action attr:class="inline">
                            <input type="hidden" name="id" value=id.to_string()/>
                            <input type="hidden" name="action" value=a.as_str()/>
                            <button type="submit" disabled=move || action.pending().get()>
                                {move || if action.pending().get() { "Working…" } else { "Confirm" }}
                            </button>
                            <button type="button" class="secondary" on:click=move |_| chosen.set(None)>"Cancel"</button>
                        </ActionForm>
                    </div>
                })
            }}
            <FormError error/>
        </section>
    }
}

//! One server's detail page.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::servers::get_server;
use crate::components::forms::load_error;
use crate::error::AppError;

#[component]
pub fn ServerPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok());
    let server = Resource::new(id, |id| async move {
        match id {
            Some(id) => get_server(id).await,
            None => Err(AppError::NotFound),
        }
    });
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
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

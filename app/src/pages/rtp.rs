use leptos::prelude::*;

use crate::api::catalog::list_rtp_servers;
use crate::components::forms::load_error;

/// The platform's media relays, by zone, with a Refresh that reloads the list.
#[component]
pub fn RtpServersPage() -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let relays = Resource::new(move || refresh.get(), |_| list_rtp_servers());
    view! {
        <h1>"RTP Servers"</h1>
        <p class="hint">"Choose the media zone that adds the least latency between your customers and carriers."</p>
        <button type="button" on:click=move |_| refresh.update(|n| *n += 1)>"Refresh"</button>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match relays.await {
                    Err(error) => load_error(error),
                    Ok(rows) if rows.is_empty() => view! { <p class="empty">"No RTP servers yet."</p> }.into_any(),
                    Ok(rows) => view! {
                        <table>
                            <thead><tr><th>"IP"</th><th>"Aliases"</th><th>"Zone"</th></tr></thead>
                            <tbody>
                                {rows
                                    .into_iter()
                                    .map(|r| view! { <tr><td>{r.ip}</td><td>{r.aliases}</td><td>{r.zone}</td></tr> })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

use leptos::prelude::*;

use crate::api::catalog::list_rtp_servers;
use crate::api::operator::{AddRtpServer, RemoveRtpServer};
use crate::components::forms::{load_error, FieldError, FormError};
use crate::Auth;

/// The platform's media relays, by zone, with a Refresh that reloads the list. The operator
/// also adds and removes relays here.
#[component]
pub fn RtpServersPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let add = ServerAction::<AddRtpServer>::new();
    let remove = ServerAction::<RemoveRtpServer>::new();
    let refresh = RwSignal::new(0u32);
    let relays = Resource::new(
        move || (refresh.get(), add.version().get(), remove.version().get()),
        |_| list_rtp_servers(),
    );
    let error = Signal::derive(move || add.value().get().and_then(Result::err));
    view! {
        <h1>"RTP Servers"</h1>
        <p class="hint">"Choose the media zone that adds the least latency between your customers and carriers."</p>
        <button type="button" on:click=move |_| refresh.update(|n| *n += 1)>"Refresh"</button>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let operator = matches!(auth.me.await, Ok(Some(me)) if me.is_operator);
                let list = match relays.await {
                    Err(error) => return load_error(error),
                    Ok(rows) if rows.is_empty() => view! { <p class="empty">"No RTP servers yet."</p> }.into_any(),
                    Ok(rows) => view! {
                        <table class="rtp">
                            <thead><tr><th>"IP"</th><th>"Aliases"</th><th>"Zone"</th>{operator.then(|| view! { <th></th> })}</tr></thead>
                            <tbody>
                                {rows
                                    .into_iter()
                                    .map(|r| {
                                        let ip = r.ip.clone();
                                        view! {
                                            <tr>
                                                <td>{r.ip}</td>
                                                <td>{r.aliases}</td>
                                                <td>{r.zone}</td>
                                                {operator.then(|| view! {
                                                    <td>
                                                        <ActionForm action=remove>
                                                            <input type="hidden" name="ip" value=ip/>
                                                            <button type="submit" class="danger">"Remove"</button>
                                                        </ActionForm>
                                                    </td>
                                                })}
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                };
                view! {
                    {list}
                    {operator.then(|| view! {
                        <section class="card">
                            <h2>"Add an RTP server"</h2>
                            <ActionForm action=add attr:class="inline">
                                <label>"IP" <input type="text" name="ip" required/><FieldError error field="ip"/></label>
                                <label>"Aliases" <input type="text" name="aliases" placeholder="rtp1.lon, media-a"/><FieldError error field="aliases"/></label>
                                <label>"Zone" <input type="text" name="zone" required placeholder="eu-london"/><FieldError error field="zone"/></label>
                                <button type="submit">"Add"</button>
                            </ActionForm>
                            <FormError error/>
                        </section>
                    })}
                }
                .into_any()
            })}
        </Transition>
    }
}

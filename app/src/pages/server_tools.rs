//! A server's tools, each a page of its own next to the detail page (so the detail page's
//! wasm stays small): the phones registered to it, its SIP trace, and the certificates
//! attached to it.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::certificates::{
    list_certificates, server_certificates, AttachCertificate, DetachCertificate,
};
use crate::api::config::server_trace;
use crate::api::sip_users::list_registrations;
use crate::components::forms::FormError;
use crate::components::pager::{ListSearch, Pager};
use crate::listing::ListQuery;

/// The `:id` of the route.
fn server_id() -> Option<i64> {
    use_params_map().read_untracked().get("id")?.parse().ok()
}

/// The heading of a tool page, with the way back to the server.
#[component]
fn ToolHeading(id: i64, title: &'static str) -> impl IntoView {
    view! {
        <h1>{title}</h1>
        <p><A href=format!("/servers/{id}")>"← Back to the server"</A></p>
    }
}

#[component]
pub fn ServerRegistrationsPage() -> impl IntoView {
    match server_id() {
        Some(id) => view! { <ToolHeading id title="Registrations"/><Registrations id/> }.into_any(),
        None => view! { <h1>"Server not found"</h1> }.into_any(),
    }
}

#[component]
pub fn ServerTracePage() -> impl IntoView {
    match server_id() {
        Some(id) => view! { <ToolHeading id title="SIP trace"/><Trace id/> }.into_any(),
        None => view! { <h1>"Server not found"</h1> }.into_any(),
    }
}

#[component]
pub fn ServerCertificatesPage() -> impl IntoView {
    match server_id() {
        Some(id) => {
            view! { <ToolHeading id title="Attached certificates"/><CertificatesSection id/> }
                .into_any()
        }
        None => view! { <h1>"Server not found"</h1> }.into_any(),
    }
}

/// The server's certificates: attached ones with Detach, and a form to attach one of the
/// account's certificates as Server or Client.
#[component]
fn CertificatesSection(id: i64) -> impl IntoView {
    let attach = ServerAction::<AttachCertificate>::new();
    let detach = ServerAction::<DetachCertificate>::new();
    let attached = Resource::new(
        move || (attach.version().get(), detach.version().get()),
        move |_| server_certificates(id),
    );
    let available = Resource::new(|| (), |_| list_certificates());
    let error = Signal::derive(move || attach.value().get().and_then(Result::err));
    view! {
        <section class="card certificates">
            <h2>"Certificates"</h2>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let attached = attached.await.unwrap_or_default();
                    let available = available.await.unwrap_or_default();
                    view! {
                        <ul class="attached">
                            {attached
                                .into_iter()
                                .map(|c| {
                                    let text = format!("{} — {}", c.subject, if c.usage == "server" { "Server" } else { "Client" });
                                    view! {
                                        <li data-certificate=c.id>
                                            {text}
                                            <ActionForm action=detach attr:class="inline compact">
                                                <input type="hidden" name="server_id" value=id.to_string()/>
                                                <input type="hidden" name="certificate_id" value=c.id.to_string()/>
                                                <button type="submit" class="secondary">"Detach"</button>
                                            </ActionForm>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                        <ActionForm action=attach attr:class="inline">
                            <input type="hidden" name="server_id" value=id.to_string()/>
                            <label>"Certificate"
                                <select name="certificate_id" required>
                                    {available.into_iter().map(|c| view! { <option value=c.id.to_string()>{c.subject}</option> }).collect_view()}
                                </select>
                            </label>
                            <label>"Type"
                                <select name="usage">
                                    <option value="server">"Server"</option>
                                    <option value="client">"Client"</option>
                                </select>
                            </label>
                            <button type="submit">"Attach"</button>
                        </ActionForm>
                    }
                })}
            </Transition>
            <FormError error/>
        </section>
    }
}

/// Resize Capacity: a new channel count, active after the platform's delay; 1001 or more
/// reboots the server at once, so it asks for confirmation.
/// The registrations this server holds, refreshed every few seconds while the page is open;
/// searched and paged on the server (`?q=alice&page=2`), so only one page travels.
#[component]
fn Registrations(id: i64) -> impl IntoView {
    let tick = crate::components::ticker::ticker(std::time::Duration::from_secs(5));
    let params = leptos_router::hooks::use_query_map();
    let query = Memo::new(move |_| params.with(|p| ListQuery::from_params(|key| p.get_str(key))));
    let rows = Resource::new(
        move || (tick.get(), query.get()),
        move |(_, query)| list_registrations(id, query),
    );
    let base = format!("/servers/{id}/registrations");
    view! {
        <section class="card registrations">
            <h2>"Registrations"</h2>
            <Transition fallback=|| ()>
                {move || {
                    let base = base.clone();
                    Suspend::new(async move {
                    match rows.await {
                        Ok(page) if page.total == 0 => view! { <p class="empty">"No phone is registered to this server."</p> }.into_any(),
                        Ok(page) => {
                            let count = page.count_text("registration", "registrations");
                            let (at, pages, rows) = (page.page, page.pages(), page.rows);
                            let href = {
                                let base = base.clone();
                                Callback::new(move |to: u32| format!("{base}{}", query.get_untracked().on_page(to).to_query()))
                            };
                            view! {
                            <ListSearch action=base current=query.get_untracked().search label="Search by AOR or contact" placeholder="AOR or contact"/>
                            <p class="count" data-testid="registration-count">{count}</p>
                            <table>
                                <thead><tr><th>"AOR"</th><th>"Contact"</th><th>"Received from"</th><th>"Transport"</th><th>"Expires in"</th><th>"Latency"</th><th>"State"</th></tr></thead>
                                <tbody>
                                    {rows
                                        .into_iter()
                                        .map(|r| view! {
                                            <tr>
                                                <td>{r.aor}</td>
                                                <td>{r.contact}</td>
                                                <td>{r.received}</td>
                                                <td>{r.transport}</td>
                                                <td>{format!("{} s", r.expires_in)}</td>
                                                <td>{r.latency_ms.unwrap_or_else(|| "—".into())}</td>
                                                <td class=if r.online { "online" } else { "offline" }>{if r.online { "Online" } else { "Offline" }}</td>
                                            </tr>
                                        })
                                        .collect_view()}
                                </tbody>
                            </table>
                            <Pager page=at pages href/>
                            }
                            .into_any()
                        }
                        Err(error) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                    }
                })}}
            </Transition>
        </section>
    }
}

/// The server's SIP trace: the latest messages its nodes received and sent, as its data
/// zone's collector holds them, newest first; each opens to the whole message.
#[component]
fn Trace(id: i64) -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let trace = Resource::new(move || refresh.get(), move |_| server_trace(id));
    view! {
        <section class="card trace">
            <h2>"SIP trace"</h2>
            <button type="button" on:click=move |_| refresh.update(|n| *n += 1)>"Refresh"</button>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match trace.await {
                        Ok(trace) => view! {
                            <p data-testid="trace-collector">
                                {format!(
                                    "Kept in the {} data zone (collector {}), shipped over {}.",
                                    trace.zone, trace.collector, trace.shipped_over
                                )}
                            </p>
                            {if trace.messages.is_empty() {
                                view! { <p class="empty">"No SIP messages traced yet."</p> }.into_any()
                            } else {
                                view! {
                                    <table>
                                        <thead><tr><th>"Time (UTC)"</th><th>"From"</th><th>"To"</th><th>"Message"</th><th>"Shipped over"</th></tr></thead>
                                        <tbody>
                                            {trace
                                                .messages
                                                .into_iter()
                                                .map(|m| view! {
                                                    <tr>
                                                        <td>{m.time}</td>
                                                        <td>{m.from}</td>
                                                        <td>{m.to}</td>
                                                        <td><details><summary>{m.first_line}</summary><pre>{m.text}</pre></details></td>
                                                        <td class="shipped">{m.shipped_over}</td>
                                                    </tr>
                                                })
                                                .collect_view()}
                                        </tbody>
                                    </table>
                                }
                                .into_any()
                            }}
                        }
                        .into_any(),
                        Err(error) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

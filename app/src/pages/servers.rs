//! The Servers page: the account's servers, live, and the deploy form.
//!
//! The list is filtered, sorted and paged in the browser ([`PAGE`] rows at a time), so the
//! page stays light with 1,000 servers. After hydration it subscribes to the server-sent
//! events at `/live/servers`: a node's change (status, latency) patches its row in place
//! without a reload, and a deleted server's row goes.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::clusters::list_clusters;
use crate::api::servers::{list_servers, list_zones, DeployServer};
use crate::components::forms::{load_error, FieldError, FormError};
use crate::model::{ClusterRow, Health, ServerKind, ServerRow, ServerStatus, ZoneInfo};

/// Rows shown per page.
pub const PAGE: usize = 50;

/// Newest known version of each server, from live events; overrides what the page loaded.
/// `None`: the server was deleted since.
type Live = RwSignal<HashMap<i64, Option<ServerRow>>>;

#[component]
pub fn ServersPage() -> impl IntoView {
    let deploy = ServerAction::<DeployServer>::new();
    let servers = Resource::new(move || deploy.version().get(), |_| list_servers());
    let zones = Resource::new(move || deploy.version().get(), |_| list_zones());
    let clusters = Resource::new(|| (), |_| list_clusters());
    let live: Live = RwSignal::new(HashMap::new());
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| subscribe(live));
    view! {
        <h1>"Servers"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading servers…"</p> }>
            {move || Suspend::new(async move {
                let rows = match servers.await {
                    Ok(rows) => rows,
                    Err(error) => return load_error(error),
                };
                let zones = zones.await.unwrap_or_default();
                let clusters = clusters.await.unwrap_or_default();
                let table = if rows.is_empty() {
                    empty_state()
                } else {
                    view! { <ServerTable loaded=rows live/> }.into_any()
                };
                view! {
                    <DeployForm deploy zones clusters/>
                    {table}
                }
                .into_any()
            })}
        </Transition>
    }
}

/// Listens to the account's live events and keeps `live` up to date. Closed when the page
/// goes away.
#[cfg(feature = "hydrate")]
fn subscribe(live: Live) {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    let Ok(source) = web_sys::EventSource::new("/live/servers") else {
        return;
    };
    let on_rows =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            if let Ok(rows) = serde_json::from_str::<Vec<ServerRow>>(&text) {
                live.update(|known| {
                    for row in rows {
                        known.insert(row.id, Some(row));
                    }
                });
            }
        });
    let _ = source.add_event_listener_with_callback("rows", on_rows.as_ref().unchecked_ref());
    on_rows.forget();
    let on_gone =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            if let Some(id) = event.data().as_string().and_then(|s| s.parse::<i64>().ok()) {
                live.update(|known| {
                    known.insert(id, None);
                });
            }
        });
    let _ = source.add_event_listener_with_callback("gone", on_gone.as_ref().unchecked_ref());
    on_gone.forget();
    let source = send_wrapper::SendWrapper::new(source);
    on_cleanup(move || source.close());
}

#[component]
fn DeployForm(
    deploy: ServerAction<DeployServer>,
    zones: Vec<ZoneInfo>,
    clusters: Vec<ClusterRow>,
) -> impl IntoView {
    let error = Signal::derive(move || deploy.value().get().and_then(Result::err));
    view! {
        <section class="card deploy">
            <h2>"Deploy a server"</h2>
            <ActionForm action=deploy attr:class="inline">
                <label>
                    "Zone"
                    <select name="zone" required>
                        {zones
                            .into_iter()
                            .map(|z| {
                                let text = format!("{} ({} free)", z.label, z.free_addresses);
                                view! { <option value=z.name>{text}</option> }
                            })
                            .collect_view()}
                    </select>
                    <FieldError error field="zone"/>
                </label>
                <label>
                    "Type"
                    <select name="kind">
                        {ServerKind::ALL
                            .iter()
                            .map(|k| view! { <option value=k.as_str() selected=*k == ServerKind::Switch>{k.label()}</option> })
                            .collect_view()}
                    </select>
                    <FieldError error field="kind"/>
                </label>
                <label>
                    "Cluster"
                    <select name="cluster">
                        <option value="">"None"</option>
                        {clusters
                            .into_iter()
                            .map(|c| view! { <option value=c.id.to_string()>{c.name}</option> })
                            .collect_view()}
                    </select>
                    <FieldError error field="cluster"/>
                </label>
                <label>
                    "Alias"
                    <input type="text" name="alias" placeholder="automatic" maxlength="40"/>
                    <FieldError error field="alias"/>
                </label>
                <label>
                    "Channels"
                    <input type="text" name="channels" inputmode="numeric" placeholder="100"/>
                    <FieldError error field="channels"/>
                </label>
                <label>
                    "CPS"
                    <input type="text" name="cps" inputmode="numeric" placeholder="10"/>
                    <FieldError error field="cps"/>
                </label>
                <button type="submit" disabled=move || deploy.pending().get()>
                    {move || if deploy.pending().get() { "Deploying…" } else { "Deploy" }}
                </button>
            </ActionForm>
            <FormError error/>
            <p class="hint">"Needs $20 of available balance, plus $20 for each server already in your account."</p>
        </section>
    }
}

fn empty_state() -> AnyView {
    view! {
        <div class="card empty" data-testid="empty-state">
            <h2>"No servers yet"</h2>
            <p>"Before deploying your first server, complete the Getting Started checklist."</p>
            <a class="button" href="/getting-started">"Open the Getting Started checklist"</a>
        </div>
    }
    .into_any()
}

/// The order rows can be shown in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Ip,
    Alias,
    Status,
    Expires,
}

impl SortBy {
    fn parse(s: &str) -> Self {
        match s {
            "alias" => SortBy::Alias,
            "status" => SortBy::Status,
            "expires" => SortBy::Expires,
            _ => SortBy::Ip,
        }
    }
}

fn ip_key(ip: &str) -> u32 {
    ip.parse::<std::net::Ipv4Addr>()
        .map(u32::from)
        .unwrap_or(u32::MAX)
}

#[component]
fn ServerTable(loaded: Vec<ServerRow>, live: Live) -> impl IntoView {
    let zone = RwSignal::new(String::new());
    let kind = RwSignal::new(String::new());
    let cluster = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    let sort = RwSignal::new(SortBy::Ip);
    let page = RwSignal::new(0usize);

    let option_set = |values: Vec<String>| {
        let mut values = values;
        values.sort();
        values.dedup();
        values
    };
    let zones = option_set(loaded.iter().map(|r| r.zone.clone()).collect());
    let cluster_names = option_set(loaded.iter().filter_map(|r| r.cluster.clone()).collect());
    let loaded = StoredValue::new(loaded);

    // Every row as newest known, filtered and sorted.
    let visible = Memo::new(move |_| {
        let live = live.get();
        let (zone, kind, cluster, status) = (zone.get(), kind.get(), cluster.get(), status.get());
        let mut rows: Vec<ServerRow> = loaded.with_value(|loaded| {
            let mut seen: Vec<ServerRow> = loaded
                .iter()
                .filter_map(|r| match live.get(&r.id) {
                    Some(newer) => newer.clone(),
                    None => Some(r.clone()),
                })
                .collect();
            // Servers that appeared after the page loaded (deployed elsewhere).
            seen.extend(
                live.values()
                    .flatten()
                    .filter(|r| !loaded.iter().any(|l| l.id == r.id))
                    .cloned(),
            );
            seen
        });
        rows.retain(|r| {
            (zone.is_empty() || r.zone == zone)
                && (kind.is_empty() || r.kind.as_str() == kind)
                && (cluster.is_empty() || r.cluster.as_deref() == Some(cluster.as_str()))
                && (status.is_empty() || r.status.as_str() == status)
        });
        match sort.get() {
            SortBy::Ip => rows.sort_by_key(|r| ip_key(&r.ip)),
            SortBy::Alias => rows.sort_by(|a, b| a.alias.cmp(&b.alias)),
            SortBy::Status => rows.sort_by(|a, b| {
                a.status
                    .label()
                    .cmp(b.status.label())
                    .then(ip_key(&a.ip).cmp(&ip_key(&b.ip)))
            }),
            SortBy::Expires => rows.sort_by(|a, b| {
                a.expires
                    .cmp(&b.expires)
                    .then(ip_key(&a.ip).cmp(&ip_key(&b.ip)))
            }),
        }
        rows
    });
    let pages = move || visible.with(|rows| rows.len().div_ceil(PAGE).max(1));
    let shown = move || {
        let last = pages() - 1;
        let page = page.get().min(last);
        visible.with(|rows| {
            rows.iter()
                .skip(page * PAGE)
                .take(PAGE)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    // Named, not written inside `disabled=`: in `view!` a `>` or `>=` in an attribute's
    // closure ends the tag, and the rest of it is printed as text.
    let on_first = move || page.get() == 0;
    let on_last = move || page.get() + 1 >= pages();
    let filter = move |signal: RwSignal<String>| {
        move |ev: leptos::ev::Event| {
            signal.set(event_target_value(&ev));
            page.set(0);
        }
    };

    view! {
        <div class="filters">
            <label>"Zone"
                <select aria-label="Filter by zone" on:change=filter(zone)>
                    <option value="">"All"</option>
                    {zones.into_iter().map(|z| { let label = z.clone(); view! { <option value=z>{label}</option> } }).collect_view()}
                </select>
            </label>
            <label>"Type"
                <select aria-label="Filter by type" on:change=filter(kind)>
                    <option value="">"All"</option>
                    {ServerKind::ALL.iter().map(|k| view! { <option value=k.as_str()>{k.label()}</option> }).collect_view()}
                </select>
            </label>
            <label>"Cluster"
                <select aria-label="Filter by cluster" on:change=filter(cluster)>
                    <option value="">"All"</option>
                    {cluster_names.into_iter().map(|c| { let label = c.clone(); view! { <option value=c>{label}</option> } }).collect_view()}
                </select>
            </label>
            <label>"Status"
                <select aria-label="Filter by status" on:change=filter(status)>
                    <option value="">"All"</option>
                    {[ServerStatus::Installing, ServerStatus::Running, ServerStatus::Stopped, ServerStatus::Rebooting, ServerStatus::Updating, ServerStatus::Expired]
                        .iter()
                        .map(|s| view! { <option value=s.as_str()>{s.label()}</option> })
                        .collect_view()}
                </select>
            </label>
            <label>"Sort"
                <select aria-label="Sort by" on:change=move |ev| sort.set(SortBy::parse(&event_target_value(&ev)))>
                    <option value="ip">"IP"</option>
                    <option value="alias">"Alias"</option>
                    <option value="status">"Status"</option>
                    <option value="expires">"Expires"</option>
                </select>
            </label>
            <span class="count" data-testid="server-count">{move || format!("{} servers", visible.with(Vec::len))}</span>
        </div>
        <table class="servers">
            <thead>
                <tr>
                    <th>"IP"</th>
                    <th>"Alias"</th>
                    <th>"Type"</th>
                    <th>"Cluster"</th>
                    <th>"Channels"</th>
                    <th>"CPS"</th>
                    <th>"Expires"</th>
                    <th>"Status"</th>
                </tr>
            </thead>
            <tbody>
                <For each=shown key=|row| row.clone() let:row>
                    {server_row(row)}
                </For>
            </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
            <button type="button" class="secondary" disabled=on_first on:click=move |_| page.update(|p| *p = p.saturating_sub(1))>"Previous"</button>
            <span data-testid="page">{move || format!("Page {} of {}", page.get().min(pages() - 1) + 1, pages())}</span>
            <button type="button" class="secondary" disabled=on_last on:click=move |_| page.update(|p| *p += 1)>"Next"</button>
        </nav>
    }
}

fn server_row(row: ServerRow) -> impl IntoView {
    let href = format!("/servers/{}", row.id);
    let status_class = format!("status {}", row.status.as_str());
    let ip = row.ip.clone();
    let card = match row.health {
        Some(health) => format!(
            "SIP latency: {} · ICMP latency: {}",
            Health::describe(health.sip_us),
            Health::describe(health.icmp_us)
        ),
        None if row.status == ServerStatus::Running => "Measuring latency…".to_string(),
        None => "Not measured: the node is not running.".to_string(),
    };
    view! {
        <tr data-server-id=row.id data-ip=ip>
            <td class="ip"><A href=href>{row.ip}</A></td>
            <td>{row.alias}</td>
            <td>{row.kind.label()}</td>
            <td>{row.cluster.unwrap_or_else(|| "—".into())}</td>
            <td class="channels">{format!("{} / {}", row.channels_in_use, row.channels)}</td>
            <td class="cps">{format!("{} / {}", row.cps_now, row.cps)}</td>
            <td>{row.expires}</td>
            <td class=status_class>
                <span class="dot" tabindex="0" aria-label="Latency"></span>
                <span class="hovercard" role="tooltip" data-testid="latency">{card}</span>
                <span data-testid="status">{row.status.label()}</span>
            </td>
        </tr>
    }
}

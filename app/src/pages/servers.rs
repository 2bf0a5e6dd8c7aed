//! The Servers page: the account's servers, live, and the deploy form.
//!
//! The list is filtered, sorted and paged by the store (see [`crate::listing`]); the view
//! lives in the URL's query (`/servers?zone=eu-london&page=3`), so it can be bookmarked and
//! reloaded, and Back and Forward move between views. The page carries only the rows it
//! shows. After hydration it subscribes to the server-sent events at `/live/servers` with
//! the same query: whenever what this view shows changes (a row's status or latency, a
//! server deployed or deleted, the counts), the new page arrives and the rows that changed
//! are redrawn in place. A change on another page sends nothing.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;

use crate::api::clusters::list_clusters;
use crate::api::servers::{list_zones, server_page, DeployServer};
use crate::components::forms::{load_error, FieldError, FormError};
use crate::components::pager::Pager;
use crate::listing::{Paged, ServerQuery, ServerSort};
use crate::model::{ClusterRow, Health, ServerKind, ServerRow, ServerStatus, ZoneInfo};

/// The newest page the live events brought for the view on screen; `None` until one came.
type Live = RwSignal<Option<Paged<ServerRow>>>;

#[component]
pub fn ServersPage() -> impl IntoView {
    let deploy = ServerAction::<DeployServer>::new();
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(|p| ServerQuery::from_params(|key| p.get_str(key))));
    let servers = Resource::new(
        move || (query.get(), deploy.version().get()),
        |(query, _)| server_page(query),
    );
    let zones = Resource::new(move || deploy.version().get(), |_| list_zones());
    let clusters = Resource::new(|| (), |_| list_clusters());
    let live: Live = RwSignal::new(None);
    // A new view, or a new load after a deploy: what the events brought before is stale.
    Effect::new(move |_| {
        query.track();
        deploy.version().track();
        live.set(None);
    });
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| subscribe(query.get(), live));
    view! {
        <h1>"Servers"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading servers…"</p> }>
            {move || Suspend::new(async move {
                let loaded = match servers.await {
                    Ok(page) => page,
                    Err(error) => return load_error(error),
                };
                let zones = zones.await.unwrap_or_default();
                let clusters = clusters.await.unwrap_or_default();
                let table = if loaded.total == 0 {
                    empty_state()
                } else {
                    let filters = Filters {
                        zones: zones.iter().map(|z| (z.name.clone(), z.label.clone())).collect(),
                        clusters: clusters.iter().map(|c| c.name.clone()).collect(),
                    };
                    let shown = Signal::derive(move || live.get().unwrap_or_else(|| loaded.clone()));
                    view! { <ServerTable query shown filters/> }.into_any()
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

/// Listens to the live events of the view `query` shows and keeps `live` up to date.
/// Closed when the view changes or the page goes away.
#[cfg(feature = "hydrate")]
fn subscribe(query: ServerQuery, live: Live) {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    let Ok(source) = web_sys::EventSource::new(&format!("/live/servers{}", query.to_query()))
    else {
        return;
    };
    let on_page =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            if let Ok(page) = serde_json::from_str::<Paged<ServerRow>>(&text) {
                live.set(Some(page));
            }
        });
    let _ = source.add_event_listener_with_callback("page", on_page.as_ref().unchecked_ref());
    on_page.forget();
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

/// What the filters offer: every zone (name, label) and cluster of the account.
struct Filters {
    zones: Vec<(String, String)>,
    clusters: Vec<String>,
}

/// `(value, label)` options of a filter, "All" first; a value the URL asked for that is not
/// one of them is offered too, so the filter in use is always shown.
fn options(current: &str, known: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut all = vec![(String::new(), "All".to_string())];
    if !current.is_empty() && !known.iter().any(|(value, _)| value == current) {
        all.push((current.to_string(), format!("{current} (unknown)")));
    }
    all.extend(known);
    all
}

#[component]
fn ServerTable(
    query: Memo<ServerQuery>,
    shown: Signal<Paged<ServerRow>>,
    filters: Filters,
) -> impl IntoView {
    let navigate = use_navigate();
    let search_navigate = navigate.clone();
    // A filter or the order changed: the first page of the new view.
    let change = move |set: fn(&mut ServerQuery, String)| {
        let navigate = navigate.clone();
        move |ev: leptos::ev::Event| {
            let mut next = query.get_untracked();
            set(&mut next, event_target_value(&ev));
            next.page = 1;
            let options = NavigateOptions {
                scroll: false,
                ..Default::default()
            };
            navigate(&format!("/servers{}", next.to_query()), options);
        }
    };
    let current = query.get_untracked();
    // Named form fields, so that without JavaScript the Search button sends them all.
    let on_change = change.clone();
    let select = move |label: &'static str,
                       name: &'static str,
                       current: String,
                       choices: Vec<(String, String)>,
                       set: fn(&mut ServerQuery, String)| {
        let aria = format!("Filter by {}", label.to_lowercase());
        view! {
            <label>{label}
                <select name=name aria-label=aria on:change=on_change(set)>
                    {options(&current, choices)
                        .into_iter()
                        .map(|(value, text)| {
                            let selected = value == current;
                            view! { <option value=value selected=selected>{text}</option> }
                        })
                        .collect_view()}
                </select>
            </label>
        }
    };
    let kinds = ServerKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), k.label().to_string()))
        .collect();
    let statuses = [
        ServerStatus::Installing,
        ServerStatus::Running,
        ServerStatus::Stopped,
        ServerStatus::Rebooting,
        ServerStatus::Updating,
        ServerStatus::Expired,
    ]
    .iter()
    .map(|s| (s.as_str().to_string(), s.label().to_string()))
    .collect();
    let clusters = filters
        .clusters
        .into_iter()
        .map(|c| (c.clone(), c))
        .collect();
    let sorts: Vec<(String, String)> = ServerSort::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), s.label().to_string()))
        .collect();
    let sort_now = current.sort.as_str().to_string();
    let page = Signal::derive(move || shown.with(|p| p.page));
    let pages = Signal::derive(move || shown.with(Paged::pages));
    let href = Callback::new(move |to: u32| {
        format!("/servers{}", query.get_untracked().on_page(to).to_query())
    });
    let ids = move || shown.with(|p| p.rows.iter().map(|r| r.id).collect::<Vec<_>>());
    // The search box: the same view with this search, from its first page.
    let search = NodeRef::<leptos::html::Input>::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut next = query.get_untracked();
        next.search = search.get().map(|i| i.value()).unwrap_or_default();
        next.page = 1;
        let options = NavigateOptions {
            scroll: false,
            ..Default::default()
        };
        search_navigate(&format!("/servers{}", next.to_query()), options);
    };

    view! {
        <form method="get" action="/servers" class="filters" on:submit=submit>
            {select("Zone", "zone", current.zone.clone(), filters.zones, |q, v| q.zone = v)}
            {select("Type", "type", current.kind.clone(), kinds, |q, v| q.kind = v)}
            {select("Cluster", "cluster", current.cluster.clone(), clusters, |q, v| q.cluster = v)}
            {select("Status", "status", current.status.clone(), statuses, |q, v| q.status = v)}
            <label>"Sort"
                <select name="sort" aria-label="Sort by" on:change=change(|q, v| q.sort = ServerSort::parse(&v))>
                    {sorts.into_iter().map(|(value, text)| { let selected = value == sort_now; view! { <option value=value selected=selected>{text}</option> } }).collect_view()}
                </select>
            </label>
            <label>"Search"
                <input type="search" name="q" node_ref=search aria-label="Search by IP or alias" placeholder="IP or alias" value=current.search.clone()/>
            </label>
            <button type="submit" class="secondary">"Search"</button>
            {current.is_filtered().then(|| view! { <A href="/servers" attr:class="clear">"Clear filters"</A> })}
            <span class="count" data-testid="server-count">{move || shown.with(|p| p.count_text("server", "servers"))}</span>
        </form>
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
                // Keyed by id, each row's cells follow its own memo: a live page redraws the
                // cells that changed, never a row or the table.
                <For each=ids key=|id| *id let:id>
                    {server_row(id, Memo::new(move |_| shown.with(|p| p.rows.iter().find(|r| r.id == id).cloned())))}
                </For>
                {move || shown.with(|p| {
                    let text = if p.total == 0 { "No servers left." } else { "No servers match these filters." };
                    p.rows.is_empty().then(|| view! { <tr class="none"><td colspan="8">{text}</td></tr> })
                })}
            </tbody>
        </table>
        <Pager page pages href/>
    }
}

/// One row; `row` is `None` only while a row that left the page is being removed. A
/// server keeps its address and type for life, so those cells are written once; the
/// others follow the row.
fn server_row(id: i64, row: Memo<Option<ServerRow>>) -> impl IntoView {
    let (ip, kind) = row
        .get_untracked()
        .map(|r| (r.ip, r.kind.label()))
        .unwrap_or_default();
    let ip_attribute = ip.clone();
    let text = move |f: fn(&ServerRow) -> String| {
        move || row.with(|r| r.as_ref().map(f).unwrap_or_default())
    };
    let card = move |r: &ServerRow| match r.health {
        Some(health) => format!(
            "SIP latency: {} · ICMP latency: {}",
            Health::describe(health.sip_us),
            Health::describe(health.icmp_us)
        ),
        None if r.status == ServerStatus::Running => "Measuring latency…".to_string(),
        None => "Not measured: the node is not running.".to_string(),
    };
    // The latency card exists only while the dot is hovered or focused: fifty rows of
    // hidden cards would be a tenth of the page (see `bench/`).
    let card_open = RwSignal::new(false);
    view! {
        <tr data-server-id=id data-ip=ip_attribute>
            <td class="ip"><a href=format!("/servers/{id}")>{ip}</a></td>
            <td>{text(|r| r.alias.clone())}</td>
            <td>{kind}</td>
            <td>{text(|r| r.cluster.clone().unwrap_or_else(|| "—".into()))}</td>
            <td class="channels">{text(|r| format!("{} / {}", r.channels_in_use, r.channels))}</td>
            <td class="cps">{text(|r| format!("{} / {}", r.cps_now, r.cps))}</td>
            <td>{text(|r| r.expires.clone())}</td>
            <td class=text(|r| format!("status {}", r.status.as_str()))>
                <span class="dot" tabindex="0" aria-label="Latency"
                    on:mouseenter=move |_| card_open.set(true) on:mouseleave=move |_| card_open.set(false)
                    on:focus=move |_| card_open.set(true) on:blur=move |_| card_open.set(false)></span>
                {move || card_open.get().then(|| view! { <span class="hovercard" role="tooltip">{text(card)}</span> })}
                <span data-testid="status">{text(|r| r.status.label().to_string())}</span>
            </td>
        </tr>
    }
}

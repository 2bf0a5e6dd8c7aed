//! The Servers page: the account's servers and the deploy form.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::clusters::list_clusters;
use crate::api::servers::{list_servers, list_zones, DeployServer};
use crate::components::forms::{load_error, FieldError, FormError};
use crate::model::{ClusterRow, ServerKind, ServerRow, ZoneInfo};

#[component]
pub fn ServersPage() -> impl IntoView {
    let deploy = ServerAction::<DeployServer>::new();
    let servers = Resource::new(move || deploy.version().get(), |_| list_servers());
    let zones = Resource::new(move || deploy.version().get(), |_| list_zones());
    let clusters = Resource::new(|| (), |_| list_clusters());
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
                view! {
                    <DeployForm deploy zones clusters/>
                    {if rows.is_empty() { empty_state() } else { server_table(rows) }}
                }
                .into_any()
            })}
        </Transition>
    }
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

fn server_table(rows: Vec<ServerRow>) -> AnyView {
    view! {
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
                {rows.into_iter().map(server_row).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

fn server_row(row: ServerRow) -> impl IntoView {
    let href = format!("/servers/{}", row.id);
    let status_class = format!("status {}", row.status.as_str());
    let ip = row.ip.clone();
    view! {
        <tr data-server-id=row.id data-ip=ip>
            <td class="ip"><A href=href>{row.ip}</A></td>
            <td>{row.alias}</td>
            <td>{row.kind.label()}</td>
            <td>{row.cluster.unwrap_or_else(|| "—".into())}</td>
            <td>{format!("{} / {}", row.channels_in_use, row.channels)}</td>
            <td>{format!("{} / {}", row.cps_now, row.cps)}</td>
            <td>{row.expires}</td>
            <td class=status_class data-testid="status">
                <span class="dot" aria-hidden="true"></span>
                {row.status.label()}
            </td>
        </tr>
    }
}

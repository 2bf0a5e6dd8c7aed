//! The Clusters page: create, rename and delete clusters; see their members' totals, and
//! each cluster drawn as a picture (Dispatchers above the Switches they balance over,
//! coloured by state, with live channels and CPS).

use leptos::prelude::*;

use crate::api::clusters::{
    cluster_pictures, list_clusters, CreateCluster, DeleteCluster, RenameCluster,
};
use crate::components::forms::{load_error, FieldError, FormError};
use crate::model::{ClusterPicture, ClusterRow, PictureNode};

#[component]
pub fn ClustersPage() -> impl IntoView {
    let create = ServerAction::<CreateCluster>::new();
    let rename = ServerAction::<RenameCluster>::new();
    let delete = ServerAction::<DeleteCluster>::new();
    let clusters = Resource::new(
        move || {
            (
                create.version().get(),
                rename.version().get(),
                delete.version().get(),
            )
        },
        |_| list_clusters(),
    );
    let create_error = Signal::derive(move || create.value().get().and_then(Result::err));
    let rename_error = Signal::derive(move || rename.value().get().and_then(Result::err));
    let delete_error = Signal::derive(move || delete.value().get().and_then(Result::err));
    view! {
        <h1>"Clusters"</h1>
        <p class="hint">
            "Clustered servers share CPS and channel budgets, dialogs and user registrations: "
            "with CPS 10, a cluster allows 10 CPS in total. A member takes a call while the "
            "cluster's count is below its own limits, so a cluster carries at most its "
            "largest member's channels and CPS (shown below)."
        </p>
        <section class="card">
            <h2>"New cluster"</h2>
            <ActionForm action=create attr:class="inline">
                <label>"Name" <input type="text" name="name" required maxlength="48"/>
                    <FieldError error=create_error field="name"/>
                </label>
                <button type="submit">"Create cluster"</button>
            </ActionForm>
            <FormError error=create_error/>
        </section>
        <FormError error=rename_error/>
        <FieldError error=rename_error field="name"/>
        <FormError error=delete_error/>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match clusters.await {
                    Err(error) => load_error(error),
                    Ok(rows) if rows.is_empty() => view! { <p class="empty">"No clusters yet."</p> }.into_any(),
                    Ok(rows) => view! {
                        <table class="clusters">
                            <thead>
                                <tr><th>"Name"</th><th>"Members"</th><th>"Channels"</th><th>"CPS"</th><th>"Rename"</th><th></th></tr>
                            </thead>
                            <tbody>
                                {rows.into_iter().map(|c| cluster_row(c, rename, delete)).collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                }
            })}
        </Transition>
        <Pictures/>
    }
}

/// Every cluster as an SVG picture, redrawn every two seconds while the page is open.
#[component]
fn Pictures() -> impl IntoView {
    let tick = crate::components::ticker::ticker(std::time::Duration::from_secs(2));
    let pictures = Resource::new(move || tick.get(), |_| cluster_pictures());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match pictures.await {
                    Err(error) => load_error(error),
                    Ok(all) => all.into_iter().map(picture).collect_view().into_any(),
                }
            })}
        </Transition>
    }
}

const BOX_WIDTH: u32 = 180;
const BOX_HEIGHT: u32 = 64;
const GAP: u32 = 24;
const SWITCH_ROW: u32 = 150;

/// One cluster: its Dispatchers in a row above its Switches, a line from each Dispatcher to
/// each Switch it balances over.
fn picture(cluster: ClusterPicture) -> impl IntoView {
    let columns = cluster.dispatchers.len().max(cluster.switches.len()).max(1) as u32;
    let width = columns * (BOX_WIDTH + GAP) + GAP;
    let height = SWITCH_ROW + BOX_HEIGHT + GAP;
    // Each row centred in the picture: the x of its `index`th box.
    let x_of = move |count: usize, index: usize| {
        let row = count as u32 * (BOX_WIDTH + GAP) - GAP;
        (width - row) / 2 + index as u32 * (BOX_WIDTH + GAP)
    };
    let (dispatchers, switches) = (cluster.dispatchers.len(), cluster.switches.len());
    let lines = (0..dispatchers)
        .flat_map(|d| (0..switches).map(move |s| (d, s)))
        .map(|(d, s)| {
            let x1 = x_of(dispatchers, d) + BOX_WIDTH / 2;
            let x2 = x_of(switches, s) + BOX_WIDTH / 2;
            view! { <line x1=x1 y1=GAP + BOX_HEIGHT x2=x2 y2=SWITCH_ROW class="link"/> }
        })
        .collect_view();
    let boxes = cluster
        .dispatchers
        .into_iter()
        .enumerate()
        .map(|(i, node)| node_box(node, x_of(dispatchers, i), GAP, "Dispatcher"))
        .chain(
            cluster
                .switches
                .into_iter()
                .enumerate()
                .map(|(i, node)| node_box(node, x_of(switches, i), SWITCH_ROW, "Switch")),
        )
        .collect_view();
    let empty = dispatchers + switches == 0;
    let label = format!("Cluster {}", cluster.name);
    let key = cluster.name.clone();
    view! {
        <section class="card picture" data-cluster=key>
            <h2>{cluster.name}</h2>
            {if empty {
                view! { <p class="empty">"No servers in this cluster yet."</p> }.into_any()
            } else {
                view! {
                    <svg viewBox=format!("0 0 {width} {height}") width=width height=height role="img" aria-label=label>
                        {lines}
                        {boxes}
                    </svg>
                }
                .into_any()
            }}
        </section>
    }
}

/// One server's box: name and role, state, channels and CPS in use.
fn node_box(node: PictureNode, x: u32, y: u32, role: &'static str) -> impl IntoView {
    let centre = x + BOX_WIDTH / 2;
    let figures = format!(
        "{}/{} ch · {}/{} cps",
        node.channels_in_use, node.channels, node.cps_now, node.cps
    );
    view! {
        <g class=format!("node {}", node.shade.as_str()) data-server=node.ip.clone() data-state=node.state.clone()>
            <title>{format!("{role} {} ({}): {}", node.alias, node.ip, node.state)}</title>
            <rect x=x y=y width=BOX_WIDTH height=BOX_HEIGHT rx="8"/>
            <text x=centre y=y + 20 text-anchor="middle" class="name">{node.alias}</text>
            <text x=centre y=y + 38 text-anchor="middle">{format!("{role} · {}", node.state)}</text>
            <text x=centre y=y + 55 text-anchor="middle" class="figures">{figures}</text>
        </g>
    }
}

fn cluster_row(
    c: ClusterRow,
    rename: ServerAction<RenameCluster>,
    delete: ServerAction<DeleteCluster>,
) -> impl IntoView {
    let id = c.id.to_string();
    let delete_id = id.clone();
    let name = c.name.clone();
    let key = c.name.clone();
    view! {
        <tr data-cluster=key>
            <td class="name">{c.name}</td>
            <td class="members">{c.members}</td>
            <td>{c.channels}</td>
            <td>{c.cps}</td>
            <td>
                <ActionForm action=rename attr:class="inline compact">
                    <input type="hidden" name="id" value=id/>
                    <input type="text" name="name" value=name aria-label="New name" required maxlength="48"/>
                    <button type="submit">"Rename"</button>
                </ActionForm>
            </td>
            <td>
                <ActionForm action=delete attr:class="inline compact">
                    <input type="hidden" name="id" value=delete_id/>
                    <button type="submit" class="danger">"Delete"</button>
                </ActionForm>
            </td>
        </tr>
    }
}

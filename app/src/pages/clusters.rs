//! The Clusters page: create, rename and delete clusters; see their members' totals.

use leptos::prelude::*;

use crate::api::clusters::{list_clusters, CreateCluster, DeleteCluster, RenameCluster};
use crate::components::forms::{load_error, FieldError, FormError};
use crate::model::ClusterRow;

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

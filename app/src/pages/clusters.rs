use leptos::prelude::*;

use crate::api::catalog::list_clusters;
use crate::components::forms::load_error;

/// The account's clusters and how many servers each holds.
#[component]
pub fn ClustersPage() -> impl IntoView {
    let clusters = Resource::new(|| (), |_| list_clusters());
    view! {
        <h1>"Clusters"</h1>
        <p class="hint">"Clustered servers share CPS and channel budgets, dialogs and user registrations."</p>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match clusters.await {
                    Err(error) => load_error(error),
                    Ok(rows) if rows.is_empty() => view! { <p class="empty">"No clusters yet."</p> }.into_any(),
                    Ok(rows) => view! {
                        <table>
                            <thead><tr><th>"Name"</th><th>"Members"</th></tr></thead>
                            <tbody>
                                {rows.into_iter().map(|c| view! { <tr><td>{c.name}</td><td>{c.members}</td></tr> }).collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

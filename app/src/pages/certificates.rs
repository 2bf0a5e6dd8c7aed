use leptos::prelude::*;

use crate::api::catalog::list_certificates;
use crate::components::forms::load_error;

/// The account's TLS certificates (subject, SANs, issuer, expiry; never the key).
#[component]
pub fn CertificatesPage() -> impl IntoView {
    let certificates = Resource::new(|| (), |_| list_certificates());
    view! {
        <h1>"Certificates"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match certificates.await {
                    Err(error) => load_error(error),
                    Ok(rows) if rows.is_empty() => view! { <p class="empty">"No certificates yet."</p> }.into_any(),
                    Ok(rows) => view! {
                        <table>
                            <thead><tr><th>"Subject"</th><th>"SANs"</th><th>"Issuer"</th><th>"Expires"</th></tr></thead>
                            <tbody>
                                {rows
                                    .into_iter()
                                    .map(|c| view! { <tr><td>{c.subject}</td><td>{c.sans}</td><td>{c.issuer}</td><td>{c.expires}</td></tr> })
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

use leptos::prelude::*;

use crate::api::certificates::{list_certificates, DeleteCertificate, UploadCertificate};
use crate::components::forms::{load_error, FieldError, FormError};

/// The account's TLS certificates: upload (chain + key), subject, SANs, issuer, expiry.
#[component]
pub fn CertificatesPage() -> impl IntoView {
    let upload = ServerAction::<UploadCertificate>::new();
    let delete = ServerAction::<DeleteCertificate>::new();
    let certificates = Resource::new(
        move || (upload.version().get(), delete.version().get()),
        |_| list_certificates(),
    );
    let error = Signal::derive(move || upload.value().get().and_then(Result::err));
    view! {
        <h1>"Certificates"</h1>
        <section class="card">
            <h2>"Upload a certificate"</h2>
            <ActionForm action=upload>
                <label>"Certificate chain (PEM)" <textarea name="chain" rows="6" required></textarea></label>
                <FieldError error field="chain"/>
                <label>"Private key (PEM)" <textarea name="key" rows="4" required></textarea></label>
                <FieldError error field="key"/>
                <FormError error/>
                <button type="submit">"Upload"</button>
            </ActionForm>
            <p class="hint">"The private key is kept on the platform and never shown again."</p>
        </section>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match certificates.await {
                    Err(error) => load_error(error),
                    Ok(rows) if rows.is_empty() => view! { <p class="empty">"No certificates yet."</p> }.into_any(),
                    Ok(rows) => view! {
                        <table class="certificates">
                            <thead><tr><th>"Subject"</th><th>"SANs"</th><th>"Issuer"</th><th>"Expires"</th><th></th></tr></thead>
                            <tbody>
                                {rows
                                    .into_iter()
                                    .map(|c| {
                                        let id = c.id.to_string();
                                        view! {
                                            <tr>
                                                <td>{c.subject}</td>
                                                <td class="sans">{c.sans}</td>
                                                <td>{c.issuer}</td>
                                                <td>{c.expires}</td>
                                                <td>
                                                    <ActionForm action=delete>
                                                        <input type="hidden" name="id" value=id/>
                                                        <button type="submit" class="danger">"Delete"</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    })
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

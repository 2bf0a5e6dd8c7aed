use leptos::prelude::*;

use crate::api::account::audit_log;
use crate::components::forms::load_error;
use crate::error::AppError;
use crate::Auth;

/// The account: company, user and available balance.
#[component]
pub fn AccountPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let log = Resource::new(|| (), |_| audit_log());
    view! {
        <h1>"Account"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match auth.me.await {
                    Ok(Some(me)) => view! {
                        <section class="card">
                            <dl class="summary">
                                <dt>"Company"</dt><dd>{me.company}</dd>
                                <dt>"Signed in as"</dt><dd>{me.email}</dd>
                                <dt>"Available balance"</dt><dd data-testid="account-balance">{me.balance.to_string()}</dd>
                            </dl>
                        </section>
                    }
                    .into_any(),
                    Ok(None) => load_error(AppError::NotSignedIn),
                    Err(error) => load_error(error),
                }
            })}
        </Transition>
        <h2>"Audit log"</h2>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match log.await {
                    Err(error) => load_error(error),
                    Ok(entries) => view! {
                        <table class="audit">
                            <thead><tr><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Subject"</th><th>"Detail"</th></tr></thead>
                            <tbody>
                                {entries
                                    .into_iter()
                                    .map(|e| view! { <tr><td>{e.at}</td><td>{e.who}</td><td class="action">{e.action}</td><td>{e.subject}</td><td>{e.detail}</td></tr> })
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

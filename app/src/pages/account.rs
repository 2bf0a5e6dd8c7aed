use leptos::prelude::*;

use crate::components::forms::load_error;
use crate::error::AppError;
use crate::Auth;

/// The account: company, user and available balance.
#[component]
pub fn AccountPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
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
    }
}

use leptos::prelude::*;

use crate::Auth;

/// The landing page: where to go next, depending on whether you are signed in.
#[component]
pub fn HomePage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    view! {
        <section class="hero">
            <h1>"Your own SIP servers, deployed from one console"</h1>
            <p>"Deploy dispatchers and switches into zones, group them into clusters and watch them carry calls."</p>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match auth.me.await {
                        Ok(Some(_)) => view! { <a class="button" href="/servers">"Go to Servers"</a> }.into_any(),
                        _ => view! {
                            <a class="button" href="/signup">"Create an account"</a>
                            " "
                            <a href="/login">"Sign in"</a>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

use leptos::prelude::*;

use crate::api::account::{get_checklist, AcceptTerms};
use crate::components::forms::load_error;

/// The Getting Started checklist with its progress.
#[component]
pub fn GettingStartedPage() -> impl IntoView {
    let accept = ServerAction::<AcceptTerms>::new();
    let list = Resource::new(move || accept.version().get(), |_| get_checklist());
    view! {
        <h1>"Getting Started"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let list = match list.await {
                    Ok(list) => list,
                    Err(error) => return load_error(error),
                };
                let item = |done: bool, text: &'static str| {
                    view! {
                        <li class=if done { "done" } else { "todo" }>
                            <span class="mark">{if done { "✓" } else { "○" }}</span>
                            {text}
                        </li>
                    }
                };
                view! {
                    <section class="card">
                        <p class="progress" data-testid="checklist-progress">
                            {format!("{} of 3 complete", list.done())}
                        </p>
                        <ul class="checklist">
                            {item(list.company_details, "Company details")}
                            {item(list.first_top_up, "First top-up (the platform operator credits your balance)")}
                            {item(list.terms_accepted, "Terms of service accepted")}
                        </ul>
                        {(!list.terms_accepted).then(|| view! {
                            <ActionForm action=accept>
                                <button type="submit">"Accept the terms of service"</button>
                            </ActionForm>
                        })}
                        {list.complete().then(|| view! { <a class="button" href="/servers">"Deploy a server"</a> })}
                    </section>
                }
                .into_any()
            })}
        </Transition>
    }
}

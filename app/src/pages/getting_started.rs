use leptos::prelude::*;

use crate::api::account::{get_checklist, AcceptTerms, SaveCompanyDetails};
use crate::components::forms::{load_error, FieldError, FormError};

/// The Getting Started checklist with its progress: company details, a first top-up, terms.
#[component]
pub fn GettingStartedPage() -> impl IntoView {
    let accept = ServerAction::<AcceptTerms>::new();
    let details = ServerAction::<SaveCompanyDetails>::new();
    let list = Resource::new(
        move || (accept.version().get(), details.version().get()),
        |_| get_checklist(),
    );
    let error = Signal::derive(move || details.value().get().and_then(Result::err));
    view! {
        <h1>"Getting Started"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let list = match list.await {
                    Ok(list) => list,
                    Err(error) => return load_error(error),
                };
                let item = |done: bool, text: &'static str, id: &'static str| {
                    view! {
                        <li class=if done { "done" } else { "todo" } data-item=id>
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
                            {item(list.company_details, "Company details", "company")}
                            {item(list.first_top_up, "First top-up (the platform operator credits your balance)", "top-up")}
                            {item(list.terms_accepted, "Terms of service accepted", "terms")}
                        </ul>
                        {list.complete().then(|| view! { <a class="button" href="/servers">"Deploy a server"</a> })}
                    </section>
                    <section class="card">
                        <h2>"Company details"</h2>
                        <ActionForm action=details>
                            <label>"Company" <input type="text" name="company" required value=list.company/></label>
                            <FieldError error field="company"/>
                            <label>"Address" <input type="text" name="address" required value=list.address/></label>
                            <FieldError error field="address"/>
                            <label>"Country (two letters)" <input type="text" name="country" required maxlength="2" value=list.country/></label>
                            <FieldError error field="country"/>
                            <FormError error/>
                            <button type="submit">"Save company details"</button>
                        </ActionForm>
                    </section>
                    {(!list.terms_accepted).then(|| view! {
                        <section class="card">
                            <h2>"Terms of service"</h2>
                            <p>"Servers are billed from your balance; a server whose period ends without balance to renew it expires and stops taking calls."</p>
                            <ActionForm action=accept>
                                <button type="submit">"Accept the terms of service"</button>
                            </ActionForm>
                        </section>
                    })}
                }
                .into_any()
            })}
        </Transition>
    }
}

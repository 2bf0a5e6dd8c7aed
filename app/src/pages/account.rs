use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::account::audit_log;
use crate::components::forms::load_error;
use crate::components::pager::{ListSearch, Pager};
use crate::error::AppError;
use crate::listing::ListQuery;
use crate::Auth;

/// The account: company, user and available balance, and the audit log (searched and
/// paged by the store, the view in the URL: `/account?q=resize&page=2`).
#[component]
pub fn AccountPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(|p| ListQuery::from_params(|key| p.get_str(key))));
    let log = Resource::new(move || query.get(), audit_log);
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
                let page = match log.await {
                    Ok(page) => page,
                    Err(error) => return load_error(error),
                };
                let count = page.count_text("entry", "entries");
                let (at, pages, entries) = (page.page, page.pages(), page.rows);
                let href = Callback::new(move |to: u32| format!("/account{}", query.get_untracked().on_page(to).to_query()));
                view! {
                    <ListSearch action="/account" current=query.get_untracked().search label="Search the audit log" placeholder="Action, subject or detail"/>
                    <p class="count" data-testid="audit-count">{count}</p>
                    <table class="audit">
                        <thead><tr><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Subject"</th><th>"Detail"</th></tr></thead>
                        <tbody>
                            {entries
                                .into_iter()
                                .map(|e| view! { <tr><td>{e.at}</td><td>{e.who}</td><td class="action">{e.action}</td><td>{e.subject}</td><td>{e.detail}</td></tr> })
                                .collect_view()}
                        </tbody>
                    </table>
                    <Pager page=at pages href/>
                }
                .into_any()
            })}
        </Transition>
    }
}

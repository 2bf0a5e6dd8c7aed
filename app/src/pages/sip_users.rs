use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::sip_users::{
    list_sip_users, CreateSipUser, DeleteSipUser, ResetSipPassword, SetSipKeepalive,
};
use crate::components::forms::{load_error, FieldError, FormError};
use crate::components::pager::{ListSearch, Pager};
use crate::listing::ListQuery;
use crate::model::KeepAlive;

/// SIP users: the usernames and passwords phones register with, on any of the account's
/// servers. Searched and paged by the store, the view in the URL (`?q=alice&page=2`).
#[component]
pub fn SipUsersPage() -> impl IntoView {
    let create = ServerAction::<CreateSipUser>::new();
    let reset = ServerAction::<ResetSipPassword>::new();
    let delete = ServerAction::<DeleteSipUser>::new();
    let keepalive = ServerAction::<SetSipKeepalive>::new();
    let params = use_query_map();
    let query = Memo::new(move |_| params.with(|p| ListQuery::from_params(|key| p.get_str(key))));
    let users = Resource::new(
        move || {
            (
                query.get(),
                create.version().get(),
                reset.version().get(),
                delete.version().get(),
                keepalive.version().get(),
            )
        },
        |(query, ..)| list_sip_users(query),
    );
    let create_error = Signal::derive(move || create.value().get().and_then(Result::err));
    let reset_error = Signal::derive(move || reset.value().get().and_then(Result::err));
    let reset_done =
        move || matches!(reset.value().get(), Some(Ok(()))).then_some("Password changed.");
    view! {
        <h1>"SIP Users"</h1>
        <p class="hint">"Phones register to your servers with these usernames and passwords (digest authentication)."</p>
        <section class="card">
            <h2>"New SIP user"</h2>
            <ActionForm action=create attr:class="inline">
                <label>"Username" <input type="text" name="username" required/><FieldError error=create_error field="username"/></label>
                <label>"Password" <input type="password" name="password" required autocomplete="new-password"/><FieldError error=create_error field="password"/></label>
                <label>"NAT keep-alive" {mode_select(KeepAlive::default())}</label>
                <button type="submit">"Create SIP user"</button>
            </ActionForm>
            <FormError error=create_error/>
        </section>
        <FieldError error=reset_error field="password"/>
        <p class="saved" role="status">{reset_done}</p>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let page = match users.await {
                    Ok(page) => page,
                    Err(error) => return load_error(error),
                };
                if page.total == 0 {
                    return view! { <p class="empty">"No SIP users yet."</p> }.into_any();
                }
                let count = page.count_text("SIP user", "SIP users");
                let (at, pages, rows) = (page.page, page.pages(), page.rows);
                let href = Callback::new(move |to: u32| format!("/sip-users{}", query.get_untracked().on_page(to).to_query()));
                view! {
                        <ListSearch action="/sip-users" current=query.get_untracked().search label="Search by username" placeholder="Username"/>
                        <p class="count" data-testid="sip-user-count">{count}</p>
                        <table class="sip-users">
                            <thead><tr><th>"Username"</th><th>"NAT keep-alive"</th><th>"Created"</th><th>"Reset password"</th><th></th></tr></thead>
                            <tbody>
                                {rows
                                    .into_iter()
                                    .map(|u| {
                                        let id = u.id.to_string();
                                        let delete_id = id.clone();
                                        let key = u.username.clone();
                                        view! {
                                            <tr data-user=key>
                                                <td>{u.username}</td>
                                                <td>
                                                    <ActionForm action=keepalive attr:class="inline compact">
                                                        <input type="hidden" name="id" value=u.id.to_string()/>
                                                        {mode_select(u.keepalive)}
                                                        <button type="submit" class="secondary">"Save"</button>
                                                    </ActionForm>
                                                </td>
                                                <td>{u.created}</td>
                                                <td>
                                                    <ActionForm action=reset attr:class="inline compact">
                                                        <input type="hidden" name="id" value=id/>
                                                        <input type="password" name="password" aria-label="New password" required autocomplete="new-password"/>
                                                        <button type="submit">"Reset"</button>
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
                                    })
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

/// The keep-alive modes PRODUCT.md names, with `selected` chosen.
fn mode_select(selected: KeepAlive) -> impl IntoView {
    view! {
        <select name="keepalive" aria-label="NAT keep-alive mode">
            {KeepAlive::ALL
                .into_iter()
                .map(|k| view! { <option value=k.as_str() selected=k == selected>{k.label()}</option> })
                .collect_view()}
        </select>
    }
}

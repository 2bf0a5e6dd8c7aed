//! The operator's page: provider accounts, crediting and debiting their balance, and the node
//! release every node starts with.

use leptos::prelude::*;

use crate::api::operator::{
    list_accounts, node_release, CreditAccount, DebitAccount, PublishNodeRelease,
};
use crate::components::forms::{load_error, FieldError, FormError};
use crate::error::AppError;

#[component]
pub fn OperatorPage() -> impl IntoView {
    let credit = ServerAction::<CreditAccount>::new();
    let debit = ServerAction::<DebitAccount>::new();
    let accounts = Resource::new(
        move || (credit.version().get(), debit.version().get()),
        |_| list_accounts(),
    );
    // The last credit or debit's account and error: a field error shows in that account's
    // row, next to the amount that caused it.
    let target = RwSignal::new(None::<i64>);
    let last_error = RwSignal::new(None::<AppError>);
    Effect::new(move || {
        if let Some(input) = credit.input().get() {
            target.set(Some(input.account_id));
        }
    });
    Effect::new(move || {
        if let Some(input) = debit.input().get() {
            target.set(Some(input.account_id));
        }
    });
    Effect::new(move || {
        if let Some(result) = credit.value().get() {
            last_error.set(result.err());
        }
    });
    Effect::new(move || {
        if let Some(result) = debit.value().get() {
            last_error.set(result.err());
        }
    });
    let error = Signal::derive(move || last_error.get());
    view! {
        <h1>"Operator"</h1>
        <FormError error/>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match accounts.await {
                    Err(AppError::NotFound) => view! { <p class="empty">"Page not found."</p> }.into_any(),
                    Err(error) => load_error(error),
                    Ok(rows) => view! {
                        <table class="accounts">
                            <thead><tr><th>"Company"</th><th>"Email"</th><th>"Servers"</th><th>"Balance"</th><th>"Credit"</th><th>"Debit"</th></tr></thead>
                            <tbody>
                                {rows
                                    .into_iter()
                                    .map(|a| {
                                        let account = a.id;
                                        let credit_id = a.id.to_string();
                                        let debit_id = credit_id.clone();
                                        let key = a.email.clone();
                                        let row_error = Signal::derive(move || {
                                            (target.get() == Some(account)).then(|| last_error.get()).flatten()
                                        });
                                        view! {
                                            <tr data-email=key>
                                                <td>{a.company}</td>
                                                <td>{a.email}</td>
                                                <td>{a.servers}</td>
                                                <td class="balance">{a.balance.to_string()}</td>
                                                <td>
                                                    <ActionForm action=credit attr:class="inline compact">
                                                        <input type="hidden" name="account_id" value=credit_id/>
                                                        <input type="text" name="amount" aria-label="Amount in USD" placeholder="USD" required size="8"/>
                                                        <button type="submit">"Credit"</button>
                                                    </ActionForm>
                                                </td>
                                                <td>
                                                    <ActionForm action=debit attr:class="inline compact">
                                                        <input type="hidden" name="account_id" value=debit_id/>
                                                        <input type="text" name="amount" aria-label="Debit in USD" placeholder="USD" required size="8"/>
                                                        <button type="submit">"Debit"</button>
                                                    </ActionForm>
                                                    <FieldError error=row_error field="amount"/>
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
        <NodeRelease/>
    }
}

/// The current node release and the form that publishes the next one.
#[component]
fn NodeRelease() -> impl IntoView {
    let publish = ServerAction::<PublishNodeRelease>::new();
    let release = Resource::new(move || publish.version().get(), |_| node_release());
    let error = Signal::derive(move || publish.value().get().and_then(Result::err));
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                release.await.ok().map(|r| view! {
                    <section class="card release">
                        <h2>"Node release"</h2>
                        <p data-testid="node-release">
                            {format!("Release {}: NAT keep-alive every {} s.", r.revision, r.keepalive_seconds)}
                        </p>
                        <p class="hint">
                            "Publishing a release gives new settings to nodes as they start. Running "
                            "servers show a pending update until they are updated, by hand or by "
                            "Auto Upgrade once they carry no calls."
                        </p>
                        <ActionForm action=publish attr:class="inline">
                            <label>"Keep-alive interval (s)"
                                <input type="text" name="keepalive_seconds" value=r.keepalive_seconds.to_string() required size="6"/>
                            </label>
                            <button type="submit">"Publish release"</button>
                        </ActionForm>
                        <FieldError error field="keepalive_seconds"/>
                        <FormError error/>
                    </section>
                })
            })}
        </Transition>
    }
}

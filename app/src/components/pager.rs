//! Previous / Next for a list paged by the store (see [`crate::listing`]). The page lives in
//! the URL, so paging is a navigation: Back returns to the page before.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;

/// `page` of `pages` (from 1); `href(n)` is the URL of page `n` of the same view.
#[component]
pub fn Pager(
    #[prop(into)] page: Signal<u32>,
    #[prop(into)] pages: Signal<u32>,
    href: Callback<u32, String>,
) -> impl IntoView {
    let navigate = use_navigate();
    let step = move |delta: i32| {
        let navigate = navigate.clone();
        move |_: leptos::ev::MouseEvent| {
            let to = page.get_untracked().saturating_add_signed(delta).max(1);
            let options = NavigateOptions {
                scroll: false,
                ..Default::default()
            };
            navigate(&href.run(to), options);
        }
    };
    // Named, not written inside `disabled=`: in `view!` a `>` or `>=` in an attribute's
    // closure ends the tag, and the rest of it is printed as text.
    let on_first = move || page.get() <= 1;
    let on_last = move || page.get() >= pages.get();
    view! {
        <nav class="pager" aria-label="Pages">
            <button type="button" class="secondary" disabled=on_first on:click=step(-1)>"Previous"</button>
            <span data-testid="page">{move || format!("Page {} of {}", page.get(), pages.get())}</span>
            <button type="button" class="secondary" disabled=on_last on:click=step(1)>"Next"</button>
        </nav>
    }
}

/// A list's text search: a GET form to `action`, so the search lands in the URL (`?q=…`)
/// and starts at the first page. Before the browser bundle arrives the browser submits it;
/// after, it navigates, with a URL that holds only the search.
#[component]
pub fn ListSearch(
    #[prop(into)] action: String,
    current: String,
    label: &'static str,
    placeholder: &'static str,
) -> impl IntoView {
    let clear = (!current.is_empty()).then(|| action.clone());
    let input = NodeRef::<leptos::html::Input>::new();
    let navigate = use_navigate();
    let target = action.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let search = input.get().map(|i| i.value()).unwrap_or_default();
        let query = crate::listing::ListQuery { search, page: 1 };
        navigate(
            &format!("{target}{}", query.to_query()),
            NavigateOptions::default(),
        );
    };
    view! {
        <form method="get" action=action class="filters" on:submit=submit>
            <label>"Search"
                <input type="search" name="q" node_ref=input aria-label=label placeholder=placeholder value=current/>
            </label>
            <button type="submit" class="secondary">"Search"</button>
            {clear.map(|href| view! { <leptos_router::components::A href=href attr:class="clear">"Clear search"</leptos_router::components::A> })}
        </form>
    }
}

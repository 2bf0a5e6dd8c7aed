//! Network tools: ping and trace route from a server's node to an address the user types,
//! the output shown line by line as the node gets its answers (server-sent events from
//! `/live/servers/{id}/tools`, see the server's `tools` module).

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::components::forms::{FieldError, FormError};
use crate::error::AppError;

#[component]
pub fn NetworkToolsPage() -> impl IntoView {
    let id: Option<i64> = use_params_map()
        .read_untracked()
        .get("id")
        .and_then(|id| id.parse().ok());
    match id {
        Some(id) => view! {
            <h1>"Network tools"</h1>
            <p><A href=format!("/servers/{id}")>"← Back to the server"</A></p>
            <NetworkTools id/>
        }
        .into_any(),
        None => view! { <h1>"Server not found"</h1> }.into_any(),
    }
}

/// One run at a time: its output, and why it was refused.
#[derive(Clone, Copy)]
struct RunState {
    output: RwSignal<Vec<String>>,
    error: RwSignal<Option<AppError>>,
    running: RwSignal<bool>,
}

#[component]
fn NetworkTools(id: i64) -> impl IntoView {
    let tool = NodeRef::<leptos::html::Select>::new();
    let target = NodeRef::<leptos::html::Input>::new();
    let count = NodeRef::<leptos::html::Input>::new();
    let state = RunState {
        output: RwSignal::new(Vec::new()),
        error: RwSignal::new(None),
        running: RwSignal::new(false),
    };
    let on_submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let values = (
            tool.get().map(|t| t.value()).unwrap_or_default(),
            target.get().map(|t| t.value()).unwrap_or_default(),
            count.get().map(|c| c.value()).unwrap_or_default(),
        );
        #[cfg(feature = "hydrate")]
        run(id, values, state);
        #[cfg(not(feature = "hydrate"))]
        let _ = (id, values);
    };
    let error = Signal::derive(move || state.error.get());
    let running = state.running;
    view! {
        <section class="card network-tools">
            <p class="hint">
                "Ping or trace the route to an IPv4 address from this server's node: up to 10 echo \
                 requests, or up to 30 hops, each given a second to answer."
            </p>
            <form class="inline" on:submit=on_submit>
                <label>"Tool"
                    <select name="tool" node_ref=tool>
                        <option value="ping">"Ping"</option>
                        <option value="traceroute">"Trace route"</option>
                    </select>
                </label>
                <FieldError error field="tool"/>
                <label>"Address"
                    <input type="text" name="target" node_ref=target placeholder="192.0.2.10" required/>
                </label>
                <FieldError error field="target"/>
                <label>"Count"
                    <input type="text" name="count" node_ref=count placeholder="4" size="4"/>
                </label>
                <FieldError error field="count"/>
                <button type="submit" disabled=move || running.get()>
                    {move || if running.get() { "Running…" } else { "Run" }}
                </button>
            </form>
            <FormError error/>
            <pre class="tool-output" data-testid="tool-output">{move || state.output.get().join("\n")}</pre>
        </section>
    }
}

/// Opens the run's event stream and follows it into `state`.
#[cfg(feature = "hydrate")]
fn run(id: i64, (tool, target, count): (String, String, String), state: RunState) {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    #[derive(serde::Deserialize)]
    struct Refusal {
        field: Option<String>,
        message: String,
    }

    let Ok(query) = web_sys::UrlSearchParams::new() else {
        return;
    };
    query.append("tool", &tool);
    query.append("target", &target);
    query.append("count", &count);
    let url = format!(
        "/live/servers/{id}/tools?{}",
        String::from(query.to_string())
    );
    let Ok(source) = web_sys::EventSource::new(&url) else {
        return;
    };
    state.output.set(Vec::new());
    state.error.set(None);
    state.running.set(true);
    let source = send_wrapper::SendWrapper::new(source);
    let finish = {
        let source = source.clone();
        move || {
            source.close();
            state.running.set(false);
        }
    };
    let text = |event: &web_sys::MessageEvent| event.data().as_string().unwrap_or_default();
    let on_line = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event| {
        let line = text(&event);
        state.output.update(|lines| lines.push(line));
    });
    let on_refused = Closure::<dyn FnMut(web_sys::MessageEvent)>::new({
        let finish = finish.clone();
        move |event| {
            if let Ok(refusal) = serde_json::from_str::<Refusal>(&text(&event)) {
                state.error.set(Some(match refusal.field {
                    Some(field) => AppError::field(&field, refusal.message),
                    None => AppError::Refused(refusal.message),
                }));
            }
            finish();
        }
    });
    let on_done = Closure::<dyn FnMut(web_sys::MessageEvent)>::new({
        let finish = finish.clone();
        move |_| finish()
    });
    // The connection failed (not signed in, not this account's server) or dropped.
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        if state.running.get_untracked() {
            state.error.set(Some(AppError::Refused(
                "The tool could not run: the connection to the console failed.".into(),
            )));
            finish();
        }
    });
    for (name, callback) in [
        ("line", on_line.as_ref()),
        ("refused", on_refused.as_ref()),
        ("done", on_done.as_ref()),
        ("error", on_error.as_ref()),
    ] {
        let _ = source.add_event_listener_with_callback(name, callback.unchecked_ref());
    }
    on_line.forget();
    on_refused.forget();
    on_done.forget();
    on_error.forget();
}

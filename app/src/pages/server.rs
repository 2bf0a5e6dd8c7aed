//! One server's detail page.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::clusters::dispatcher_switches;
use crate::api::config::{get_server_config, SaveServerConfig};
use crate::api::servers::{get_server, DeleteServer, ResizeCapacity, RunServerAction};
use crate::components::forms::load_error;
use crate::components::forms::{FieldError, FormError};
use crate::error::AppError;
use crate::model::ServerCommand;
use crate::model::{Balancing, Dispatching, ServerConfigView, ServerKind};

#[component]
pub fn ServerPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok());
    let action = ServerAction::<RunServerAction>::new();
    let resize = ServerAction::<ResizeCapacity>::new();
    let server = Resource::new(
        move || (id(), action.version().get(), resize.version().get()),
        |(id, _, _)| async move {
            match id {
                Some(id) => get_server(id).await,
                None => Err(AppError::NotFound),
            }
        },
    );
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match server.await {
                    Err(AppError::NotFound) => view! {
                        <h1>"Server not found"</h1>
                        <p><a href="/servers">"Back to Servers"</a></p>
                    }
                    .into_any(),
                    Err(error) => load_error(error),
                    Ok(s) => view! {
                        <h1>{s.alias.clone()} " " <small>{s.ip.clone()}</small></h1>
                        {s.pending_update.then(|| view! { <UpdateBanner id=s.id action/> })}
                        <section class="card">
                            <h2>"Summary"</h2>
                            <dl class="summary">
                                <dt>"IP"</dt><dd>{s.ip.clone()}</dd>
                                <dt>"Zone"</dt><dd>{s.zone}</dd>
                                <dt>"Type"</dt><dd>{s.kind.label()}</dd>
                                <dt>"Cluster"</dt><dd>{s.cluster.unwrap_or_else(|| "—".into())}</dd>
                                <dt>"Channels"</dt><dd>{format!("{} / {}", s.channels_in_use, s.channels)}</dd>
                                <dt>"CPS"</dt><dd>{format!("{} / {}", s.cps_now, s.cps)}</dd>
                                <dt>"Expires"</dt><dd>{s.expires}</dd>
                                <dt>"Status"</dt><dd data-testid="status">{s.status.label()}</dd>
                                {s.pending_resize.clone().map(|(channels, at)| view! {
                                    <dt>"Resize"</dt><dd data-testid="pending-resize">{format!("{channels} channels, active at {at}")}</dd>
                                })}
                            </dl>
                        </section>
                        {(s.status == crate::model::ServerStatus::Expired).then(|| view! {
                            <p class="banner expired" role="alert">
                                "This server has expired: its period ended and your balance could not renew it. "
                                "It refuses new calls (503) until a top-up renews it."
                            </p>
                        })}
                        {(s.kind == ServerKind::Dispatcher).then(|| view! { <DispatcherSwitches id=s.id/> })}
                        <Actions id=s.id action/>
                        <Resize id=s.id channels=s.channels resize/>
                        <nav class="server-tools">
                            <A href=format!("/servers/{}/registrations", s.id)>"Registrations"</A>
                            <A href=format!("/servers/{}/trace", s.id)>"SIP trace"</A>
                            <A href=format!("/servers/{}/certificates", s.id)>"Attached certificates"</A>
                            <A href=format!("/servers/{}/tools", s.id)>"Network tools"</A>
                        </nav>
                        <ConfigSections id=s.id/>
                        <Delete id=s.id alias=s.alias.clone() ip=s.ip.clone()/>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

/// "There is a pending update on the server": the node runs an older node release than the
/// current one. *Run Server Update* restarts it on the current one, after a confirmation.
#[component]
fn UpdateBanner(id: i64, action: ServerAction<RunServerAction>) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let update = ServerCommand::Update;
    view! {
        <div class="banner update" role="status" data-testid="pending-update">
            <p>"There is a pending update on the server."</p>
            <Show
                when=move || confirming.get()
                fallback=move || view! {
                    <button type="button" on:click=move |_| confirming.set(true)>{update.label()}</button>
                }
            >
                <p>{update.consequence()}</p>
                <ActionForm action=action attr:class="inline">
                    <input type="hidden" name="id" value=id.to_string()/>
                    <input type="hidden" name="action" value=update.as_str()/>
                    <button type="submit" disabled=move || action.pending().get()>
                        {move || if action.pending().get() { "Updating…" } else { "Confirm update" }}
                    </button>
                    <button type="button" class="secondary" on:click=move |_| confirming.set(false)>"Cancel"</button>
                </ActionForm>
            </Show>
        </div>
    }
}

/// The Actions menu: each action first shows what it will do to live calls, and runs only
/// when confirmed.
#[component]
fn Actions(id: i64, action: ServerAction<RunServerAction>) -> impl IntoView {
    let chosen = RwSignal::new(None::<ServerCommand>);
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    // A finished action closes the confirmation.
    Effect::watch(
        move || action.version().get(),
        move |_, _, _| chosen.set(None),
        false,
    );
    view! {
        <section class="card actions">
            <h2>"Actions"</h2>
            <p class="hint">"These actions occur in real time and can affect live calls."</p>
            <div class="buttons">
                {ServerCommand::ALL
                    .into_iter()
                    .map(|a| view! {
                        <button type="button" class="secondary" data-action=a.as_str() on:click=move |_| chosen.set(Some(a))>
                            {a.label()}
                        </button>
                    })
                    .collect_view()}
            </div>
                        {move || {
                chosen.get().map(|a| view! {
                    <div class="confirm" role="dialog" aria-label="Confirm action">
                        <p><strong>{a.label()}</strong>": "{a.consequence()}</p>
                        <ActionForm action=action attr:class="inline">
                            <input type="hidden" name="id" value=id.to_string()/>
                            <input type="hidden" name="action" value=a.as_str()/>
                            <button type="submit" disabled=move || action.pending().get()>
                                {move || if action.pending().get() { "Working…" } else { "Confirm" }}
                            </button>
                            <button type="button" class="secondary" on:click=move |_| chosen.set(None)>"Cancel"</button>
                        </ActionForm>
                    </div>
                })
            }}
            <FormError error/>
        </section>
    }
}

/// Delete Server: asks first, naming what goes with the server; once it is deleted, the
/// server function sends the browser to the Servers list. A refusal (a failover source, a cluster's only Dispatcher) is shown here.
#[component]
fn Delete(id: i64, alias: String, ip: String) -> impl IntoView {
    let delete = ServerAction::<DeleteServer>::new();
    let confirming = RwSignal::new(false);
    let error = Signal::derive(move || delete.value().get().and_then(Result::err));
    let consequence = format!(
        "Deletes {alias} for good: live calls are ended (both ends get a BYE), its address {ip} \
         is freed, its registrations and configuration are removed and it is no longer billed. \
         The audit log keeps its history. This cannot be undone."
    );
    view! {
        <section class="card delete">
            <h2>"Delete server"</h2>
            <Show
                when=move || confirming.get()
                fallback=move || view! {
                    <button type="button" class="danger" data-action="delete" on:click=move |_| confirming.set(true)>"Delete Server"</button>
                }
            >
                <div class="confirm" role="dialog" aria-label="Confirm delete">
                    <p>{consequence.clone()}</p>
                    <ActionForm action=delete attr:class="inline">
                        <input type="hidden" name="id" value=id.to_string()/>
                        <button type="submit" class="danger" disabled=move || delete.pending().get()>
                            {move || if delete.pending().get() { "Deleting…" } else { "Delete" }}
                        </button>
                        <button type="button" class="secondary" on:click=move |_| confirming.set(false)>"Cancel"</button>
                    </ActionForm>
                </div>
            </Show>
            <FormError error/>
        </section>
    }
}

/// Capacity Failover and Server Config: one form, saved and pushed to the node at once.
#[component]
fn ConfigSections(id: i64) -> impl IntoView {
    let save = ServerAction::<SaveServerConfig>::new();
    let config = Resource::new(move || save.version().get(), move |_| get_server_config(id));
    let error = Signal::derive(move || save.value().get().and_then(Result::err));
    let saved = move || matches!(save.value().get(), Some(Ok(_)));
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match config.await {
                    Ok(view) => config_form(view, save, error).into_any(),
                    Err(error) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <p class="saved" role="status">{move || saved().then_some("Saved and applied to the node.")}</p>
    }
}

fn config_form(
    view: ServerConfigView,
    save: ServerAction<SaveServerConfig>,
    error: Signal<Option<AppError>>,
) -> impl IntoView {
    let c = view.config;
    let checkbox = move |name: &'static str, label: &'static str, checked: bool| {
        view! {
            <label class="check">
                <input type="checkbox" name=name checked=checked/>
                {label}
            </label>
        }
    };
    let cluster_options = view
        .clusters
        .into_iter()
        .map(|(cid, name)| view! { <option value=cid.to_string() selected=c.cluster_id == Some(cid)>{name}</option> })
        .collect_view();
    let failover_options = view
        .failover_candidates
        .into_iter()
        .map(|(sid, label)| view! { <option value=sid.to_string() selected=c.failover_target_id == Some(sid)>{label}</option> })
        .collect_view();
    let running = match view.node_version {
        Some(v) => format!("The node runs configuration version {v}."),
        None => "The node is not running; the configuration applies when it starts.".to_string(),
    };
    let uac = view.uac_status.clone();
    let tls = match (view.tls_serving, view.websocket_refused) {
        (Some(port), None) => format!(
            "SIP over TLS and secure WebSocket (WebRTC): served on port {port}; secure WebSocket also on 7443, which browsers can reach."
        ),
        (Some(port), Some(why)) => format!(
            "SIP over TLS and secure WebSocket (WebRTC): served on port {port}. Port 7443, where browsers reach secure WebSocket, is not served: {why}. Free it on the server's address, then restart the server."
        ),
        (None, _) => {
            "SIP over TLS and secure WebSocket (WebRTC): off. It starts once an FQDN is set and a Server certificate is attached."
                .to_string()
        }
    };
    let probe = match view.control_port {
        Some(port) => format!(
            "Health probe: over TLS to the node's control port {port}, which presents a certificate from the control plane's own authority (TLS Internals)."
        ),
        None => "Health probe: over UDP to the SIP port.".to_string(),
    };
    let balancing = match view.kind {
        ServerKind::Dispatcher => dispatching_card(c.dispatching, error).into_any(),
        ServerKind::Switch => view! {
            <section class="card">
                <h2>"Balancing"</h2>
                <label>"Weight"
                    <input type="text" name="weight" inputmode="numeric" value=c.weight.to_string()/>
                </label>
                <p class="hint">"This switch's share of its cluster's traffic when the cluster's Dispatcher balances by weight: a switch of weight 3 takes three calls for each one a switch of weight 1 takes."</p>
                <FieldError error field="weight"/>
            </section>
        }
        .into_any(),
    };
    view! {
        <ActionForm action=save attr:class="config">
            <input type="hidden" name="id" value=view.server_id.to_string()/>
            {balancing}
            <section class="card">
                <h2>"Capacity Failover"</h2>
                <p class="hint">"At its CPS or channel limit, this server hands the next call to the chosen member of its cluster when that one has room."</p>
                {checkbox("failover_enabled", "Enable capacity failover", c.failover_enabled)}
                <label>"Failover target"
                    <select name="failover_target">
                        <option value="">"None"</option>
                        {failover_options}
                    </select>
                </label>
                <FieldError error field="failover_target"/>
            </section>
            <section class="card">
                <h2>"Server Config"</h2>
                <p class="hint" data-testid="node-version">{running}</p>
                <p class="hint" data-testid="tls-status">{tls}</p>
                <p class="hint" data-testid="probe-status">{probe}</p>
                <label>"Cluster"
                    <select name="cluster">
                        <option value="">"None"</option>
                        {cluster_options}
                    </select>
                </label>
                <FieldError error field="cluster"/>
                <div class="checks">
                    {checkbox("interconnect", "Interconnect", c.interconnect)}
                    {checkbox("auto_upgrade", "Auto Upgrade", c.auto_upgrade)}
                    {checkbox("disable_uac_ping", "Disable UAC Ping", c.disable_uac_ping)}
                    {checkbox("uac_location_sharing", "UAC Location Array Sharing", c.uac_location_sharing)}
                    {checkbox("tls_internals", "TLS Internals", c.tls_internals)}
                    {checkbox("restrict_direct", "Restrict Direct", c.restrict_direct)}
                    {checkbox("tcp_sip_trace", "TCP SIP Trace", c.tcp_sip_trace)}
                </div>
                <label>"UAC Auth username" <input type="text" name="uac_auth_username" value=c.uac_auth_username.unwrap_or_default()/></label>
                <FieldError error field="uac_auth_username"/>
                <label>"UAC Auth password"
                    <input type="password" name="uac_auth_password" autocomplete="new-password"
                        placeholder=if c.uac_auth_password_set { "stored (leave blank to keep)" } else { "" }/>
                </label>
                <FieldError error field="uac_auth_password"/>
                <label>"UAC Auth registrar" <input type="text" name="uac_auth_registrar" value=c.uac_auth_registrar.unwrap_or_default() placeholder="192.0.2.10:5060"/></label>
                <FieldError error field="uac_auth_registrar"/>
                <p class="hint" data-testid="uac-status">{uac}</p>
                <label>"WebRTC / TLS FQDN" <input type="text" name="fqdn" value=c.fqdn.unwrap_or_default() placeholder="sip.example.com"/></label>
                <FieldError error field="fqdn"/>
                <label>"Data zone"
                    <select name="data_zone">
                        <option value="us" selected=c.data_zone == crate::model::DataZone::Us>"US"</option>
                        <option value="eu" selected=c.data_zone == crate::model::DataZone::Eu>"EU"</option>
                    </select>
                </label>
                <label>"Digest algorithms"
                    <select name="digest_algorithms">
                        {crate::model::DigestChoice::ALL
                            .into_iter()
                            .map(|choice| view! {
                                <option value=choice.as_str() selected={choice == c.digest_algorithms}>{choice.label()}</option>
                            })
                            .collect_view()}
                    </select>
                </label>
                <p class="hint">"The challenges a phone gets when it registers, in order. Many hard phones read only the first and know only MD5: keep MD5 first unless every phone of the account speaks SHA-256."</p>
                <FieldError error field="digest_algorithms"/>
                <div class="ports">
                    <label>"UDP port" <input type="text" name="udp_port" inputmode="numeric" value=c.udp_port.to_string()/></label>
                    <label>"TCP port" <input type="text" name="tcp_port" inputmode="numeric" value=c.tcp_port.to_string()/></label>
                    <label>"TLS port" <input type="text" name="tls_port" inputmode="numeric" value=c.tls_port.to_string()/></label>
                </div>
                <FieldError error field="udp_port"/>
                <FieldError error field="tcp_port"/>
                <FieldError error field="tls_port"/>
                <FormError error/>
                <button type="submit">"Save configuration"</button>
            </section>
        </ActionForm>
    }
}

/// The switches a Dispatcher balances over, as its probes and counters see them; refreshed
/// every two seconds while the page is open.
#[component]
fn DispatcherSwitches(id: i64) -> impl IntoView {
    let tick = crate::components::ticker::ticker(std::time::Duration::from_secs(2));
    let switches = Resource::new(move || tick.get(), move |_| dispatcher_switches(id));
    view! {
        <section class="card switches">
            <h2>"Switches"</h2>
            <p class="hint">"The Switch servers of this Dispatcher's cluster. An Inactive switch missed its probes and gets no new calls until it answers again."</p>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match switches.await {
                        Err(error) => load_error(error),
                        Ok(rows) if rows.is_empty() => view! {
                            <p class="empty">"No switches: put Switch servers in this Dispatcher's cluster."</p>
                        }
                        .into_any(),
                        Ok(rows) => view! {
                            <table class="switches">
                                <thead>
                                    <tr><th>"Switch"</th><th>"IP"</th><th>"State"</th><th>"Latency"</th><th>"Calls, last minute"</th><th>"Share"</th></tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|r| {
                                        let state = r.state();
                                        let latency = r.latency_us.map_or_else(|| "—".to_string(), |us| format!("{:.2} ms", f64::from(us) / 1000.0));
                                        let share = format!("{:.0} %", r.share * 100.0);
                                        let key = r.ip.clone();
                                        view! {
                                            <tr data-switch=key>
                                                <td><a href=format!("/servers/{}", r.id)>{r.alias}</a></td>
                                                <td>{r.ip}</td>
                                                <td class=format!("probe {}", state.to_lowercase()) data-testid="switch-state">{state}</td>
                                                <td>{latency}</td>
                                                <td data-testid="switch-calls">{r.sent_last_minute}</td>
                                                <td>{share}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// A Dispatcher's algorithm, probe settings and AnyReg, inside the configuration form.
fn dispatching_card(d: Dispatching, error: Signal<Option<AppError>>) -> impl IntoView {
    let number = move |name: &'static str, label: &'static str, value: u32, hint: &'static str| {
        view! {
            <label>{label}
                <input type="text" name=name inputmode="numeric" value=value.to_string()/>
            </label>
            <p class="hint">{hint}</p>
            <FieldError error field=name/>
        }
    };
    view! {
        <section class="card">
            <h2>"Balancing"</h2>
            <p class="hint">"This Dispatcher is its cluster's edge: it sends each new call, registration and message to one of the cluster's Switch servers, and the next one when that one fails or does not answer."</p>
            <label>"Algorithm"
                <select name="balancing">
                    {Balancing::ALL
                        .into_iter()
                        .map(|b| view! { <option value=b.as_str() selected={b == d.balancing}>{b.label()}</option> })
                        .collect_view()}
                </select>
            </label>
            <p class="hint">"Round-robin takes each switch in turn; weighted follows the switches' weights; least channels picks the switch with the fewest calls in progress; the hashes keep a call (Call-ID) or a user on one switch, and when a switch goes down only its share moves."</p>
            <FieldError error field="balancing"/>
            {number("probe_interval", "Probe interval (seconds)", d.probe_interval, "How often the Dispatcher sends OPTIONS to each switch.")}
            {number("probe_failures", "Misses before Inactive", d.probe_failures, "A switch that misses this many probes in a row gets no new calls.")}
            {number("probe_successes", "Answers before Active", d.probe_successes, "An Inactive switch takes calls again after answering this many probes in a row.")}
            <label class="check">
                <input type="checkbox" name="any_reg" checked=d.any_reg/>
                "Use AnyReg Server"
            </label>
            <p class="hint">"On: this Dispatcher answers REGISTERs itself, into the cluster's shared location; switches never see registrations, and a phone's keep-alives and calls come from this Dispatcher. It costs the Dispatcher the registrar's work (digest checks, location writes). Off: REGISTERs are balanced to the switches like calls, each carrying a Path through this Dispatcher."</p>
        </section>
    }
}

#[component]
fn Resize(id: i64, channels: u32, resize: ServerAction<ResizeCapacity>) -> impl IntoView {
    let error = Signal::derive(move || resize.value().get().and_then(Result::err));
    let done = move || match resize.value().get() {
        Some(Ok(row)) => row
            .pending_resize
            .map(|(n, at)| format!("{n} channels will be active at {at}."))
            .or_else(|| {
                Some(format!(
                    "Now {} channels; the server rebooted.",
                    row.channels
                ))
            }),
        _ => None,
    };
    view! {
        <section class="card resize">
            <h2>"Resize Capacity"</h2>
            <p class="hint">{format!("Now {channels} channels. A new count becomes active after a short delay; 1001 or more reboots the server at once and drops all calls.")}</p>
            <ActionForm action=resize attr:class="inline">
                <input type="hidden" name="id" value=id.to_string()/>
                <label>"New channels" <input type="text" name="channels" inputmode="numeric" required/></label>
                <label class="check"><input type="checkbox" name="confirm_reboot"/>"Reboot now if needed (drops all calls)"</label>
                <button type="submit">"Resize"</button>
            </ActionForm>
            <FieldError error field="channels"/>
            <FormError error/>
            <p class="saved" data-testid="resize-result">{done}</p>
        </section>
    }
}

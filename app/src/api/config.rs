//! A server's configuration: Server Config and Capacity Failover on the detail page.

// The save function takes the form's fields one by one, as the form posts them.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ServerConfigView, TraceView};

#[server(prefix = "/api", endpoint = "get_server_config")]
pub async fn get_server_config(id: i64) -> Result<ServerConfigView, AppError> {
    use crate::ssr::{auth::require_user, config, state::AppState};
    let user = require_user().await?;
    config::view(&AppState::current()?, user.account_id, id).await
}

/// The server's SIP trace, newest first, from its data zone's collector.
#[server(prefix = "/api", endpoint = "server_trace")]
pub async fn server_trace(id: i64) -> Result<TraceView, AppError> {
    use crate::ssr::{auth::require_user, config, state::AppState};
    let user = require_user().await?;
    config::trace(&AppState::current()?, user.account_id, id).await
}

/// Saves and applies a configuration. Checkboxes are present when ticked; a blank UAC
/// Auth password keeps the stored one.
#[server(prefix = "/api", endpoint = "save_server_config")]
pub async fn save_server_config(
    id: i64,
    #[server(default)] cluster: Option<String>,
    #[server(default)] interconnect: Option<String>,
    #[server(default)] uac_auth_username: Option<String>,
    #[server(default)] uac_auth_password: Option<String>,
    #[server(default)] uac_auth_registrar: Option<String>,
    #[server(default)] fqdn: Option<String>,
    #[server(default)] auto_upgrade: Option<String>,
    #[server(default)] disable_uac_ping: Option<String>,
    #[server(default)] uac_location_sharing: Option<String>,
    #[server(default)] tls_internals: Option<String>,
    #[server(default)] restrict_direct: Option<String>,
    #[server(default)] tcp_sip_trace: Option<String>,
    data_zone: String,
    #[server(default)] digest_algorithms: Option<String>,
    udp_port: String,
    tcp_port: String,
    tls_port: String,
    #[server(default)] failover_enabled: Option<String>,
    #[server(default)] failover_target: Option<String>,
    #[server(default)] balancing: Option<String>,
    #[server(default)] probe_interval: Option<String>,
    #[server(default)] probe_failures: Option<String>,
    #[server(default)] probe_successes: Option<String>,
    #[server(default)] any_reg: Option<String>,
    #[server(default)] weight: Option<String>,
) -> Result<ServerConfigView, AppError> {
    use crate::model::{Balancing, DataZone, DigestChoice, Dispatching, Fqdn, Port};
    use crate::ssr::store::ConfigRecord;
    use crate::ssr::{auth::require_user, config, state::AppState};

    fn given(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    fn port(field: &str, text: &str) -> Result<i64, AppError> {
        Port::parse(text)
            .map(|p| i64::from(p.get()))
            .map_err(|e| AppError::field(field, e.for_field("port").unwrap_or_default()))
    }
    fn id_of(field: &str, value: &Option<String>) -> Result<Option<i64>, AppError> {
        given(value)
            .map(|text| {
                text.parse::<i64>()
                    .map_err(|_| AppError::field(field, "Choose one of the listed servers."))
            })
            .transpose()
    }

    // A whole number within `least..=most`; a form without the field (a Switch's form has
    // no probe settings, a Dispatcher's no weight) keeps `default`.
    fn bounded(
        field: &str,
        value: &Option<String>,
        (least, most): (u32, u32),
        default: u32,
    ) -> Result<i64, AppError> {
        let Some(text) = given(value) else {
            return Ok(i64::from(default));
        };
        match text.parse::<u32>() {
            Ok(n) if (least..=most).contains(&n) => Ok(i64::from(n)),
            _ => Err(AppError::field(
                field,
                format!("Enter a whole number from {least} to {most}."),
            )),
        }
    }

    let user = require_user().await?;
    let defaults = Dispatching::default();
    let [interval, failures, successes] = Dispatching::PROBE_BOUNDS;
    let probe_interval = bounded(
        interval.0,
        &probe_interval,
        (interval.1, interval.2),
        defaults.probe_interval,
    )?;
    let probe_failures = bounded(
        failures.0,
        &probe_failures,
        (failures.1, failures.2),
        defaults.probe_failures,
    )?;
    let probe_successes = bounded(
        successes.0,
        &probe_successes,
        (successes.1, successes.2),
        defaults.probe_successes,
    )?;
    let weight = bounded("weight", &weight, Dispatching::WEIGHTS, 1)?;
    let balancing = given(&balancing)
        .map(Balancing::parse)
        .transpose()?
        .unwrap_or_default();
    let udp_port = port("udp_port", &udp_port)?;
    let tcp_port = port("tcp_port", &tcp_port)?;
    let tls_port = port("tls_port", &tls_port)?;
    if tls_port == tcp_port {
        return Err(AppError::field(
            "tls_port",
            "TLS and TCP are both TCP: they need different ports.",
        ));
    }
    // The node serves secure WebSocket there for browsers (which refuse 5060 and 5061).
    let wss = sip_engine::transport::ws::WSS_PORT;
    if tcp_port == i64::from(wss) {
        return Err(AppError::field(
            "tcp_port",
            format!("Port {wss} is the server's secure WebSocket port (WebRTC)."),
        ));
    }
    let username = given(&uac_auth_username).map(str::to_string);
    if username
        .as_ref()
        .is_some_and(|u| u.len() > 64 || u.chars().any(char::is_whitespace))
    {
        return Err(AppError::field(
            "uac_auth_username",
            "A username has up to 64 characters and no spaces.",
        ));
    }
    let password = given(&uac_auth_password).map(str::to_string);
    if password.as_ref().is_some_and(|p| p.len() > 128) {
        return Err(AppError::field(
            "uac_auth_password",
            "Use at most 128 characters.",
        ));
    }
    let registrar = given(&uac_auth_registrar)
        .map(|text| {
            text.parse::<std::net::SocketAddr>()
                .map(|addr| addr.to_string())
                .map_err(|_| {
                    AppError::field(
                        "uac_auth_registrar",
                        "Enter the carrier's registrar as IP:port, e.g. 192.0.2.10:5060.",
                    )
                })
        })
        .transpose()?;
    let record = ConfigRecord {
        cluster_id: id_of("cluster", &cluster)?,
        interconnect: interconnect.is_some(),
        uac_auth_username: username,
        uac_auth_password: password,
        uac_auth_registrar: registrar,
        fqdn: given(&fqdn)
            .map(Fqdn::parse)
            .transpose()?
            .map(|f| f.as_str().to_string()),
        auto_upgrade: auto_upgrade.is_some(),
        disable_uac_ping: disable_uac_ping.is_some(),
        uac_location_sharing: uac_location_sharing.is_some(),
        tls_internals: tls_internals.is_some(),
        restrict_direct: restrict_direct.is_some(),
        tcp_sip_trace: tcp_sip_trace.is_some(),
        data_zone: DataZone::parse(&data_zone)?.as_str().to_string(),
        // A form without the field (an older page) keeps the default.
        digest_algorithms: given(&digest_algorithms)
            .map(DigestChoice::parse)
            .transpose()?
            .unwrap_or_default()
            .as_str()
            .to_string(),
        udp_port,
        tcp_port,
        tls_port,
        failover_enabled: failover_enabled.is_some(),
        failover_target_id: id_of("failover_target", &failover_target)?,
        balancing: balancing.as_str().to_string(),
        probe_interval,
        probe_failures,
        probe_successes,
        any_reg: any_reg.is_some(),
        weight,
        config_version: 0,
    };
    config::save(&AppState::current()?, &user, id, record).await
}

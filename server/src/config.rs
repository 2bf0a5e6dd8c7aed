//! Reading `Leptos.toml`: the Leptos site options (through leptos_config, which reads the
//! part after `[package.metadata.leptos]`) and sipfleet's own `[sipfleet]` settings, each
//! overridable by an environment variable.
//!
//! | variable | setting |
//! |---|---|
//! | `SIPFLEET_DATA_DIR` | `data_dir` |
//! | `SIPFLEET_TRIAL_DAYS` | `trial_days` (fractions allowed) |
//! | `SIPFLEET_SCHEDULE_SECONDS` | `schedule_seconds` |
//! | `SIPFLEET_RESIZE_ACTIVATION_MINUTES` | `resize_activation_minutes` |
//! | `SIPFLEET_KEEPALIVE_SECONDS` | `keepalive_seconds` |
//! | `SIPFLEET_DRAIN_SECONDS` | `drain_seconds` |
//! | `SIPFLEET_TRACE_US`, `SIPFLEET_TRACE_EU` | `trace.us`, `trace.eu` (`IP:port`) |
//! | `SIPFLEET_ZONES` | `zones`, as `name=first-last,name=first-last` (label = name) |
//! | `LEPTOS_SITE_ADDR` etc. | the Leptos options (leptos_config's own) |

use std::path::{Path, PathBuf};

use app::ssr::settings::{Settings, ZoneSettings};
use leptos::prelude::LeptosOptions;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("Leptos options: {0}")]
    Leptos(String),
    #[error("{variable} = {value:?}: {problem}")]
    Env {
        variable: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error("zone {0}: pool must be `first-last` with first ≤ last (IPv4)")]
    Pool(String),
}

#[derive(Deserialize)]
struct File {
    sipfleet: Settings,
}

/// Loads both halves of the settings file, then applies the environment.
pub fn load(path: &Path) -> Result<(LeptosOptions, Settings), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let file: File = toml::from_str(&text).map_err(|source| ConfigError::Toml {
        path: path.into(),
        source,
    })?;
    let mut settings = file.sipfleet;
    apply_env(&mut settings, |name| std::env::var(name).ok())?;
    for zone in &settings.zones {
        if zone.pool_bounds().is_none() {
            return Err(ConfigError::Pool(zone.name.clone()));
        }
    }
    let leptos = leptos::prelude::get_configuration(Some(&path.to_string_lossy()))
        .map_err(|e| ConfigError::Leptos(e.to_string()))?
        .leptos_options;
    Ok((leptos, settings))
}

/// Applies `SIPFLEET_*` overrides read through `var`.
pub fn apply_env(
    settings: &mut Settings,
    var: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(dir) = var("SIPFLEET_DATA_DIR") {
        settings.data_dir = dir.into();
    }
    if let Some(value) = var("SIPFLEET_TRIAL_DAYS") {
        settings.trial_days = value
            .parse()
            .ok()
            .filter(|days: &f64| days.is_finite() && *days >= 0.0)
            .ok_or(ConfigError::Env {
                variable: "SIPFLEET_TRIAL_DAYS",
                value,
                problem: "expected a number of days (0 or more, fractions allowed)",
            })?;
    }
    if let Some(value) = var("SIPFLEET_SCHEDULE_SECONDS") {
        settings.schedule_seconds =
            value
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or(ConfigError::Env {
                    variable: "SIPFLEET_SCHEDULE_SECONDS",
                    value,
                    problem: "expected a whole number of seconds above 0",
                })?;
    }
    if let Some(value) = var("SIPFLEET_RESIZE_ACTIVATION_MINUTES") {
        settings.resize_activation_minutes = value.parse().map_err(|_| ConfigError::Env {
            variable: "SIPFLEET_RESIZE_ACTIVATION_MINUTES",
            value,
            problem: "expected a whole number of minutes",
        })?;
    }
    if let Some(value) = var("SIPFLEET_KEEPALIVE_SECONDS") {
        settings.keepalive_seconds =
            value
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or(ConfigError::Env {
                    variable: "SIPFLEET_KEEPALIVE_SECONDS",
                    value,
                    problem: "expected a whole number of seconds above 0",
                })?;
    }
    if let Some(value) = var("SIPFLEET_DRAIN_SECONDS") {
        settings.drain_seconds = value.parse().map_err(|_| ConfigError::Env {
            variable: "SIPFLEET_DRAIN_SECONDS",
            value,
            problem: "expected a whole number of seconds",
        })?;
    }
    for (variable, collector) in [
        ("SIPFLEET_TRACE_US", &mut settings.trace.us),
        ("SIPFLEET_TRACE_EU", &mut settings.trace.eu),
    ] {
        if let Some(value) = var(variable) {
            *collector = value.parse().map_err(|_| ConfigError::Env {
                variable,
                value,
                problem: "expected IP:port",
            })?;
        }
    }
    if let Some(value) = var("SIPFLEET_ZONES") {
        let zones: Option<Vec<ZoneSettings>> = value
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|entry| {
                let (name, pool) = entry.split_once('=')?;
                Some(ZoneSettings {
                    name: name.trim().into(),
                    label: name.trim().into(),
                    pool: pool.trim().into(),
                })
            })
            .collect();
        settings.zones = zones.filter(|z| !z.is_empty()).ok_or(ConfigError::Env {
            variable: "SIPFLEET_ZONES",
            value,
            problem: "expected name=first-last[,name=first-last…]",
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_settings_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Leptos.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let file: File = toml::from_str(&text).unwrap();
        assert!(!file.sipfleet.zones.is_empty());
        assert_eq!(file.sipfleet.resize_activation_minutes, 15);
        assert!(file
            .sipfleet
            .zones
            .iter()
            .all(|z| z.pool_bounds().is_some()));
    }

    #[test]
    fn environment_overrides_apply_and_bad_values_are_refused() {
        let mut settings = Settings {
            data_dir: "data".into(),
            trial_days: 7.0,
            schedule_seconds: 30,
            resize_activation_minutes: 15,
            keepalive_seconds: 30,
            drain_seconds: 60,
            zones: vec![],
            trace: Default::default(),
        };
        let env = |name: &str| match name {
            "SIPFLEET_TRIAL_DAYS" => Some("0.5".to_string()),
            "SIPFLEET_SCHEDULE_SECONDS" => Some("2".to_string()),
            "SIPFLEET_ZONES" => Some("test=127.0.9.1-127.0.9.9".to_string()),
            _ => None,
        };
        apply_env(&mut settings, env).unwrap();
        assert_eq!(settings.trial_days, 0.5);
        assert_eq!(settings.trial_seconds(), 12 * 3600);
        assert_eq!(settings.schedule_seconds, 2);
        assert_eq!(
            settings.zones[0].pool_bounds().unwrap().1.to_string(),
            "127.0.9.9"
        );
        for (variable, value) in [
            ("SIPFLEET_TRIAL_DAYS", "soon"),
            ("SIPFLEET_TRIAL_DAYS", "-1"),
            ("SIPFLEET_SCHEDULE_SECONDS", "0"),
        ] {
            let bad = |name: &str| (name == variable).then(|| value.to_string());
            assert!(apply_env(&mut settings, bad).is_err(), "{variable}={value}");
        }
        assert_eq!(settings.trial_days, 0.5);
    }
}

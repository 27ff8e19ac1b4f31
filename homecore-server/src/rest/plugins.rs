//! HomeCore's plugin routes: `GET /api/homecore/plugins`, `POST
//! /api/homecore/plugins/{domain}/reload`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use homecore_plugins::{
    Lifecycle, PluginHealth, PluginInfo, PluginStats, RegistryError, RuntimeKind,
};
use serde::Serialize;

use super::{Api, ApiError, json};
use crate::error_chain::error_chain;

/// One plugin as `GET /api/homecore/plugins` lists it: manifest summary, runtime kind,
/// lifecycle state, health, counters and last error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginSummary {
    /// The domain.
    pub domain: String,
    /// The manifest's name.
    pub name: String,
    /// The manifest's version.
    pub version: String,
    /// `native` or `wasm`.
    pub runtime: RuntimeKind,
    /// `loading`, `running`, `stopping`, `stopped`, `failed` or `quarantined`.
    pub lifecycle: Lifecycle,
    /// Whether it is running and receiving events.
    pub ready: bool,
    /// The last error (setup, call, quarantine or dependency reason).
    pub last_error: Option<String>,
    /// Seconds since setup succeeded, while running.
    pub uptime_seconds: Option<f64>,
    /// Setup attempts made by the current start.
    pub setup_attempts: u32,
    /// Failed calls in a row.
    pub consecutive_failures: u32,
    /// Counters.
    pub stats: PluginStats,
    /// The manifest's `dependencies`.
    pub dependencies: Vec<String>,
    /// The manifest's `iot_class`, if any.
    pub iot_class: Option<String>,
    /// The manifest's `integration_type`, if any.
    pub integration_type: Option<String>,
}

impl From<&PluginInfo> for PluginSummary {
    fn from(info: &PluginInfo) -> Self {
        let PluginHealth {
            ready,
            last_error,
            uptime,
            setup_attempts,
            consecutive_failures,
            ..
        } = info.health.clone();
        let m = &info.manifest;
        let name_of = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(String::from));
        Self {
            domain: info.domain.clone(),
            name: m.name.clone(),
            version: m.version.to_string(),
            runtime: info.runtime,
            lifecycle: info.lifecycle,
            ready,
            last_error,
            uptime_seconds: uptime.map(|d| d.as_secs_f64()),
            setup_attempts,
            consecutive_failures,
            stats: info.stats,
            dependencies: m.dependencies.clone(),
            iot_class: name_of(m.iot_class.and_then(|c| serde_json::to_value(c).ok())),
            integration_type: name_of(
                m.integration_type
                    .and_then(|c| serde_json::to_value(c).ok()),
            ),
        }
    }
}

/// A plugin refused before it reached the registry: a package that failed verification or
/// discovery, or a plugin whose config entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedPlugin {
    /// The domain, when known.
    pub domain: Option<String>,
    /// The package directory, for packages.
    pub path: Option<String>,
    /// Why it was refused.
    pub reason: String,
}

/// `GET /api/homecore/plugins`: `{"plugins": [...], "rejected": [...]}`.
pub(super) async fn list(State(api): State<Api>) -> Response {
    let plugins: Vec<PluginSummary> = api
        .registry()
        .list()
        .iter()
        .map(PluginSummary::from)
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({"plugins": plugins, "rejected": api.rejected()}),
    )
}

/// `POST /api/homecore/plugins/{domain}/reload`: a package plugin is verified again from the
/// plugins directory and swapped in, as when its files change (docs/adr/0013-hot-reload.md); a
/// compiled-in plugin is stopped (teardown) and started again from the same spec. Answers
/// with the plugin's summary; a refused package is 422 and the running version keeps
/// running.
pub(super) async fn reload(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(domain) = path.map_err(|_| ApiError::bad_request("Invalid plugin domain."))?;
    #[cfg(feature = "wasm")]
    if let Some(reloader) = api.reloader() {
        tracing::info!(plugin = %domain, "reload requested over the API");
        return match reloader.reload(&domain).await {
            Ok(info) => Ok(json(StatusCode::OK, &PluginSummary::from(&info))),
            Err(crate::hot_reload::ReloadError::NoPackage { .. })
                if api.registry().get(&domain).is_none() =>
            {
                Err(ApiError::not_found(format!("Plugin {domain} not found.")))
            }
            Err(err) => Err(reload_error(&err)),
        };
    }
    if api.registry().get(&domain).is_none() {
        return Err(ApiError::not_found(format!("Plugin {domain} not found.")));
    }
    tracing::info!(plugin = %domain, "reload requested over the API");
    match api.registry().reload(&domain).await {
        Ok(info) => Ok(json(StatusCode::OK, &PluginSummary::from(&info))),
        Err(RegistryError::NotFound { .. }) => {
            Err(ApiError::not_found(format!("Plugin {domain} not found.")))
        }
        Err(err) => Err(ApiError::internal(format!(
            "Reload of {domain} failed: {}",
            error_chain(&err)
        ))),
    }
}

/// The response to a reload that did not swap a new version in.
#[cfg(feature = "wasm")]
fn reload_error(err: &crate::hot_reload::ReloadError) -> ApiError {
    use crate::hot_reload::ReloadError;
    let message = format!("Reload failed: {}", error_chain(err));
    match err {
        ReloadError::NoPackage { .. }
        | ReloadError::Registry {
            source: RegistryError::NotFound { .. },
            ..
        } => ApiError::not_found(message),
        ReloadError::Disabled { .. } => ApiError::new(StatusCode::CONFLICT, message),
        // The package on disk is at fault: refused, or its module does not compile or link.
        ReloadError::Refused { .. }
        | ReloadError::Config { .. }
        | ReloadError::Registry {
            source:
                RegistryError::Load { .. }
                | RegistryError::IncompatibleApi { .. }
                | RegistryError::RuntimeMismatch { .. },
            ..
        } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message),
        _ => ApiError::internal(message),
    }
}

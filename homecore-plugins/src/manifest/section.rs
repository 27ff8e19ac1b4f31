//! The `homecore` section: runtime, API version, module, permissions, limits, config schema.

use homecore::EntityGlob;
use serde_json::{Map, Value};

use super::error::cap;
use super::parse::Checker;
use super::path::Path;
use super::{HomecoreSection, ModulePathError, ProblemKind, RuntimeKind};
use crate::{NamePattern, Permissions, ResourceLimits};

/// Keys allowed in `homecore.permissions`.
const PERMISSION_FIELDS: &[&str] = &[
    "states_read",
    "states_write",
    "services",
    "events",
    "storage",
];

/// Keys allowed in `homecore.limits`.
const LIMIT_FIELDS: &[&str] = &[
    "memory_bytes",
    "table_elements",
    "fuel_per_call",
    "call_timeout_ms",
    "host_calls_per_call",
    "mailbox_capacity",
    "storage_bytes",
    "subscriptions",
    "state_writes_per_second",
    "events_per_second",
    "service_calls_per_second",
    "timers_per_second",
    "burst_seconds",
];

impl Checker {
    /// The `homecore` section; `None` (with the problems reported) if it is not an object or
    /// lacks a required key.
    pub(super) fn homecore(&mut self, at: Path<'_>, value: Value) -> Option<HomecoreSection> {
        let object = self.object(at, value)?;
        let mut runtime = None;
        let mut api_version = None;
        let mut module = None;
        let mut permissions = None;
        let mut limits = None;
        let mut config_schema = None;
        let mut extra = Map::new();
        for (key, value) in object {
            let slot = match key.as_str() {
                "runtime" => &mut runtime,
                "api_version" => &mut api_version,
                "module" => &mut module,
                "permissions" => &mut permissions,
                "limits" => &mut limits,
                "config_schema" => &mut config_schema,
                _ => {
                    extra.insert(key, value);
                    continue;
                }
            };
            *slot = Some(value);
        }

        let runtime = self.required(at.key("runtime"), runtime, |c, at, v| {
            c.named(at, v, RuntimeKind::from_name, RuntimeKind::NAMES)
        });
        let api_version = self.required(at.key("api_version"), api_version, Self::version_req);
        let module_at = at.key("module");
        let module_present = module.is_some();
        let module = self.optional(module_at, module, Self::string);
        match (runtime, module.as_deref()) {
            (Some(RuntimeKind::Wasm), None) if !module_present => self.report(
                module_at,
                ProblemKind::RequiredForRuntime {
                    runtime: RuntimeKind::Wasm,
                },
            ),
            (Some(RuntimeKind::Wasm), Some(path)) => {
                if let Err(reason) = check_module_path(path) {
                    self.report(
                        module_at,
                        ProblemKind::InvalidModulePath {
                            value: cap(path),
                            reason,
                        },
                    );
                }
            }
            (Some(RuntimeKind::Native), Some(_)) => self.report(
                module_at,
                ProblemKind::NotAllowedForRuntime {
                    runtime: RuntimeKind::Native,
                },
            ),
            _ => {}
        }
        let permissions = permissions
            .map(|v| self.permissions(at.key("permissions"), v))
            .unwrap_or_default();
        let limits = limits
            .map(|v| self.limits(at.key("limits"), v))
            .unwrap_or_default();
        let config_schema =
            self.optional(at.key("config_schema"), config_schema, |c, at, v| match v {
                Value::Object(_) | Value::Bool(_) => Some(v),
                other => {
                    c.wrong_type(at, "object or boolean", &other);
                    None
                }
            });
        Some(HomecoreSection {
            runtime: runtime?,
            api_version: api_version?,
            module,
            permissions,
            limits,
            config_schema,
            extra,
        })
    }

    fn permissions(&mut self, at: Path<'_>, value: Value) -> Permissions {
        let mut permissions = Permissions::default();
        let Some(object) = self.object(at, value) else {
            return permissions;
        };
        for (key, value) in object {
            let here = at.key(&key);
            match key.as_str() {
                "states_read" => permissions.states_read = self.globs(here, value),
                "states_write" => permissions.states_write = self.globs(here, value),
                "services" => permissions.services = self.patterns(here, value),
                "events" => permissions.events = self.event_patterns(here, value),
                "storage" => permissions.storage = self.boolean(here, value).unwrap_or(false),
                _ => self.report(
                    here,
                    ProblemKind::UnknownField {
                        allowed: PERMISSION_FIELDS,
                    },
                ),
            }
        }
        permissions
    }

    fn globs(&mut self, at: Path<'_>, value: Value) -> Vec<EntityGlob> {
        self.converted(at, value, |c, here, _, text| match EntityGlob::new(&text) {
            Ok(glob) => Some(glob),
            Err(error) => {
                c.report(
                    here,
                    ProblemKind::InvalidGlob {
                        value: cap(&text),
                        error,
                    },
                );
                None
            }
        })
    }

    fn patterns(&mut self, at: Path<'_>, value: Value) -> Vec<NamePattern> {
        let patterns = self.patterns_with_index(at, value);
        patterns.into_iter().map(|(_, pattern)| pattern).collect()
    }

    /// Event-type patterns; one that can only match event types the core owns is refused.
    fn event_patterns(&mut self, at: Path<'_>, value: Value) -> Vec<NamePattern> {
        let patterns = self.patterns_with_index(at, value);
        patterns
            .into_iter()
            .filter_map(|(i, pattern)| {
                if pattern.only_core_events() {
                    self.report(
                        at.index(i),
                        ProblemKind::CoreEventType {
                            value: cap(pattern.as_str()),
                        },
                    );
                    None
                } else {
                    Some(pattern)
                }
            })
            .collect()
    }

    fn patterns_with_index(&mut self, at: Path<'_>, value: Value) -> Vec<(usize, NamePattern)> {
        self.converted(at, value, |c, here, i, text| {
            match NamePattern::new(&text) {
                Ok(pattern) => Some((i, pattern)),
                Err(error) => {
                    c.report(
                        here,
                        ProblemKind::InvalidPattern {
                            value: cap(&text),
                            error,
                        },
                    );
                    None
                }
            }
        })
    }

    fn limits(&mut self, at: Path<'_>, value: Value) -> ResourceLimits {
        let mut limits = ResourceLimits::default();
        let Some(object) = self.object(at, value) else {
            return limits;
        };
        for (key, value) in object {
            let here = at.key(&key);
            match key.as_str() {
                "memory_bytes" => limits.memory_bytes = self.limit(here, &value, u64::MAX),
                "table_elements" => limits.table_elements = self.limit(here, &value, u64::MAX),
                "fuel_per_call" => limits.fuel_per_call = self.limit(here, &value, u64::MAX),
                "call_timeout_ms" => limits.call_timeout_ms = self.limit(here, &value, u64::MAX),
                "host_calls_per_call" => {
                    limits.host_calls_per_call = self.limit(here, &value, u64::MAX);
                }
                "mailbox_capacity" => limits.mailbox_capacity = self.limit_u32(here, &value),
                "storage_bytes" => limits.storage_bytes = self.limit(here, &value, u64::MAX),
                "subscriptions" => limits.subscriptions = self.limit_u32(here, &value),
                "state_writes_per_second" => {
                    limits.state_writes_per_second = self.limit_u32(here, &value);
                }
                "events_per_second" => limits.events_per_second = self.limit_u32(here, &value),
                "service_calls_per_second" => {
                    limits.service_calls_per_second = self.limit_u32(here, &value);
                }
                "timers_per_second" => limits.timers_per_second = self.limit_u32(here, &value),
                "burst_seconds" => limits.burst_seconds = self.limit_u32(here, &value),
                _ => self.report(
                    here,
                    ProblemKind::UnknownField {
                        allowed: LIMIT_FIELDS,
                    },
                ),
            }
        }
        limits
    }

    /// A limit from 1 to `u32::MAX`, or `null` for the host's default.
    fn limit_u32(&mut self, at: Path<'_>, value: &Value) -> Option<u32> {
        self.limit(at, value, u32::MAX.into())
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A limit: an integer from 1 to `max`, or `null` for the host's default.
    fn limit(&mut self, at: Path<'_>, value: &Value, max: u64) -> Option<u64> {
        let n = match value {
            Value::Null => return None,
            Value::Number(n) => n,
            other => {
                self.wrong_type(at, "integer", other);
                return None;
            }
        };
        match n.as_u64() {
            Some(0) => self.report(at, ProblemKind::NotPositive),
            Some(n) if n > max => self.report(at, ProblemKind::TooLarge { max }),
            Some(n) => return Some(n),
            None if n.is_i64() => self.report(at, ProblemKind::NotPositive),
            None => self.wrong_type(at, "integer", value),
        }
        None
    }
}

/// Checks a wasm module path: relative, no `..`, no NUL, a file name ending in `.wasm`.
fn check_module_path(path: &str) -> Result<(), ModulePathError> {
    if path.is_empty() {
        return Err(ModulePathError::Empty);
    }
    if path.contains('\0') {
        return Err(ModulePathError::Nul);
    }
    let bytes = path.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if drive || path.starts_with(['/', '\\']) {
        return Err(ModulePathError::Absolute);
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return Err(ModulePathError::ParentDir);
    }
    let file_name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    if file_name.len() <= ".wasm".len() || !file_name.ends_with(".wasm") {
        return Err(ModulePathError::NotWasm);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths() {
        assert_eq!(check_module_path("plugin.wasm"), Ok(()));
        assert_eq!(check_module_path("build/out/plugin.wasm"), Ok(()));
        assert_eq!(check_module_path(""), Err(ModulePathError::Empty));
        assert_eq!(check_module_path("/p.wasm"), Err(ModulePathError::Absolute));
        assert_eq!(
            check_module_path("\\p.wasm"),
            Err(ModulePathError::Absolute)
        );
        assert_eq!(
            check_module_path("C:p.wasm"),
            Err(ModulePathError::Absolute)
        );
        assert_eq!(
            check_module_path("../p.wasm"),
            Err(ModulePathError::ParentDir)
        );
        assert_eq!(
            check_module_path("a\\..\\p.wasm"),
            Err(ModulePathError::ParentDir)
        );
        assert_eq!(check_module_path("p\0.wasm"), Err(ModulePathError::Nul));
        assert_eq!(check_module_path("p.wat"), Err(ModulePathError::NotWasm));
        assert_eq!(
            check_module_path("dir/.wasm"),
            Err(ModulePathError::NotWasm)
        );
    }
}

//! The validating walk from JSON to a [`PluginManifest`]: every field is checked and every
//! problem recorded with its path, so that one pass reports all of them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use homecore::{MAX_ENTITY_ID_LEN, json_type_name, validate_domain};
use semver::{Version, VersionReq};
use serde_json::{Map, Value};

use super::discovery::{BLUETOOTH, DHCP, HOMEKIT, USB};
use super::error::cap;
use super::path::Path;
use super::{
    IntegrationType, IotClass, MAX_MANIFEST_BYTES, ManifestError, ManifestProblem, PluginManifest,
    ProblemKind, QualityScale,
};

/// Which flavour of manifest is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// A HomeCore plugin: `homecore` and `version` required, `version` strict semver.
    HomeCore,
    /// A Home Assistant integration: both optional, `version` leniently normalised.
    HomeAssistant,
}

/// The longest domain: an entity id of `<domain>.<x>` must fit in [`MAX_ENTITY_ID_LEN`].
const MAX_DOMAIN_LEN: usize = MAX_ENTITY_ID_LEN - 2;

/// Parses `bytes` as a JSON value, within [`MAX_MANIFEST_BYTES`].
pub(super) fn json(bytes: &[u8]) -> Result<Value, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            len: bytes.len(),
            max: MAX_MANIFEST_BYTES,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        ManifestError::Syntax {
            line: e.line(),
            column: e.column(),
            message: text.strip_suffix(&suffix).unwrap_or(&text).to_owned(),
        }
    })
}

/// The known top-level fields, taken out of the object before validation.
#[derive(Default)]
struct RawManifest {
    domain: Option<Value>,
    name: Option<Value>,
    version: Option<Value>,
    documentation: Option<Value>,
    issue_tracker: Option<Value>,
    codeowners: Option<Value>,
    requirements: Option<Value>,
    dependencies: Option<Value>,
    after_dependencies: Option<Value>,
    iot_class: Option<Value>,
    integration_type: Option<Value>,
    config_flow: Option<Value>,
    quality_scale: Option<Value>,
    loggers: Option<Value>,
    single_config_entry: Option<Value>,
    disabled: Option<Value>,
    import_executor: Option<Value>,
    is_built_in: Option<Value>,
    bluetooth: Option<Value>,
    zeroconf: Option<Value>,
    ssdp: Option<Value>,
    dhcp: Option<Value>,
    usb: Option<Value>,
    homekit: Option<Value>,
    mqtt: Option<Value>,
    homecore: Option<Value>,
}

/// Validates a manifest object.
pub(super) fn manifest(value: Value, mode: Mode) -> Result<PluginManifest, ManifestError> {
    let object = match value {
        Value::Object(object) => object,
        other => {
            return Err(ManifestError::NotAnObject {
                found: json_type_name(&other),
            });
        }
    };
    let mut raw = RawManifest::default();
    let mut extra = Map::new();
    for (key, value) in object {
        let slot = match key.as_str() {
            "domain" => &mut raw.domain,
            "name" => &mut raw.name,
            "version" => &mut raw.version,
            "documentation" => &mut raw.documentation,
            "issue_tracker" => &mut raw.issue_tracker,
            "codeowners" => &mut raw.codeowners,
            "requirements" => &mut raw.requirements,
            "dependencies" => &mut raw.dependencies,
            "after_dependencies" => &mut raw.after_dependencies,
            "iot_class" => &mut raw.iot_class,
            "integration_type" => &mut raw.integration_type,
            "config_flow" => &mut raw.config_flow,
            "quality_scale" => &mut raw.quality_scale,
            "loggers" => &mut raw.loggers,
            "single_config_entry" => &mut raw.single_config_entry,
            "disabled" => &mut raw.disabled,
            "import_executor" => &mut raw.import_executor,
            "is_built_in" => &mut raw.is_built_in,
            "bluetooth" => &mut raw.bluetooth,
            "zeroconf" => &mut raw.zeroconf,
            "ssdp" => &mut raw.ssdp,
            "dhcp" => &mut raw.dhcp,
            "usb" => &mut raw.usb,
            "homekit" => &mut raw.homekit,
            "mqtt" => &mut raw.mqtt,
            "homecore" => &mut raw.homecore,
            _ => {
                extra.insert(key, value);
                continue;
            }
        };
        *slot = Some(value);
    }

    let raw_domain = match &raw.domain {
        Some(Value::String(domain)) => Some(cap(domain)),
        _ => None,
    };
    let own_domain = raw_domain.as_deref();
    let lenient = mode == Mode::HomeAssistant;
    let root = Path::Root;
    let mut c = Checker::default();

    let domain = c.required(root.key("domain"), raw.domain, Checker::domain);
    let name = c.required(root.key("name"), raw.name, Checker::name);
    let version = match (raw.version, mode) {
        (None, Mode::HomeAssistant) => Some(Version::new(0, 0, 0)),
        (raw_version, _) => c.required(root.key("version"), raw_version, |c, at, v| {
            c.version(at, v, lenient)
        }),
    };
    let documentation = c.optional(root.key("documentation"), raw.documentation, Checker::url);
    let issue_tracker = c.optional(root.key("issue_tracker"), raw.issue_tracker, Checker::url);
    let codeowners = c.list(root.key("codeowners"), raw.codeowners, Checker::codeowner);
    let requirements = c.list(root.key("requirements"), raw.requirements, Checker::any);
    let dependencies = c.optional(root.key("dependencies"), raw.dependencies, |c, at, v| {
        Some(c.dependencies(at, v, own_domain))
    });
    let after_dependencies = c.optional(
        root.key("after_dependencies"),
        raw.after_dependencies,
        |c, at, v| Some(c.dependencies(at, v, own_domain)),
    );
    let iot_class = c.optional(root.key("iot_class"), raw.iot_class, |c, at, v| {
        c.named(at, v, IotClass::from_name, IotClass::NAMES)
    });
    let integration_type = c.optional(
        root.key("integration_type"),
        raw.integration_type,
        |c, at, v| c.named(at, v, IntegrationType::from_name, IntegrationType::NAMES),
    );
    let config_flow = c.optional(root.key("config_flow"), raw.config_flow, Checker::boolean);
    let quality_scale = c.optional(root.key("quality_scale"), raw.quality_scale, |c, at, v| {
        c.named(at, v, QualityScale::from_name, QualityScale::NAMES)
    });
    let loggers = c.list(root.key("loggers"), raw.loggers, Checker::any);
    let single_config_entry = c.optional(
        root.key("single_config_entry"),
        raw.single_config_entry,
        Checker::boolean,
    );
    let disabled = c.optional(root.key("disabled"), raw.disabled, Checker::string);
    let import_executor = c.optional(
        root.key("import_executor"),
        raw.import_executor,
        Checker::boolean,
    );
    let is_built_in = c.optional(root.key("is_built_in"), raw.is_built_in, Checker::boolean);
    let bluetooth = c.optional(root.key("bluetooth"), raw.bluetooth, |c, at, v| {
        Some(c.matchers(at, v, BLUETOOTH, false))
    });
    let zeroconf = c.optional(root.key("zeroconf"), raw.zeroconf, Checker::zeroconf);
    let ssdp = c.optional(root.key("ssdp"), raw.ssdp, |c, at, v| {
        Some(c.matchers(at, v, &[], true))
    });
    let dhcp = c.optional(root.key("dhcp"), raw.dhcp, |c, at, v| {
        Some(c.matchers(at, v, DHCP, false))
    });
    let usb = c.optional(root.key("usb"), raw.usb, |c, at, v| {
        Some(c.matchers(at, v, USB, false))
    });
    let homekit = c.optional(root.key("homekit"), raw.homekit, |c, at, v| {
        c.matcher(at, v, HOMEKIT)
    });
    let mqtt = c.list(root.key("mqtt"), raw.mqtt, Checker::any);
    let homecore = match (raw.homecore, mode) {
        (None, Mode::HomeAssistant) => None,
        (raw_homecore, _) => c.required(root.key("homecore"), raw_homecore, Checker::homecore),
    };

    match (domain, name, version) {
        (Some(domain), Some(name), Some(version)) if c.problems.is_empty() => Ok(PluginManifest {
            domain,
            name,
            version,
            documentation,
            issue_tracker,
            codeowners,
            requirements,
            dependencies: dependencies.unwrap_or_default(),
            after_dependencies: after_dependencies.unwrap_or_default(),
            iot_class,
            integration_type,
            config_flow,
            quality_scale,
            loggers,
            single_config_entry,
            disabled,
            import_executor,
            is_built_in,
            bluetooth: bluetooth.unwrap_or_default(),
            zeroconf: zeroconf.unwrap_or_default(),
            ssdp: ssdp.unwrap_or_default(),
            dhcp: dhcp.unwrap_or_default(),
            usb: usb.unwrap_or_default(),
            homekit,
            mqtt,
            homecore,
            extra,
        }),
        _ => Err(ManifestError::Invalid {
            domain: raw_domain,
            problems: c.problems,
        }),
    }
}

/// Collects problems while the walk goes on. A check that fails reports and yields `None`
/// (or skips the element); the manifest is built only if nothing was reported.
#[derive(Default)]
pub(super) struct Checker {
    problems: Vec<ManifestProblem>,
}

impl Checker {
    pub(super) fn report(&mut self, at: Path<'_>, kind: ProblemKind) {
        self.problems.push(ManifestProblem {
            path: at.render(),
            kind,
        });
    }

    pub(super) fn wrong_type(&mut self, at: Path<'_>, expected: &'static str, found: &Value) {
        self.report(
            at,
            ProblemKind::WrongType {
                expected,
                found: json_type_name(found),
            },
        );
    }

    /// Checks a field that must be present.
    pub(super) fn required<T>(
        &mut self,
        at: Path<'_>,
        value: Option<Value>,
        check: impl FnOnce(&mut Self, Path<'_>, Value) -> Option<T>,
    ) -> Option<T> {
        match value {
            Some(value) => check(self, at, value),
            None => {
                self.report(at, ProblemKind::Missing);
                None
            }
        }
    }

    /// Checks a field if it is present.
    pub(super) fn optional<T>(
        &mut self,
        at: Path<'_>,
        value: Option<Value>,
        check: impl FnOnce(&mut Self, Path<'_>, Value) -> Option<T>,
    ) -> Option<T> {
        value.and_then(|value| check(self, at, value))
    }

    /// Checks an optional array of strings, each with `check`; bad elements are left out.
    fn list(
        &mut self,
        at: Path<'_>,
        value: Option<Value>,
        check: impl FnMut(&mut Self, Path<'_>, &str) -> bool,
    ) -> Vec<String> {
        match value {
            Some(value) => self.strings(at, value, check),
            None => Vec::new(),
        }
    }

    /// Accepts any string.
    fn any(&mut self, _at: Path<'_>, _value: &str) -> bool {
        true
    }

    pub(super) fn string(&mut self, at: Path<'_>, value: Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s),
            other => {
                self.wrong_type(at, "string", &other);
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, at: Path<'_>, value: Value) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(b),
            other => {
                self.wrong_type(at, "boolean", &other);
                None
            }
        }
    }

    pub(super) fn array(&mut self, at: Path<'_>, value: Value) -> Option<Vec<Value>> {
        match value {
            Value::Array(items) => Some(items),
            other => {
                self.wrong_type(at, "array", &other);
                None
            }
        }
    }

    pub(super) fn object(&mut self, at: Path<'_>, value: Value) -> Option<Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.wrong_type(at, "object", &other);
                None
            }
        }
    }

    /// An array of strings each passing `check` (which reports its own problems).
    fn strings(
        &mut self,
        at: Path<'_>,
        value: Value,
        mut check: impl FnMut(&mut Self, Path<'_>, &str) -> bool,
    ) -> Vec<String> {
        let Some(items) = self.array(at, value) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let here = at.index(i);
            if let Some(s) = self.string(here, item)
                && check(self, here, &s)
            {
                out.push(s);
            }
        }
        out
    }

    /// An array of strings each converted by `convert` (which reports its own problems).
    pub(super) fn converted<T>(
        &mut self,
        at: Path<'_>,
        value: Value,
        mut convert: impl FnMut(&mut Self, Path<'_>, usize, String) -> Option<T>,
    ) -> Vec<T> {
        let Some(items) = self.array(at, value) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let here = at.index(i);
            if let Some(t) = self
                .string(here, item)
                .and_then(|s| convert(self, here, i, s))
            {
                out.push(t);
            }
        }
        out
    }

    fn check_domain(&mut self, at: Path<'_>, domain: &str) -> bool {
        if domain.len() > MAX_DOMAIN_LEN {
            self.report(
                at,
                ProblemKind::TooLong {
                    len: domain.len(),
                    max: MAX_DOMAIN_LEN,
                },
            );
            return false;
        }
        match validate_domain(domain) {
            Ok(()) => true,
            Err(error) => {
                self.report(at, ProblemKind::InvalidDomain(error));
                false
            }
        }
    }

    fn domain(&mut self, at: Path<'_>, value: Value) -> Option<String> {
        let domain = self.string(at, value)?;
        self.check_domain(at, &domain).then_some(domain)
    }

    fn name(&mut self, at: Path<'_>, value: Value) -> Option<String> {
        let name = self.string(at, value)?;
        if name.trim().is_empty() {
            self.report(at, ProblemKind::Empty);
            return None;
        }
        Some(name)
    }

    fn version(&mut self, at: Path<'_>, value: Value, lenient: bool) -> Option<Version> {
        let text = self.string(at, value)?;
        let error = match Version::parse(&text) {
            Ok(version) => return Some(version),
            Err(error) => error,
        };
        let normalised = if lenient {
            normalise_version(&text)
        } else {
            None
        };
        match normalised {
            Some(version) => Some(version),
            None => {
                self.report(
                    at,
                    ProblemKind::InvalidVersion {
                        value: cap(&text),
                        message: error.to_string(),
                    },
                );
                None
            }
        }
    }

    pub(super) fn version_req(&mut self, at: Path<'_>, value: Value) -> Option<VersionReq> {
        let text = self.string(at, value)?;
        match VersionReq::parse(&text) {
            Ok(req) => Some(req),
            Err(error) => {
                self.report(
                    at,
                    ProblemKind::InvalidVersionReq {
                        value: cap(&text),
                        message: error.to_string(),
                    },
                );
                None
            }
        }
    }

    fn url(&mut self, at: Path<'_>, value: Value) -> Option<String> {
        let url = self.string(at, value)?;
        match url_problem(&url) {
            None => Some(url),
            Some(reason) => {
                self.report(
                    at,
                    ProblemKind::InvalidUrl {
                        value: cap(&url),
                        reason,
                    },
                );
                None
            }
        }
    }

    fn codeowner(&mut self, at: Path<'_>, owner: &str) -> bool {
        let ok = owner.len() > 1 && owner.starts_with('@') && !owner.contains(char::is_whitespace);
        if !ok {
            self.report(at, ProblemKind::InvalidCodeowner { value: cap(owner) });
        }
        ok
    }

    /// One of a fixed set of names.
    pub(super) fn named<T>(
        &mut self,
        at: Path<'_>,
        value: Value,
        from_name: fn(&str) -> Option<T>,
        allowed: &'static [&'static str],
    ) -> Option<T> {
        let text = self.string(at, value)?;
        let found = from_name(&text);
        if found.is_none() {
            self.report(
                at,
                ProblemKind::NotInSet {
                    value: cap(&text),
                    allowed,
                },
            );
        }
        found
    }

    /// Valid domains, not `own`, each listed once.
    fn dependencies(&mut self, at: Path<'_>, value: Value, own: Option<&str>) -> Vec<String> {
        let mut first_seen = HashMap::new();
        self.converted(at, value, |c, here, index, domain| {
            if !c.check_domain(here, &domain) {
                return None;
            }
            if own == Some(domain.as_str()) {
                c.report(here, ProblemKind::SelfDependency { domain });
                return None;
            }
            match first_seen.entry(domain) {
                Entry::Occupied(e) => {
                    let first_index = *e.get();
                    c.report(
                        here,
                        ProblemKind::Duplicate {
                            value: e.key().clone(),
                            first_index,
                        },
                    );
                    None
                }
                Entry::Vacant(e) => {
                    let domain = e.key().clone();
                    e.insert(index);
                    Some(domain)
                }
            }
        })
    }
}

/// What is wrong with a documentation or issue tracker URL, if anything.
fn url_problem(url: &str) -> Option<&'static str> {
    let scheme_len = if starts_with_ignore_case(url, "https://") {
        8
    } else if starts_with_ignore_case(url, "http://") {
        7
    } else {
        return Some("it must start with \"https://\" or \"http://\"");
    };
    if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Some("it must not contain spaces or control characters");
    }
    let host = url[scheme_len..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    if host.is_empty() {
        return Some("it has no host");
    }
    None
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Normalises versions Home Assistant accepts but semver does not: a leading `v`, fewer than
/// three components, leading zeros (`v1.02` is `1.2.0`). `None` if that does not help.
fn normalise_version(text: &str) -> Option<Version> {
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let (core, rest) = text.split_at(text.find(['-', '+']).unwrap_or(text.len()));
    let mut parts = [0_u64; 3];
    for (i, part) in core.split('.').enumerate() {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *parts.get_mut(i)? = part.parse().ok()?;
    }
    let [major, minor, patch] = parts;
    Version::parse(&format!("{major}.{minor}.{patch}{rest}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(url_problem("https://example.com/x"), None);
        assert_eq!(url_problem("HTTP://example.com"), None);
        assert!(url_problem("ftp://example.com").is_some());
        assert!(url_problem("example.com").is_some());
        assert!(url_problem("https://").is_some());
        assert!(url_problem("https:///path").is_some());
        assert!(url_problem("https://exa mple.com").is_some());
    }

    #[test]
    fn lenient_versions() {
        let v = |s| normalise_version(s);
        assert_eq!(v("1"), Some(Version::new(1, 0, 0)));
        assert_eq!(v("1.0"), Some(Version::new(1, 0, 0)));
        assert_eq!(v("v2.1.3"), Some(Version::new(2, 1, 3)));
        assert_eq!(v("2024.01.5"), Some(Version::new(2024, 1, 5)));
        assert_eq!(
            v("1.2-beta.1"),
            Some(Version::parse("1.2.0-beta.1").expect("valid"))
        );
        assert_eq!(v("1.2.3.4"), None);
        assert_eq!(v("1..2"), None);
        assert_eq!(v(""), None);
        assert_eq!(v("one"), None);
    }
}

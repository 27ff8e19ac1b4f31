//! Manifest parsing, validation and round trips.

use homecore::{EntityGlobError, EntityIdError};
use serde_json::{Value, json};

use super::*;
use crate::NamePatternError;

const MOTION_LIGHTS: &str = include_str!("../../tests/fixtures/manifests/motion_lights.json");
const HUE: &str = include_str!("../../tests/fixtures/manifests/hue.json");

/// A minimal valid HomeCore manifest to break one field at a time.
fn minimal() -> Value {
    json!({
        "domain": "motion_lights",
        "name": "Motion Lights",
        "version": "1.0.0",
        "homecore": {"runtime": "native", "api_version": "^1.0"},
    })
}

/// `minimal()` with `pointer` (a JSON pointer) set to `value`.
fn with(pointer: &str, value: Value) -> Value {
    let mut manifest = minimal();
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a '/'");
    manifest
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent is an object")
        .insert(key.to_owned(), value);
    manifest
}

/// The problems of a manifest that must be invalid, as `(path, kind)`.
fn problems(value: Value) -> Vec<(String, ProblemKind)> {
    match PluginManifest::from_value(value) {
        Ok(m) => panic!("expected problems, parsed {m:?}"),
        Err(ManifestError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| (p.path, p.kind)).collect()
        }
        Err(other) => panic!("expected ManifestError::Invalid, got {other:?}"),
    }
}

/// The single problem of a manifest.
fn problem(value: Value) -> (String, ProblemKind) {
    let mut all = problems(value);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

fn wrong(expected: &'static str, found: &'static str) -> ProblemKind {
    ProblemKind::WrongType { expected, found }
}

#[test]
fn full_manifest_with_every_field_parses() {
    let m = PluginManifest::from_value(json!({
        "domain": "motion_lights",
        "name": "Motion Lights",
        "version": "1.4.2-beta.1+build.5",
        "documentation": "https://homecore.example/motion_lights",
        "issue_tracker": "https://github.com/homecore/motion_lights/issues",
        "codeowners": ["@alice", "@homecore/plugins"],
        "requirements": ["aiohue==4.7.4"],
        "dependencies": ["http", "light"],
        "after_dependencies": ["zeroconf"],
        "iot_class": "local_push",
        "integration_type": "helper",
        "config_flow": true,
        "quality_scale": "platinum",
        "loggers": ["motion_lights"],
        "single_config_entry": true,
        "disabled": "replaced by motion_lights_2",
        "import_executor": true,
        "is_built_in": false,
        "bluetooth": [{"connectable": true, "service_uuid": "0000fe95-0000-1000-8000-00805f9b34fb",
            "service_data_uuid": "0000fe95", "local_name": "MOTION*", "manufacturer_id": 76,
            "manufacturer_data_start": [2, 21]}],
        "zeroconf": ["_motion._tcp.local.", {"type": "_http._tcp.local.", "name": "motion*",
            "properties": {"vendor": "acme*"}}],
        "ssdp": [{"manufacturer": "Acme", "modelName": "Motion 1"}],
        "dhcp": [{"hostname": "motion-*", "macaddress": "AC:DE:48:*"}, {"registered_devices": true}],
        "usb": [{"vid": "10C4", "pid": "EA60", "serial_number": "a*", "manufacturer": "acme*",
            "description": "*motion*", "known_devices": ["Acme Motion Stick"]}],
        "homekit": {"models": ["MOTION1"]},
        "mqtt": ["motion_lights/#"],
        "homecore": {
            "runtime": "wasm",
            "api_version": ">=1.2, <2",
            "module": "dist/motion_lights.wasm",
            "permissions": {
                "states_read": ["binary_sensor.*_motion"],
                "states_write": ["light.*"],
                "services": ["light.turn_on"],
                "events": ["motion_*"],
                "storage": true
            },
            "limits": {"memory_bytes": 1048576, "table_elements": 1000, "fuel_per_call": 10,
                "call_timeout_ms": 250, "host_calls_per_call": 64, "mailbox_capacity": 16,
                "storage_bytes": 65536},
            "config_schema": {"type": "object"}
        }
    }))
    .expect("valid manifest");

    assert_eq!(m.domain, "motion_lights");
    assert_eq!(m.name, "Motion Lights");
    assert_eq!(
        m.version,
        semver::Version::parse("1.4.2-beta.1+build.5").expect("valid")
    );
    assert_eq!(
        m.documentation.as_deref(),
        Some("https://homecore.example/motion_lights")
    );
    assert!(m.issue_tracker.is_some());
    assert_eq!(m.codeowners, ["@alice", "@homecore/plugins"]);
    assert_eq!(m.requirements, ["aiohue==4.7.4"]);
    assert_eq!(m.dependencies, ["http", "light"]);
    assert_eq!(m.after_dependencies, ["zeroconf"]);
    assert_eq!(m.iot_class, Some(IotClass::LocalPush));
    assert_eq!(m.integration_type, Some(IntegrationType::Helper));
    assert_eq!(m.config_flow, Some(true));
    assert_eq!(m.quality_scale, Some(QualityScale::Platinum));
    assert_eq!(m.loggers, ["motion_lights"]);
    assert_eq!(m.single_config_entry, Some(true));
    assert_eq!(m.disabled.as_deref(), Some("replaced by motion_lights_2"));
    assert_eq!(m.import_executor, Some(true));
    assert_eq!(m.is_built_in, Some(false));
    assert_eq!(m.bluetooth[0]["manufacturer_id"], 76);
    assert_eq!(m.zeroconf.len(), 2);
    assert_eq!(m.ssdp[0]["modelName"], "Motion 1");
    assert_eq!(m.dhcp.len(), 2);
    assert_eq!(m.usb[0]["vid"], "10C4");
    assert_eq!(
        m.homekit.as_ref().map(|h| &h["models"]),
        Some(&json!(["MOTION1"]))
    );
    assert_eq!(m.mqtt, ["motion_lights/#"]);
    assert!(m.extra.is_empty());
    assert_eq!(m.runtime(), RuntimeKind::Wasm);

    let hc = m.homecore.as_ref().expect("homecore section");
    assert!(hc.api_version.matches(&semver::Version::new(1, 5, 0)));
    assert!(!hc.api_version.matches(&semver::Version::new(2, 0, 0)));
    assert_eq!(hc.module.as_deref(), Some("dist/motion_lights.wasm"));
    assert!(
        hc.permissions
            .may_write(&"light.hall".parse().expect("valid id"))
    );
    assert!(hc.permissions.may_call("light", "turn_on"));
    assert!(hc.permissions.may_fire("motion_detected"));
    assert!(hc.permissions.storage);
    assert_eq!(hc.limits.memory_bytes, Some(1_048_576));
    assert_eq!(hc.limits.mailbox_capacity, Some(16));
    assert_eq!(hc.limits.storage_bytes, Some(65_536));
    assert_eq!(hc.config_schema, Some(json!({"type": "object"})));
    assert!(hc.extra.is_empty());

    let again = PluginManifest::parse(&m.to_json_pretty()).expect("round trip");
    assert_eq!(again, m);
}

#[test]
fn realistic_fixture_parses_from_bytes_and_str() {
    let m = PluginManifest::from_slice(MOTION_LIGHTS.as_bytes()).expect("valid fixture");
    assert_eq!(m.version, semver::Version::new(1, 4, 2));
    assert_eq!(m.runtime(), RuntimeKind::Wasm);
    assert_eq!(MOTION_LIGHTS.parse::<PluginManifest>(), Ok(m.clone()));
    assert_eq!(PluginManifest::parse(MOTION_LIGHTS), Ok(m.clone()));
    let via_serde: PluginManifest = serde_json::from_str(MOTION_LIGHTS).expect("deserializes");
    assert_eq!(via_serde, m);
}

#[test]
fn home_assistant_core_manifest_parses_in_home_assistant_mode() {
    let m = PluginManifest::from_home_assistant_slice(HUE.as_bytes()).expect("valid");
    assert_eq!(m.domain, "hue");
    assert_eq!(m.version, semver::Version::new(0, 0, 0), "missing version");
    assert_eq!(m.runtime(), RuntimeKind::Native);
    assert!(m.homecore.is_none());
    assert_eq!(m.zeroconf, [json!("_hue._tcp.local.")]);
    assert_eq!(
        m.homekit.as_ref().map(|h| &h["models"]),
        Some(&json!(["BSB002", "BSB003"]))
    );
    assert_eq!(m.ssdp.len(), 3);
    assert_eq!(m.ssdp[2]["manufacturer"], "Signify");
    assert_eq!(m.integration_type, Some(IntegrationType::Hub));
    assert_eq!(m.iot_class, Some(IotClass::LocalPush));
    assert_eq!(m.quality_scale, Some(QualityScale::Platinum));

    // The same file is not a HomeCore manifest: it lacks the section and a version.
    let err = PluginManifest::from_slice(HUE.as_bytes()).expect_err("not a homecore manifest");
    let paths: Vec<_> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["version", "homecore"]);
    assert!(
        err.problems()
            .iter()
            .all(|p| p.kind == ProblemKind::Missing)
    );
}

#[test]
fn home_assistant_mode_normalises_custom_integration_versions() {
    let ha = |version: &str| {
        let mut manifest = minimal();
        manifest["version"] = json!(version);
        PluginManifest::from_home_assistant_value(manifest).map(|m| m.version)
    };
    assert_eq!(ha("1.0"), Ok(semver::Version::new(1, 0, 0)));
    assert_eq!(ha("v2.1.3"), Ok(semver::Version::new(2, 1, 3)));
    assert_eq!(ha("2024.01.5"), Ok(semver::Version::new(2024, 1, 5)));
    let err = ha("latest").expect_err("not a version");
    assert!(matches!(
        &err.problems()[0].kind,
        ProblemKind::InvalidVersion { value, .. } if value == "latest"
    ));

    // HomeCore manifests want real semver.
    let (path, kind) = problem(with("/version", json!("1.0")));
    assert_eq!(path, "version");
    assert!(matches!(kind, ProblemKind::InvalidVersion { value, .. } if value == "1.0"));
}

#[test]
fn home_assistant_mode_validates_a_homecore_section_when_present() {
    let manifest = with("/homecore/runtime", json!("wasm"));
    let err = PluginManifest::from_home_assistant_value(manifest).expect_err("wasm, no module");
    assert_eq!(err.problems()[0].path, "homecore.module");
    let ok = PluginManifest::from_home_assistant_value(minimal()).expect("valid");
    assert_eq!(ok.runtime(), RuntimeKind::Native);
}

#[test]
fn unknown_fields_round_trip_unchanged_and_in_order() {
    let text = r#"{
        "zz_last_alphabetically": {"nested": [1, 2.5, null, "x"]},
        "domain": "motion_lights",
        "x_vendor": true,
        "name": "Motion Lights",
        "homecore": {
            "x_future": {"b": 1, "a": 2},
            "runtime": "native",
            "api_version": "^1.0",
            "another": [3, 2, 1]
        },
        "version": "1.0.0",
        "aa_first_alphabetically": "kept",
        "supported_by": "hue",
        "locations": ["kitchen"]
    }"#;
    let m = PluginManifest::parse(text).expect("valid");
    let keys: Vec<_> = m.extra.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "zz_last_alphabetically",
            "x_vendor",
            "aa_first_alphabetically",
            "supported_by",
            "locations"
        ]
    );
    assert_eq!(
        m.extra["zz_last_alphabetically"],
        json!({"nested": [1, 2.5, null, "x"]})
    );
    let hc = m.homecore.as_ref().expect("section");
    let keys: Vec<_> = hc.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, ["x_future", "another"]);
    let future_keys: Vec<_> = hc.extra["x_future"]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(future_keys, ["b", "a"], "nested order kept");

    let written = m.to_json_pretty();
    let again = PluginManifest::parse(&written).expect("round trip");
    assert_eq!(again, m);
    assert_eq!(again.extra, m.extra);
    assert_eq!(again.to_json_pretty(), written, "stable after one round");

    // Known fields come first (domain, name, then alphabetically), extras after, in order.
    let value: Value = serde_json::from_str(&written).expect("json");
    let keys: Vec<_> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "domain",
            "name",
            "codeowners",
            "homecore",
            "version",
            "zz_last_alphabetically",
            "x_vendor",
            "aa_first_alphabetically",
            "supported_by",
            "locations"
        ]
    );
    let section: Vec<_> = value["homecore"]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(section, ["runtime", "api_version", "x_future", "another"]);
}

#[test]
fn serialization_skips_extras_that_shadow_known_fields() {
    let mut m = PluginManifest::from_value(minimal()).expect("valid");
    m.extra.insert("domain".into(), json!("evil"));
    let value: Value = serde_json::from_str(&m.to_json_pretty()).expect("json");
    assert_eq!(value["domain"], "motion_lights");
}

#[test]
fn fixture_round_trips() {
    let m = PluginManifest::parse(MOTION_LIGHTS).expect("valid");
    assert_eq!(PluginManifest::parse(&m.to_json_pretty()), Ok(m));
    let hue = PluginManifest::from_home_assistant_slice(HUE.as_bytes()).expect("valid");
    let again = PluginManifest::from_home_assistant_slice(hue.to_json_pretty().as_bytes());
    assert_eq!(again, Ok(hue));
}

#[test]
fn many_problems_are_reported_at_once_with_exact_paths() {
    let bad = json!({
        "domain": "Motion-Lights",
        "name": "Motion Lights",
        "version": "one.two",
        "iot_class": "local_pull",
        "homecore": {
            "runtime": "wasm",
            "api_version": "^1.0",
            "permissions": {
                "states_read": ["light.*"],
                "states_write": ["light.*", "switch.porch", "light..x"],
                "state_write": ["light.*"]
            },
            "config_schema": "{\"type\": \"object\"}"
        }
    });
    let all = problems(bad);
    let paths: Vec<_> = all.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "domain",
            "version",
            "iot_class",
            "homecore.module",
            "homecore.permissions.states_write[2]",
            "homecore.permissions.state_write",
            "homecore.config_schema",
        ]
    );
    assert!(matches!(
        &all[0].1,
        ProblemKind::InvalidDomain(EntityIdError::InvalidChar { found: 'M', .. })
    ));
    assert!(matches!(&all[1].1, ProblemKind::InvalidVersion { value, .. } if value == "one.two"));
    assert_eq!(
        all[2].1,
        ProblemKind::NotInSet {
            value: "local_pull".into(),
            allowed: IotClass::NAMES
        }
    );
    assert_eq!(
        all[3].1,
        ProblemKind::RequiredForRuntime {
            runtime: RuntimeKind::Wasm
        }
    );
    assert!(matches!(
        &all[4].1,
        ProblemKind::InvalidGlob { value, error: EntityGlobError::Shape { .. } } if value == "light..x"
    ));
    assert!(
        matches!(&all[5].1, ProblemKind::UnknownField { allowed } if allowed.contains(&"states_write"))
    );
    assert_eq!(all[6].1, wrong("object or boolean", "string"));
}

#[test]
fn error_display_lists_every_problem_one_per_line() {
    let bad = with(
        "/homecore/permissions",
        json!({"states_write": ["light.*", "switch.*", "light..x"], "bogus": 1}),
    );
    let mut bad = bad;
    bad["name"] = json!("");
    let err = PluginManifest::from_value(bad).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "manifest of \"motion_lights\" has 3 problems:\n  \
         name: must not be empty\n  \
         homecore.permissions.states_write[2]: \"light..x\" is not a valid glob: expected '*' or \
         '<domain>.<object_id>' with exactly one '.'\n  \
         homecore.permissions.bogus: unknown field, expected one of: states_read, states_write, \
         services, events, storage"
    );
    let err = PluginManifest::from_value(json!({"name": "x", "version": "1.0.0",
        "homecore": {"runtime": "native", "api_version": "^1"}}))
    .expect_err("no domain");
    assert_eq!(
        err.to_string(),
        "manifest has 1 problem:\n  domain: is required"
    );
    assert_eq!(
        err,
        ManifestError::Invalid {
            domain: None,
            problems: vec![ManifestProblem {
                path: "domain".into(),
                kind: ProblemKind::Missing
            }]
        }
    );
}

#[test]
fn problem_messages() {
    let cases = [
        (ProblemKind::Missing, "is required"),
        (wrong("string", "number"), "expected string, found number"),
        (ProblemKind::Empty, "must not be empty"),
        (
            ProblemKind::TooLong { len: 300, max: 253 },
            "is 300 bytes long, the limit is 253",
        ),
        (
            ProblemKind::InvalidDomain(EntityIdError::EmptyPart { what: "domain" }),
            "domain is empty",
        ),
        (
            ProblemKind::InvalidPattern {
                value: String::new(),
                error: NamePatternError::Empty,
            },
            "pattern is empty",
        ),
        (
            ProblemKind::InvalidVersionReq {
                value: "^x".into(),
                message: "unexpected character 'x' while parsing major version number".into(),
            },
            "\"^x\" is not a semantic version requirement: unexpected character 'x' while parsing \
             major version number",
        ),
        (
            ProblemKind::NotInSet {
                value: "python".into(),
                allowed: RuntimeKind::NAMES,
            },
            "\"python\" is not one of: native, wasm",
        ),
        (
            ProblemKind::InvalidUrl {
                value: "ftp://x".into(),
                reason: "it must start with \"https://\" or \"http://\"",
            },
            "\"ftp://x\" is not an http(s) url: it must start with \"https://\" or \"http://\"",
        ),
        (
            ProblemKind::InvalidCodeowner {
                value: "bob".into(),
            },
            "\"bob\" is not a github user or team: it must start with '@' and have no spaces",
        ),
        (
            ProblemKind::SelfDependency {
                domain: "hue".into(),
            },
            "\"hue\" is the plugin's own domain",
        ),
        (
            ProblemKind::Duplicate {
                value: "http".into(),
                first_index: 0,
            },
            "\"http\" is already listed at index 0",
        ),
        (
            ProblemKind::InvalidModulePath {
                value: "../x.wasm".into(),
                reason: ModulePathError::ParentDir,
            },
            "\"../x.wasm\" is not a valid module path: '..' components are not allowed",
        ),
        (
            ProblemKind::RequiredForRuntime {
                runtime: RuntimeKind::Wasm,
            },
            "is required for wasm plugins",
        ),
        (
            ProblemKind::NotAllowedForRuntime {
                runtime: RuntimeKind::Native,
            },
            "must be absent for native plugins",
        ),
        (ProblemKind::NotPositive, "must be greater than 0"),
        (ProblemKind::TooLarge { max: 7 }, "must be at most 7"),
    ];
    for (kind, text) in cases {
        assert_eq!(kind.to_string(), text);
    }
    let version = problem(with("/version", json!("1.x")));
    assert_eq!(
        version.1.to_string(),
        "\"1.x\" is not a semantic version: unexpected character 'x' while parsing minor version \
         number"
    );
    assert_eq!(
        ManifestError::NotAnObject { found: "array" }.to_string(),
        "manifest must be a json object, found array"
    );
    assert_eq!(
        ManifestError::TooLarge { len: 2, max: 1 }.to_string(),
        "manifest is 2 bytes long, the limit is 1"
    );
}

#[test]
fn syntax_errors_report_line_and_column() {
    let err =
        PluginManifest::parse("{\n  \"domain\": \"x\",\n  \"name\": oops\n}").expect_err("bad");
    match &err {
        ManifestError::Syntax {
            line,
            column,
            message,
        } => {
            assert_eq!((*line, *column), (3, 11));
            assert_eq!(message, "expected value");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "manifest is not valid json: expected value at line 3 column 11"
    );
    assert!(err.problems().is_empty());
    assert!(matches!(
        PluginManifest::from_slice(b"{\"domain\": \"x\""),
        Err(ManifestError::Syntax { line: 1, .. })
    ));
    assert!(matches!(
        PluginManifest::from_home_assistant_slice(b"\xff"),
        Err(ManifestError::Syntax { .. })
    ));
}

#[test]
fn non_objects_and_oversized_input_are_rejected() {
    assert_eq!(
        PluginManifest::parse("[1, 2]"),
        Err(ManifestError::NotAnObject { found: "array" })
    );
    assert_eq!(
        PluginManifest::from_value(json!("hue")),
        Err(ManifestError::NotAnObject { found: "string" })
    );
    assert_eq!(
        PluginManifest::from_home_assistant_value(Value::Null),
        Err(ManifestError::NotAnObject { found: "null" })
    );
    let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
    assert_eq!(
        PluginManifest::from_slice(&huge),
        Err(ManifestError::TooLarge {
            len: MAX_MANIFEST_BYTES + 1,
            max: MAX_MANIFEST_BYTES
        })
    );
    assert!(matches!(
        PluginManifest::from_home_assistant_slice(&huge),
        Err(ManifestError::TooLarge { .. })
    ));
}

#[test]
fn required_fields_are_reported_missing() {
    let all = problems(json!({"homecore": {}}));
    let expected = [
        "domain",
        "name",
        "version",
        "homecore.runtime",
        "homecore.api_version",
    ];
    assert_eq!(all.len(), expected.len(), "{all:#?}");
    for ((path, kind), want) in all.iter().zip(expected) {
        assert_eq!((path.as_str(), kind), (want, &ProblemKind::Missing));
    }
}

#[test]
fn native_plugin_must_not_name_a_module() {
    assert_eq!(
        problem(with("/homecore/module", json!("plugin.wasm"))),
        (
            "homecore.module".into(),
            ProblemKind::NotAllowedForRuntime {
                runtime: RuntimeKind::Native
            }
        )
    );
}

#[test]
fn wasm_module_paths_are_checked() {
    let module = |path: &str| {
        let mut m = with("/homecore/runtime", json!("wasm"));
        m["homecore"]["module"] = json!(path);
        m
    };
    let reason = |path: &str| match problem(module(path)) {
        (at, ProblemKind::InvalidModulePath { value, reason }) => {
            assert_eq!((at.as_str(), value.as_str()), ("homecore.module", path));
            reason
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(reason("/opt/plugins/x.wasm"), ModulePathError::Absolute);
    assert_eq!(reason("C:\\plugins\\x.wasm"), ModulePathError::Absolute);
    assert_eq!(reason("../other/x.wasm"), ModulePathError::ParentDir);
    assert_eq!(reason("dist/../../x.wasm"), ModulePathError::ParentDir);
    assert_eq!(reason("x\0.wasm"), ModulePathError::Nul);
    assert_eq!(reason("x.wat"), ModulePathError::NotWasm);
    assert_eq!(reason(""), ModulePathError::Empty);
    let m = PluginManifest::from_value(module("dist/x.wasm")).expect("valid");
    assert_eq!(
        m.homecore.and_then(|h| h.module).as_deref(),
        Some("dist/x.wasm")
    );
    assert_eq!(
        problem(with("/homecore/module", json!(5))),
        ("homecore.module".into(), wrong("string", "number"))
    );
}

#[test]
fn dependencies_are_valid_distinct_and_not_self() {
    assert_eq!(
        problem(with("/dependencies", json!(["http", "motion_lights"]))),
        (
            "dependencies[1]".into(),
            ProblemKind::SelfDependency {
                domain: "motion_lights".into()
            }
        )
    );
    assert_eq!(
        problem(with("/dependencies", json!(["http", "light", "http"]))),
        (
            "dependencies[2]".into(),
            ProblemKind::Duplicate {
                value: "http".into(),
                first_index: 0
            }
        )
    );
    let (path, kind) = problem(with("/after_dependencies", json!(["mqtt", "Bad Domain"])));
    assert_eq!(path, "after_dependencies[1]");
    assert!(matches!(kind, ProblemKind::InvalidDomain(_)));
    assert_eq!(
        problem(with("/after_dependencies", json!(["motion_lights"]))).1,
        ProblemKind::SelfDependency {
            domain: "motion_lights".into()
        }
    );
    assert_eq!(
        problem(with("/dependencies", json!("http"))),
        ("dependencies".into(), wrong("array", "string"))
    );
    let m =
        PluginManifest::from_value(with("/dependencies", json!(["http", "mqtt"]))).expect("valid");
    assert_eq!(m.dependencies, ["http", "mqtt"]);
}

#[test]
fn domains_follow_home_assistant_rules() {
    for (domain, check) in [
        ("", EntityIdError::EmptyPart { what: "domain" }),
        (
            "_hue",
            EntityIdError::BadUnderscore {
                domain: "_hue".into(),
                why: "must not start with '_'",
            },
        ),
    ] {
        assert_eq!(
            problem(with("/domain", json!(domain))),
            ("domain".into(), ProblemKind::InvalidDomain(check))
        );
    }
    let long = "a".repeat(254);
    assert_eq!(
        problem(with("/domain", json!(long))),
        ("domain".into(), ProblemKind::TooLong { len: 254, max: 253 })
    );
    assert_eq!(
        problem(with("/domain", json!(7))),
        ("domain".into(), wrong("string", "number"))
    );
    // The reported domain is capped.
    let err = PluginManifest::from_value(with("/domain", json!("B".repeat(300)))).expect_err("bad");
    match err {
        ManifestError::Invalid {
            domain: Some(d), ..
        } => assert_eq!(d, format!("{}…", "B".repeat(128))),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn name_must_not_be_empty() {
    assert_eq!(
        problem(with("/name", json!("  "))),
        ("name".into(), ProblemKind::Empty)
    );
    assert_eq!(
        problem(with("/name", Value::Null)),
        ("name".into(), wrong("string", "null"))
    );
}

#[test]
fn named_values_must_be_in_their_sets() {
    for (field, allowed) in [
        ("iot_class", IotClass::NAMES),
        ("integration_type", IntegrationType::NAMES),
        ("quality_scale", QualityScale::NAMES),
    ] {
        for name in allowed {
            PluginManifest::from_value(with(&format!("/{field}"), json!(name))).expect(name);
        }
        assert_eq!(
            problem(with(&format!("/{field}"), json!("Gold"))),
            (
                field.to_owned(),
                ProblemKind::NotInSet {
                    value: "Gold".into(),
                    allowed
                }
            )
        );
    }
    assert_eq!(
        problem(with("/homecore/runtime", json!("python"))),
        (
            "homecore.runtime".into(),
            ProblemKind::NotInSet {
                value: "python".into(),
                allowed: &["native", "wasm"]
            }
        )
    );
    assert_eq!(
        QualityScale::from_name("no_score"),
        Some(QualityScale::NoScore)
    );
    assert_eq!(IotClass::CloudPush.to_string(), "cloud_push");
    assert_eq!(IntegrationType::Virtual.as_str(), "virtual");
}

#[test]
fn urls_and_codeowners_are_checked() {
    let (path, kind) = problem(with("/documentation", json!("www.example.com/docs")));
    assert_eq!(path, "documentation");
    assert!(
        matches!(kind, ProblemKind::InvalidUrl { value, .. } if value == "www.example.com/docs")
    );
    let (path, kind) = problem(with("/issue_tracker", json!("https:///issues")));
    assert_eq!(path, "issue_tracker");
    assert!(matches!(
        kind,
        ProblemKind::InvalidUrl {
            reason: "it has no host",
            ..
        }
    ));
    let all = problems(with("/codeowners", json!(["@alice", "bob", "@", "@a b"])));
    let paths: Vec<_> = all.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["codeowners[1]", "codeowners[2]", "codeowners[3]"]);
    assert_eq!(
        all[0].1,
        ProblemKind::InvalidCodeowner {
            value: "bob".into()
        }
    );
}

#[test]
fn wrong_types_are_reported_where_they_are() {
    let mut m = minimal();
    m["config_flow"] = json!("yes");
    m["requirements"] = json!(["a==1", 2]);
    m["loggers"] = json!({"a": 1});
    m["single_config_entry"] = json!(1);
    m["disabled"] = json!(false);
    m["import_executor"] = json!("true");
    m["is_built_in"] = json!(null);
    m["homecore"]["api_version"] = json!(1);
    let all = problems(m);
    assert_eq!(
        all,
        [
            ("requirements[1]".into(), wrong("string", "number")),
            ("config_flow".into(), wrong("boolean", "string")),
            ("loggers".into(), wrong("array", "object")),
            ("single_config_entry".into(), wrong("boolean", "number")),
            ("disabled".into(), wrong("string", "boolean")),
            ("import_executor".into(), wrong("boolean", "string")),
            ("is_built_in".into(), wrong("boolean", "null")),
            ("homecore.api_version".into(), wrong("string", "number")),
        ]
    );
    assert_eq!(
        problem(with("/homecore", json!([]))),
        ("homecore".into(), wrong("object", "array"))
    );
}

#[test]
fn api_version_must_be_a_requirement() {
    let (path, kind) = problem(with("/homecore/api_version", json!("^one")));
    assert_eq!(path, "homecore.api_version");
    assert!(matches!(kind, ProblemKind::InvalidVersionReq { value, .. } if value == "^one"));
}

#[test]
fn discovery_matchers_have_their_shapes_checked() {
    let mut m = minimal();
    m["bluetooth"] = json!([{"manufacturer_id": "76", "manufacturer_data_start": [1, "2"]}, 5]);
    m["zeroconf"] = json!(["_hue._tcp.local.", {"name": "x*"}, 3, {"type": "_a._tcp.local.",
        "properties": {"k": 1}}]);
    m["ssdp"] = json!([{}, {"st": "urn:x"}]);
    m["dhcp"] = json!([{"registered_devices": "yes"}]);
    m["usb"] = json!([{"vid": 4292, "known_devices": "stick"}]);
    m["homekit"] = json!({"models": "BSB002"});
    m["mqtt"] = json!(["zigbee2mqtt/#", 1]);
    assert_eq!(
        problems(m),
        [
            (
                "bluetooth[0].manufacturer_id".into(),
                wrong("integer", "string")
            ),
            (
                "bluetooth[0].manufacturer_data_start[1]".into(),
                wrong("integer", "string")
            ),
            ("bluetooth[1]".into(), wrong("object", "number")),
            ("zeroconf[1].type".into(), ProblemKind::Missing),
            ("zeroconf[2]".into(), wrong("string or object", "number")),
            ("zeroconf[3].properties.k".into(), wrong("string", "number")),
            ("ssdp[0]".into(), ProblemKind::Empty),
            (
                "dhcp[0].registered_devices".into(),
                wrong("boolean", "string")
            ),
            ("usb[0].vid".into(), wrong("string", "number")),
            (
                "usb[0].known_devices".into(),
                wrong("array of strings", "string")
            ),
            ("homekit.models".into(), wrong("array of strings", "string")),
            ("mqtt[1]".into(), wrong("string", "number")),
        ]
    );
    // Keys Home Assistant may add later are allowed in matchers.
    PluginManifest::from_value(with("/dhcp", json!([{"future_key": 1}]))).expect("valid");
}

#[test]
fn permissions_reject_unknown_keys_and_bad_patterns() {
    let all = problems(with(
        "/homecore/permissions",
        json!({
            "states_read": "light.*",
            "services": ["light.turn_on", "Light.on"],
            "events": [""],
            "storage": "yes",
            "bad key\n": true,
        }),
    ));
    assert_eq!(all.len(), 5, "{all:#?}");
    assert_eq!(
        all[0],
        (
            "homecore.permissions.states_read".into(),
            wrong("array", "string")
        )
    );
    assert!(matches!(
        &all[1],
        (path, ProblemKind::InvalidPattern { value, error: NamePatternError::InvalidChar { found: 'L', .. } })
            if path == "homecore.permissions.services[1]" && value == "Light.on"
    ));
    assert_eq!(
        all[2],
        (
            "homecore.permissions.events[0]".into(),
            ProblemKind::InvalidPattern {
                value: String::new(),
                error: NamePatternError::Empty
            }
        )
    );
    assert_eq!(
        all[3],
        (
            "homecore.permissions.storage".into(),
            wrong("boolean", "string")
        )
    );
    assert_eq!(all[4].0, r#"homecore.permissions["bad key\n"]"#);
    assert_eq!(
        problem(with("/homecore/permissions", json!(["light.*"]))),
        ("homecore.permissions".into(), wrong("object", "array"))
    );
}

#[test]
fn limits_are_positive_known_and_in_range() {
    let all = problems(with(
        "/homecore/limits",
        json!({
            "memory_bytes": 0,
            "fuel_per_call": -5,
            "call_timeout_ms": 2.5,
            "mailbox_capacity": 4_294_967_296_u64,
            "storage_bytes": "1MB",
            "memory": 1,
            "table_elements": null,
        }),
    ));
    assert_eq!(
        all,
        [
            (
                "homecore.limits.memory_bytes".into(),
                ProblemKind::NotPositive
            ),
            (
                "homecore.limits.fuel_per_call".into(),
                ProblemKind::NotPositive
            ),
            (
                "homecore.limits.call_timeout_ms".into(),
                wrong("integer", "number")
            ),
            (
                "homecore.limits.mailbox_capacity".into(),
                ProblemKind::TooLarge {
                    max: u32::MAX.into()
                }
            ),
            (
                "homecore.limits.storage_bytes".into(),
                wrong("integer", "string")
            ),
            (
                "homecore.limits.memory".into(),
                ProblemKind::UnknownField {
                    allowed: &[
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
                        "burst_seconds"
                    ]
                }
            ),
        ]
    );
    let m = PluginManifest::from_value(with(
        "/homecore/limits",
        json!({"mailbox_capacity": u32::MAX, "table_elements": null}),
    ))
    .expect("valid");
    let limits = m.homecore.expect("section").limits;
    assert_eq!(limits.mailbox_capacity, Some(u32::MAX));
    assert_eq!(limits.table_elements, None, "null means the host's default");
    assert_eq!(
        problem(with("/homecore/limits", json!(5))),
        ("homecore.limits".into(), wrong("object", "number"))
    );
}

#[test]
fn config_schema_is_an_object_or_a_boolean() {
    for schema in [json!({"type": "object"}), json!(true), json!(false)] {
        let m = PluginManifest::from_value(with("/homecore/config_schema", schema.clone()))
            .expect("valid");
        assert_eq!(m.homecore.and_then(|h| h.config_schema), Some(schema));
    }
    assert_eq!(
        problem(with("/homecore/config_schema", json!(["object"]))),
        (
            "homecore.config_schema".into(),
            wrong("object or boolean", "array")
        )
    );
}

#[test]
fn quoted_values_are_capped() {
    let long = format!("{}é", "x".repeat(127));
    let (_, kind) = problem(with("/iot_class", json!(long)));
    match kind {
        ProblemKind::NotInSet { value, .. } => assert_eq!(value, format!("{}…", "x".repeat(127))),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn deserialize_reports_every_problem() {
    let err =
        serde_json::from_value::<PluginManifest>(json!({"domain": "x"})).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("name: is required"), "{text}");
    assert!(text.contains("homecore: is required"), "{text}");
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<PluginManifest>();
    check::<HomecoreSection>();
    check::<ManifestError>();
    check::<ManifestProblem>();
    check::<ProblemKind>();
    check::<RuntimeKind>();
}

#[test]
fn emission_budgets_and_subscription_caps_parse() {
    let m = PluginManifest::from_value(with(
        "/homecore/limits",
        json!({
            "subscriptions": 50,
            "state_writes_per_second": 5,
            "events_per_second": 2,
            "service_calls_per_second": 1,
            "timers_per_second": 3,
            "burst_seconds": 4,
        }),
    ))
    .expect("valid");
    let limits = m.homecore.expect("section").limits;
    assert_eq!(limits.subscriptions, Some(50));
    assert_eq!(limits.state_writes_per_second, Some(5));
    assert_eq!(limits.events_per_second, Some(2));
    assert_eq!(limits.service_calls_per_second, Some(1));
    assert_eq!(limits.timers_per_second, Some(3));
    assert_eq!(limits.burst_seconds, Some(4));
    assert_eq!(
        problem(with("/homecore/limits", json!({"events_per_second": 0}))),
        (
            "homecore.limits.events_per_second".into(),
            ProblemKind::NotPositive
        )
    );
}

/// The permission grammar cannot grant an event type the core owns: a pattern that only
/// matches such types is refused where it stands; `*` is accepted (and never matches them).
#[test]
fn event_permissions_that_only_name_core_events_are_refused() {
    let all = problems(with(
        "/homecore/permissions",
        json!({"events": ["motion_*", "state_changed", "homeassistant_*", "*", "call_service"]}),
    ));
    assert_eq!(
        all,
        [
            (
                "homecore.permissions.events[1]".into(),
                ProblemKind::CoreEventType {
                    value: "state_changed".into()
                }
            ),
            (
                "homecore.permissions.events[2]".into(),
                ProblemKind::CoreEventType {
                    value: "homeassistant_*".into()
                }
            ),
            (
                "homecore.permissions.events[4]".into(),
                ProblemKind::CoreEventType {
                    value: "call_service".into()
                }
            ),
        ]
    );
}

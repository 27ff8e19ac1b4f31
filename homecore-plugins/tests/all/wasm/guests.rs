//! WAT building blocks: a minimal well-formed ABI v1 guest whose parts tests replace, and the
//! harness of the hostile-plugin suite (a well-behaved neighbour, status-code checks run by the
//! guest, a registry that gives up fast).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homecore::Home;
use homecore_abi::v1::{IMPORT_MODULE, IMPORTS, Status, ValType};
use homecore_plugins::{
    GuestFailure, HostPolicy, Lifecycle, LoadError, PluginError, PluginInfo, PluginManifest,
    PluginRegistry, PluginSource, PluginSpec, RegistryError, WasmtimeConfig, WasmtimeRuntime,
};
use serde_json::{Value, json};

use crate::support::{Script, all_permissions, manifest, set, state_of};

/// Pieces of a guest module; `module()` assembles them.
#[derive(Clone)]
pub(crate) struct Guest {
    /// Extra imports, e.g. `(import "homecore_v1" "log" (func $log (param i32 i32 i32) (result i32)))`.
    pub(crate) imports: String,
    /// Data segments and globals.
    pub(crate) data: String,
    /// Body of hc_setup (params $ptr $len, result i32).
    pub(crate) setup: String,
    /// Body of hc_on_state_changed (params $ptr $len, result i32).
    pub(crate) on_state_changed: String,
    /// Body of hc_call_service (params $ptr $len, result i64).
    pub(crate) call_service: String,
    /// Body of hc_teardown (result i32).
    pub(crate) teardown: String,
    /// Extra functions.
    pub(crate) funcs: String,
    /// Body of hc_alloc (param $size, result i32); `$bump_alloc` is the well-behaved allocator.
    pub(crate) alloc: String,
    /// Body of hc_free (params $ptr $len).
    pub(crate) free: String,
    /// Memory declaration.
    pub(crate) memory: String,
    /// The ABI section, or none.
    pub(crate) abi_section: Option<&'static str>,
    /// Exports to leave out.
    pub(crate) omit: Vec<&'static str>,
}

impl Default for Guest {
    fn default() -> Self {
        Self {
            imports: String::new(),
            data: String::new(),
            setup: "(i32.const 0)".into(),
            on_state_changed: "(i32.const 0)".into(),
            call_service: "(i64.const 0)".into(),
            teardown: "(i32.const 0)".into(),
            funcs: String::new(),
            alloc: "(call $bump_alloc (local.get $size))".into(),
            free: String::new(),
            memory: "(memory (export \"memory\") 2)".into(),
            abi_section: Some("\\01\\00\\00\\00"),
            omit: Vec::new(),
        }
    }
}

impl Guest {
    /// The module's WAT text.
    pub(crate) fn wat(&self) -> String {
        let export = |name: &str| {
            if self.omit.contains(&name) {
                String::new()
            } else {
                format!("(export \"{name}\")")
            }
        };
        let section = self
            .abi_section
            .map(|bytes| format!("(@custom \"homecore_abi\" \"{bytes}\")"))
            .unwrap_or_default();
        format!(
            r#"(module
  {section}
  {imports}
  {memory}
  (global $bump (mut i32) (i32.const 1024))
  {data}
  (func $bump_alloc (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.and (i32.add (local.get $size) (i32.const 7)) (i32.const -8))))
    (if (i32.gt_u (global.get $bump) (i32.const 65536)) (then (global.set $bump (i32.const 1024)) (local.set $ptr (i32.const 1024))))
    (local.get $ptr))
  (func $alloc {alloc_export} (param $size i32) (result i32) {alloc})
  (func {free_export} (param $ptr i32) (param $len i32) {free})
  (func {setup_export} (param $ptr i32) (param $len i32) (result i32) {setup})
  (func {teardown_export} (result i32) {teardown})
  (func {on_state_changed_export} (param $ptr i32) (param $len i32) (result i32) {on_state_changed})
  (func {call_service_export} (param $ptr i32) (param $len i32) (result i64) {call_service})
  {funcs}
)"#,
            imports = self.imports,
            memory = self.memory,
            data = self.data,
            alloc_export = export("hc_alloc"),
            free_export = export("hc_free"),
            setup_export = export("hc_setup"),
            teardown_export = export("hc_teardown"),
            on_state_changed_export = export("hc_on_state_changed"),
            call_service_export = export("hc_call_service"),
            setup = self.setup,
            teardown = self.teardown,
            on_state_changed = self.on_state_changed,
            call_service = self.call_service,
            funcs = self.funcs,
            alloc = self.alloc,
            free = self.free,
        )
    }

    /// The module's bytes.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        wat::parse_str(self.wat())
            .unwrap_or_else(|e| panic!("test WAT is valid: {e}\n{}", self.wat()))
    }
}

/// A wasm manifest for `domain` with these permissions and limits.
pub(crate) fn wasm_manifest(domain: &str, permissions: Value, limits: Value) -> PluginManifest {
    PluginManifest::from_value(json!({
        "domain": domain,
        "name": domain,
        "version": "1.0.0",
        "homecore": {
            "runtime": "wasm",
            "api_version": "^1",
            "module": format!("{domain}.wasm"),
            "permissions": permissions,
            "limits": limits,
        }
    }))
    .expect("valid manifest")
}

pub(crate) fn wasm_spec(
    domain: &str,
    permissions: Value,
    limits: Value,
    bytes: Vec<u8>,
) -> PluginSpec {
    PluginSpec::new(
        wasm_manifest(domain, permissions, limits),
        PluginSource::Wasm(Arc::from(bytes)),
    )
}

/// A home and a registry with both runtimes.
pub(crate) fn home_with_wasm() -> (Home, PluginRegistry, WasmtimeRuntime) {
    let home = Home::new();
    let wasm = WasmtimeRuntime::new(WasmtimeConfig::default()).expect("engine");
    let registry = PluginRegistry::builder(home.clone())
        .runtime(Arc::new(wasm.clone()))
        .build();
    (home, registry, wasm)
}

/// Size of a default guest's memory (`Guest::memory`: two pages).
pub(crate) const MEM: i32 = 2 * 65536;

/// An output buffer in the second page, clear of the strings and of `$bump_alloc`'s range.
pub(crate) const OUT: Span = Span::at(96 * 1024, &[0; 4096]);

/// Bytes at a fixed guest address; `Guest::hostile` writes every constant below into its module.
/// Shown as `(i32.const ptr) (i32.const len)`, ready to pass to an import.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    pub(crate) ptr: i32,
    pub(crate) bytes: &'static [u8],
}

impl Span {
    const fn at(ptr: i32, bytes: &'static [u8]) -> Self {
        Self { ptr, bytes }
    }

    pub(crate) const fn len(&self) -> i32 {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "test strings are a few bytes (const fn: no try_from)"
        )]
        let len = self.bytes.len() as i32;
        len
    }

    /// The same address with a capacity of zero.
    pub(crate) fn empty(&self) -> String {
        format!("(i32.const {}) (i32.const 0)", self.ptr)
    }

    fn segment(&self) -> String {
        data_segment(self.ptr, self.bytes)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(i32.const {}) (i32.const {})", self.ptr, self.len())
    }
}

/// A data segment writing `bytes` at `ptr`.
pub(crate) fn data_segment(ptr: i32, bytes: &[u8]) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    format!("(data (i32.const {ptr}) \"{escaped}\")")
}

/// A JSON object of exactly `len` bytes: `{"x":"yyy…"}`.
pub(crate) fn json_object_of(len: usize) -> Vec<u8> {
    let mut json = br#"{"x":""#.to_vec();
    json.resize(len - 2, b'y');
    json.extend_from_slice(br#""}"#);
    json
}

/// `(i32.const ptr) (i32.const len)` for a raw pair.
pub(crate) fn raw(ptr: i32, len: i32) -> String {
    format!("(i32.const {ptr}) (i32.const {len})")
}

/// The entity every hostile guest listens to (and the neighbour too).
pub(crate) const TRIGGER: Span = Span::at(16, b"sensor.trigger");
/// An entity hostile guests may read and write.
pub(crate) const MINE: Span = Span::at(48, b"hostile.entity");
/// An entity hostile guests are never granted.
pub(crate) const SECRET: Span = Span::at(80, b"sensor.secret");
pub(crate) const ON: Span = Span::at(112, b"on");
pub(crate) const OBJECT: Span = Span::at(128, br#"{"a":1}"#);
pub(crate) const KEY: Span = Span::at(144, b"key");
pub(crate) const EVENT: Span = Span::at(160, b"hostile_event");
pub(crate) const SERVICE: Span = Span::at(192, b"svc");
pub(crate) const BAD_UTF8: Span = Span::at(208, b"\xff\xfe\xfd");
pub(crate) const BAD_JSON: Span = Span::at(224, br#"{"a":"#);
pub(crate) const ARRAY: Span = Span::at(240, b"[1]");
pub(crate) const NULL: Span = Span::at(256, b"null");
pub(crate) const NUMBER: Span = Span::at(272, b"42");
pub(crate) const STRING: Span = Span::at(288, br#""text""#);
/// A well-formed request for a service nobody provides.
pub(crate) const REQUEST: Span = Span::at(320, br#"{"domain":"nope","service":"nope"}"#);
pub(crate) const REQUEST_ARRAY: Span =
    Span::at(384, br#"{"domain":"nope","service":"nope","data":[1]}"#);
pub(crate) const REQUEST_SHAPE: Span = Span::at(448, br#"{"service":"nope"}"#);
pub(crate) const BAD_ID: Span = Span::at(480, b"no dot here");
/// A request for the neighbour's service (it writes `sensor.called`, not granted to most).
pub(crate) const NEIGHBOUR_REQUEST: Span = Span::at(
    512,
    br#"{"domain":"neighbour","service":"ping","data":{"entity_id":"sensor.called"}}"#,
);
pub(crate) const ANY: Span = Span::at(608, b"*");
pub(crate) const SENSORS: Span = Span::at(624, b"sensor.*");
pub(crate) const DOORBELL: Span = Span::at(656, b"doorbell");
/// A second entity hostile guests may write, to signal the test.
pub(crate) const FLAG: Span = Span::at(672, b"hostile.flag");
/// A request of a service that never answers (`slow.hang`, registered by the test using it).
pub(crate) const HANG: Span = Span::at(704, br#"{"domain":"slow","service":"hang"}"#);

const STRINGS: &[Span] = &[
    TRIGGER,
    MINE,
    SECRET,
    ON,
    OBJECT,
    KEY,
    EVENT,
    SERVICE,
    BAD_UTF8,
    BAD_JSON,
    ARRAY,
    NULL,
    NUMBER,
    STRING,
    REQUEST,
    REQUEST_ARRAY,
    REQUEST_SHAPE,
    BAD_ID,
    NEIGHBOUR_REQUEST,
    ANY,
    SENSORS,
    DOORBELL,
    FLAG,
    HANG,
];

/// The async import; [`all_imports`] leaves it out and the tests that need it add this.
pub(crate) const SERVICE_CALL_IMPORT: &str = r#"(import "homecore_v1" "service_call" (func $service_call (param i32 i32 i32 i32) (result i32)))"#;

/// Every ABI v1 import but `service_call`, each named after itself (`$log`, `$state_set`, …).
pub(crate) fn all_imports() -> String {
    let wat = |t: &ValType| match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
    };
    IMPORTS
        .iter()
        .filter(|f| f.name != "service_call")
        .map(|f| {
            let params: Vec<&str> = f.params.iter().map(wat).collect();
            let results: Vec<&str> = f.results.iter().map(wat).collect();
            format!(
                "(import \"{IMPORT_MODULE}\" \"{name}\" (func ${name} (param {}) (result {})))\n",
                params.join(" "),
                results.join(" "),
                name = f.name,
            )
        })
        .collect()
}

impl Guest {
    /// A guest with [`all_imports`], the strings above in memory, and a setup that subscribes to
    /// `sensor.trigger` (failing setup with the status if it cannot).
    pub(crate) fn hostile() -> Self {
        let mut data: String = STRINGS.iter().map(Span::segment).collect();
        data.push_str("(global $armed (mut i32) (i32.const 0))");
        Self {
            imports: all_imports(),
            data,
            setup: format!("(call $subscribe {TRIGGER})"),
            ..Self::default()
        }
    }

    /// Arms the guest at the end of a successful setup (`$armed` = 1): a fresh instance made
    /// after a failure starts disarmed, so setup itself is never affected.
    pub(crate) fn arm_after_setup(mut self) -> Self {
        self.setup = format!(
            "(local $status i32) (local.set $status {}) (global.set $armed (i32.const 1)) (local.get $status)",
            self.setup
        );
        self
    }
}

/// What a checked import call must answer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Want {
    /// Exactly this status.
    Is(Status),
    /// Exactly this value.
    Value(i32),
    /// At least this value (a length, "changed or not").
    AtLeast(i32),
}

impl From<Status> for Want {
    fn from(status: Status) -> Self {
        Self::Is(status)
    }
}

struct Check {
    label: String,
    call: String,
    want: Want,
}

/// Import calls a guest makes and the answer each must get. The guest runs them in order in a
/// function `$checks (result i32)` and returns, at the first wrong answer, a code naming the
/// check and the answer; the host reports it as "guest returned unknown status N", which
/// [`Checks::explain`] turns back into words. So a passing list is a call that did not fail.
#[derive(Default)]
pub(crate) struct Checks {
    checks: Vec<Check>,
}

const CHECK_SCALE: i64 = 1_000_000;
const CHECK_OFFSET: i64 = 500_000;

impl Checks {
    /// Adds a check: the WAT expression `call` (an i32) must answer `want`.
    pub(crate) fn expect(
        &mut self,
        label: impl Into<String>,
        call: impl Into<String>,
        want: impl Into<Want>,
    ) {
        self.checks.push(Check {
            label: label.into(),
            call: call.into(),
            want: want.into(),
        });
        assert!(
            self.checks.len() < 2_000,
            "the failure code must fit an i32"
        );
    }

    /// The WAT function `$checks`.
    pub(crate) fn func(&self) -> String {
        let mut body = String::from("(func $checks (result i32) (local $got i32)\n");
        for (i, check) in self.checks.iter().enumerate() {
            let code = (i as i64 + 1) * CHECK_SCALE + CHECK_OFFSET;
            let failed = match check.want {
                Want::Is(status) => {
                    format!("(i32.ne (local.get $got) (i32.const {}))", status.code())
                }
                Want::Value(v) => format!("(i32.ne (local.get $got) (i32.const {v}))"),
                Want::AtLeast(v) => format!("(i32.lt_s (local.get $got) (i32.const {v}))"),
            };
            body.push_str(&format!(
                "  (local.set $got {call})\n  (if {failed} (then (return (i32.add (local.get $got) (i32.const {code})))))\n",
                call = check.call
            ));
        }
        body.push_str("  (i32.const 0))\n");
        body
    }

    /// Which check a failure's text names, and what it got; the text itself if none.
    pub(crate) fn explain(&self, error: &str) -> String {
        let code = error
            .split("unknown status ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse::<i64>().ok());
        let Some(code) = code else {
            return error.to_owned();
        };
        let index = usize::try_from(code / CHECK_SCALE - 1).unwrap_or(usize::MAX);
        let got = code % CHECK_SCALE - CHECK_OFFSET;
        let got_status = i32::try_from(got).ok().and_then(Status::from_code);
        match self.checks.get(index) {
            Some(c) => format!(
                "check #{index} `{}` ({}) answered {got} {got_status:?}, expected {:?}",
                c.label, c.call, c.want
            ),
            None => error.to_owned(),
        }
    }
}

/// Scratch byte for the value a checking guest writes to `hostile.flag`.
const FLAG_VALUE: i32 = 704;

/// A guest whose setup subscribes to `sensor.trigger` and then runs `checks`, and which runs
/// them again on every event; after the n-th event passed them it writes `hostile.flag` = the
/// n-th letter (see [`checks_passed`]).
pub(crate) fn checking_guest(checks: &Checks) -> Guest {
    let mut guest = Guest::hostile();
    guest
        .data
        .push_str("(global $runs (mut i32) (i32.const 0))");
    guest.setup = format!(
        "(if (i32.ne (call $subscribe {TRIGGER}) (i32.const 0)) (then (return (i32.const -1)))) (call $checks)"
    );
    guest.on_state_changed = format!(
        "(local $r i32)
        (local.set $r (call $checks))
        (if (local.get $r) (then (return (local.get $r))))
        (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
        (i32.store8 (i32.const {FLAG_VALUE}) (i32.add (i32.const 96) (global.get $runs)))
        (if (i32.lt_s (call $state_set {FLAG} (i32.const {FLAG_VALUE}) (i32.const 1) (i32.const 0) (i32.const 0)) (i32.const 0))
          (then (return (i32.const -1))))
        (i32.const 0)"
    );
    guest.funcs = checks.func();
    guest
}

/// Waits until the checking guest `domain` has passed its checks on `events` events (or
/// failed), and asserts it did not fail.
pub(crate) async fn checks_passed(
    registry: &PluginRegistry,
    domain: &str,
    events: u8,
    checks: &Checks,
) -> PluginInfo {
    let flag = char::from(b'a' + events - 1).to_string();
    eventually(
        &format!("{domain} to pass its checks {events} times"),
        || {
            state_of(registry.home(), "hostile.flag").as_deref() == Some(flag.as_str())
                || registry.get(domain).is_some_and(|i| i.stats.errors > 0)
        },
    )
    .await;
    let info = registry.get(domain).expect("listed");
    let last_error = info.health.last_error.as_deref().unwrap_or_default();
    assert_eq!(
        info.stats.errors,
        0,
        "{domain}: {}",
        checks.explain(last_error)
    );
    assert_eq!(info.lifecycle, Lifecycle::Running);
    info
}

/// Loads a checking guest; on a failed setup, panics naming the check that failed.
pub(crate) async fn load_checked(
    registry: &PluginRegistry,
    spec: PluginSpec,
    checks: &Checks,
) -> PluginInfo {
    match registry.load(spec).await {
        Ok(info) => info,
        Err(err) => panic!("setup failed: {}", checks.explain(&err.to_string())),
    }
}

/// The last setup error of a plugin that did not start.
pub(crate) fn setup_error(err: &RegistryError) -> &PluginError {
    match err {
        RegistryError::SetupFailed { last_error, .. } => last_error,
        other => panic!("expected a failed setup, got {other:?}"),
    }
}

/// A check of a classified guest failure (a test case's expectation).
pub(crate) type FailureCheck = dyn Fn(&GuestFailure) -> bool;

/// The guest failure behind a failed setup.
pub(crate) fn setup_failure(err: &RegistryError) -> &GuestFailure {
    setup_error(err)
        .guest_failure()
        .unwrap_or_else(|| panic!("expected a guest failure, got {err:?}"))
}

/// The guest failure behind a refused instantiation.
pub(crate) fn instantiate_failure(err: Option<&RegistryError>) -> &GuestFailure {
    match err {
        Some(RegistryError::Load {
            source: LoadError::Instantiate { failure },
            ..
        }) => failure,
        other => panic!("expected an instantiation error, got {other:?}"),
    }
}

/// A policy that gives up fast: one setup attempt, quarantine after three failures in a row.
pub(crate) fn fast_policy() -> HostPolicy {
    HostPolicy {
        setup_attempts: 1,
        backoff_initial: Duration::from_millis(10),
        quarantine_after: 3,
        ..HostPolicy::default()
    }
}

/// A home and a registry with a Wasmtime runtime, under this policy.
pub(crate) fn registry_with(config: WasmtimeConfig, policy: HostPolicy) -> (Home, PluginRegistry) {
    let home = Home::new();
    let wasm = WasmtimeRuntime::new(config).expect("engine");
    let registry = PluginRegistry::builder(home.clone())
        .runtime(Arc::new(wasm))
        .policy(policy)
        .build();
    (home, registry)
}

/// [`registry_with`] the default runtime settings and [`fast_policy`].
pub(crate) fn hostile_registry() -> (Home, PluginRegistry) {
    registry_with(WasmtimeConfig::default(), fast_policy())
}

/// Waits (real time) until `cond` holds. The 10 s bound is a safety net against a hang, not a
/// timing assertion.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < give_up, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until `domain` has failed `errors` calls, and returns its snapshot.
pub(crate) async fn failed_calls(
    registry: &PluginRegistry,
    domain: &str,
    errors: u64,
) -> PluginInfo {
    eventually(&format!("{domain} to fail {errors} calls"), || {
        registry
            .get(domain)
            .is_some_and(|i| i.stats.errors >= errors)
    })
    .await;
    registry.get(domain).expect("listed")
}

/// Waits until `domain` is quarantined, and returns its snapshot.
pub(crate) async fn quarantined(registry: &PluginRegistry, domain: &str) -> PluginInfo {
    eventually(&format!("{domain} to be quarantined"), || {
        registry
            .get(domain)
            .is_some_and(|i| i.lifecycle == Lifecycle::Quarantined)
    })
    .await;
    registry.get(domain).expect("listed")
}

/// Asserts `info`'s last error contains `needle`.
pub(crate) fn assert_last_error(info: &PluginInfo, needle: &str) {
    let last = info.health.last_error.as_deref().unwrap_or_default();
    assert!(
        last.contains(needle),
        "{}: last error {last:?} does not mention {needle:?}",
        info.domain
    );
}

/// A well-behaved native plugin loaded beside hostile ones. It listens to `sensor.*` and
/// `witness.*` and offers `neighbour.ping`; every write the test makes through it is expected
/// to reach it, in order, whatever the hostile plugins do.
pub(crate) struct Neighbour {
    script: Script,
    expected: Vec<String>,
    seq: u64,
}

impl Neighbour {
    pub(crate) async fn load(registry: &PluginRegistry) -> Self {
        let script = Script {
            subscribe: vec!["sensor.*", "witness.*"],
            service: Some("ping"),
            ..Script::default()
        };
        let info = registry
            .load(script.spec(manifest("neighbour", all_permissions(), &[])))
            .await
            .expect("the neighbour starts");
        assert_eq!(info.lifecycle, Lifecycle::Running);
        Self {
            script,
            expected: Vec::new(),
            seq: 0,
        }
    }

    /// Writes a fresh value to `entity` (under `sensor.` or `witness.`) from outside any plugin;
    /// the neighbour, and every hostile guest listening there, gets the change.
    pub(crate) fn write(&mut self, home: &Home, entity: &str) {
        self.seq += 1;
        let state = self.seq.to_string();
        set(home, entity, &state);
        self.expected.push(format!("{entity}={state}"));
    }

    /// Fires the trigger `n` times.
    pub(crate) fn trigger(&mut self, home: &Home, n: usize) {
        for _ in 0..n {
            self.write(home, "sensor.trigger");
        }
    }

    /// The state changes the neighbour received.
    pub(crate) fn received(&self) -> Vec<String> {
        let mut entries = self.script.entries();
        entries.retain(|e| e != "setup" && e != "teardown");
        entries
    }

    /// The host is alive and the neighbour unharmed: the home still takes writes, and the
    /// neighbour got every write made through it, in order, with no failure of its own.
    pub(crate) async fn assert_unharmed(&mut self, registry: &PluginRegistry) {
        for _ in 0..3 {
            self.write(registry.home(), "witness.probe");
        }
        let want = self.expected.clone();
        eventually("the neighbour to receive every event", || {
            self.received().len() >= want.len()
        })
        .await;
        assert_eq!(
            self.received(),
            want,
            "the neighbour got every event, in order"
        );
        let info = registry.get("neighbour").expect("listed");
        assert_eq!(info.lifecycle, Lifecycle::Running);
        assert_eq!(info.stats.errors, 0);
    }
}

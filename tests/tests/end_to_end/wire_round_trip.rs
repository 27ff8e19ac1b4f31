//! The ABI v1 event wire JSON, three ways (issue 14 §3): the host's hand-written writer
//! (`homecore-plugins`' event cache, reached through a real WASM guest that stores the bytes it
//! was given), serde on the frozen wire types (`homecore_abi::v1::wire`), and the guest SDK's
//! fast reader (reached through `FakeHost::deliver_state_changed`). For arbitrary states and
//! attributes all three agree, and the host's bytes are exactly serde's serialization.
//!
//! Cases: `PROPTEST_CASES` (default 128; each case is a real write through the registry).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homecore::{Attributes, Context, EntityId, Home};
use homecore_abi::v1::wire;
use homecore_plugin_sdk::testing::FakeHost;
use homecore_plugin_sdk::{Config, Plugin, StateChangedEvent};
use homecore_plugins::{
    MemoryStorage, PluginManifest, PluginRegistry, PluginSource, PluginSpec, PluginStorage,
    WasmtimeConfig, WasmtimeRuntime,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Map, Value, json};

/// A guest that subscribes to `wire.*` and keeps the bytes of the last `hc_on_state_changed`
/// under the storage key `last`: the host's writer, observed from outside.
const ECHO_GUEST: &str = r#"(module
  (@custom "homecore_abi" "\01\00\00\00")
  (import "homecore_v1" "subscribe" (func $subscribe (param i32 i32) (result i32)))
  (import "homecore_v1" "kv_set" (func $kv_set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 8)
  (data (i32.const 16) "wire.*")
  (data (i32.const 32) "last")
  ;; One payload at a time: every buffer is the same, above the strings.
  (func (export "hc_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "hc_free") (param i32 i32))
  (func (export "hc_setup") (param i32 i32) (result i32)
    (call $subscribe (i32.const 16) (i32.const 6)))
  (func (export "hc_teardown") (result i32) (i32.const 0))
  (func (export "hc_on_state_changed") (param $ptr i32) (param $len i32) (result i32)
    (call $kv_set (i32.const 32) (i32.const 4) (local.get $ptr) (local.get $len)))
  (func (export "hc_call_service") (param i32 i32) (result i64) (i64.const 0))
)"#;

/// A state's fields as read: entity id, state, attributes text, last changed, last updated.
type SeenState = (String, String, String, String, String);

/// What the SDK's reader made of a payload, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    entity_id: String,
    states: [Option<SeenState>; 2],
    context: (String, Option<String>, Option<String>, Option<String>),
}

impl Seen {
    fn of(event: &StateChangedEvent<'_>) -> Self {
        let state = |s: &Option<wire::State<'_>>| {
            s.as_ref().map(|s| {
                (
                    s.entity_id.to_string(),
                    s.state.to_string(),
                    s.attributes.get().to_owned(),
                    s.last_changed.to_string(),
                    s.last_updated.to_string(),
                )
            })
        };
        let c = &event.context;
        Self {
            entity_id: event.entity_id.to_string(),
            states: [state(&event.old_state), state(&event.new_state)],
            context: (
                c.id.to_string(),
                c.parent_id.as_deref().map(str::to_owned),
                c.user_id.as_deref().map(str::to_owned),
                c.origin.as_deref().map(str::to_owned),
            ),
        }
    }
}

thread_local! {
    static SEEN: RefCell<Option<Seen>> = const { RefCell::new(None) };
}

/// A guest plugin (run on the SDK's fake host) that keeps what the reader gave it.
#[derive(Default)]
struct Recorder;

impl Plugin for Recorder {
    fn setup(&mut self, _config: &Config<'_>) -> homecore_plugin_sdk::Result<()> {
        Ok(())
    }

    fn on_state_changed(
        &mut self,
        event: &StateChangedEvent<'_>,
    ) -> homecore_plugin_sdk::Result<()> {
        SEEN.with(|seen| *seen.borrow_mut() = Some(Seen::of(event)));
        Ok(())
    }
}

/// The host's bytes for the next change of `id` to an old state, waited for (real time; the
/// bound is a safety net against a hang, not a timing assertion).
async fn host_bytes(storage: &MemoryStorage, id: &str, state: &str) -> Vec<u8> {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(bytes) = storage.get("wire", "last")
            && let Ok(event) = serde_json::from_slice::<wire::StateChangedEvent<'_>>(&bytes)
            && event.entity_id == id
            && event.old_state.is_some()
            && event.new_state.as_ref().is_some_and(|s| s.state == state)
        {
            return bytes;
        }
        assert!(
            Instant::now() < give_up,
            "the guest never got {id}'s change"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(any::<String>(), json_value(), 0..5)
        .prop_map(|m| m.into_iter().collect())
}

/// A state string the state machine accepts: any characters, at most 40.
fn state_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..40).prop_map(|c| c.into_iter().collect())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

#[test]
fn host_writer_sdk_reader_and_serde_agree_on_state_changed_events() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let home = Home::new();
    let storage = Arc::new(MemoryStorage::new());
    let registry = rt.block_on(async {
        let wasm = WasmtimeRuntime::new(WasmtimeConfig::default()).expect("engine");
        let registry = PluginRegistry::builder(home.clone())
            .runtime(Arc::new(wasm))
            .storage(storage.clone())
            .build();
        let manifest = PluginManifest::from_value(json!({
            "domain": "wire",
            "name": "wire",
            "version": "1.0.0",
            "homecore": {
                "runtime": "wasm",
                "api_version": "^1",
                "module": "wire.wasm",
                "permissions": {"states_read": ["wire.*"], "storage": true},
            }
        }))
        .expect("valid manifest");
        let bytes = wat::parse_str(ECHO_GUEST).expect("valid WAT");
        registry
            .load(PluginSpec::new(
                manifest,
                PluginSource::Wasm(Arc::from(bytes)),
            ))
            .await
            .expect("the echo guest loads");
        registry
    });
    let fake = FakeHost::new();
    fake.setup::<Recorder>(&Value::Null).expect("setup");

    let mut runner = TestRunner::new(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let n = std::cell::Cell::new(0u32);
    let strategy = (
        state_text(),
        attributes(),
        state_text(),
        attributes(),
        proptest::option::of("[a-z0-9]{1,8}"),
        proptest::option::of("[a-z_]{1,8}"),
    );
    runner
        .run(
            &strategy,
            |(state1, attrs1, state2, attrs2, user, origin)| {
                n.set(n.get() + 1);
                let id: EntityId = format!("wire.case_{}", n.get()).parse().expect("valid id");
                // A different second state, so that the second write is a change.
                let state2 = format!("{state2}!");
                let state2 = if state2 == state1 {
                    format!("{state2}?")
                } else {
                    state2
                };
                let mut context = match &user {
                    Some(user) => Context::for_user(user.as_str()),
                    None => Context::new(),
                };
                if let Some(origin) = &origin {
                    context = context.child(Some(Arc::from(origin.as_str())));
                }
                let bytes = rt.block_on(async {
                    home.states
                        .set(
                            &id,
                            &state1,
                            Attributes::try_from(Value::Object(attrs1.clone())).expect("an object"),
                            &Context::new(),
                        )
                        .expect("valid write");
                    home.states
                        .set(
                            &id,
                            &state2,
                            Attributes::try_from(Value::Object(attrs2.clone())).expect("an object"),
                            &context,
                        )
                        .expect("valid write");
                    host_bytes(&storage, id.as_str(), &state2).await
                });

                // serde on the frozen wire types reads the host's bytes, and writes them back
                // byte for byte.
                let event: wire::StateChangedEvent<'_> =
                    serde_json::from_slice(&bytes).expect("the host writes the wire shape");
                prop_assert_eq!(
                    serde_json::to_vec(&event).expect("serializes"),
                    bytes.clone(),
                    "host bytes differ from serde's"
                );
                let new = event.new_state.as_ref().expect("a new state");
                let old = event.old_state.as_ref().expect("an old state");
                prop_assert_eq!(new.state.as_ref(), state2.as_str());
                prop_assert_eq!(old.state.as_ref(), state1.as_str());
                // Attributes as text: the host writes what serde_json writes for the same map (compared
                // as text, not parsed back: serde_json without `float_roundtrip` reads some floats a
                // unit in the last place off, e.g. -3.373224142507373e-274).
                let text = |attrs: Map<String, Value>| {
                    serde_json::to_string(&Value::Object(attrs)).expect("serializes")
                };
                prop_assert_eq!(new.attributes.get(), text(attrs2));
                prop_assert_eq!(old.attributes.get(), text(attrs1));
                prop_assert!(new.attributes.checked().is_ok() && old.attributes.checked().is_ok());
                // A child context (made by a plugin) carries no user.
                let expected_user = if origin.is_some() {
                    None
                } else {
                    user.as_deref()
                };
                prop_assert_eq!(event.context.user_id.as_deref(), expected_user);
                prop_assert_eq!(event.context.origin.as_deref(), origin.as_deref());
                prop_assert_eq!(event.context.parent_id.is_some(), origin.is_some());

                // The SDK's reader sees exactly what serde sees.
                SEEN.with(|seen| seen.borrow_mut().take());
                fake.deliver_state_changed(&bytes).map_err(|f| {
                    TestCaseError::fail(format!("the SDK refused the host's bytes: {f:?}"))
                })?;
                let seen = SEEN
                    .with(|seen| seen.borrow_mut().take())
                    .expect("delivered");
                prop_assert_eq!(seen, Seen::of(&event));
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n.get() >= cases(), "every case ran");
    rt.block_on(registry.unload("wire")).ok();
}

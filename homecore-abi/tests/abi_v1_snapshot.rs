//! Freezes ABI v1: any change to a name, signature, status code or constant fails this test.
//! A deliberate change is a new ABI version (`v2`), never an edit of v1.

use std::fmt::Write;

use homecore_abi::v1;

fn render() -> String {
    let mut out = String::new();
    writeln!(out, "version {}", v1::ABI_VERSION).expect("writing to a String cannot fail");
    writeln!(out, "import module {}", v1::IMPORT_MODULE).expect("writing to a String cannot fail");
    writeln!(out, "section {}", v1::ABI_SECTION).expect("writing to a String cannot fail");
    writeln!(out, "memory {}", v1::EXPORT_MEMORY).expect("writing to a String cannot fail");
    writeln!(out, "max payload {}", v1::MAX_PAYLOAD).expect("writing to a String cannot fail");
    writeln!(out, "max event {}", v1::MAX_EVENT).expect("writing to a String cannot fail");
    writeln!(out, "max log line {}", v1::MAX_LOG_LINE).expect("writing to a String cannot fail");
    writeln!(out, "max timers {}", v1::MAX_TIMERS).expect("writing to a String cannot fail");
    for (kind, table) in [("import", v1::IMPORTS), ("export", v1::EXPORTS)] {
        for f in table {
            let params: Vec<String> = f.params.iter().map(ToString::to_string).collect();
            let results: Vec<String> = f.results.iter().map(ToString::to_string).collect();
            let required = if f.required { "" } else { " optional" };
            writeln!(
                out,
                "{kind} {}({}) -> ({}){required}",
                f.name,
                params.join(", "),
                results.join(", ")
            )
            .expect("writing to a String cannot fail");
        }
    }
    for s in v1::Status::ALL {
        writeln!(out, "status {:?} = {}", s, s.code()).expect("writing to a String cannot fail");
    }
    out
}

const FROZEN: &str = "\
version 1
import module homecore_v1
section homecore_abi
memory memory
max payload 65536
max event 262144
max log line 1024
max timers 1024
import log(i32, i32, i32) -> (i32)
import error(i32, i32) -> (i32)
import state_get(i32, i32, i32, i32) -> (i32)
import state_set(i32, i32, i32, i32, i32, i32) -> (i32)
import state_remove(i32, i32) -> (i32)
import subscribe(i32, i32) -> (i32)
import subscribe_event(i32, i32) -> (i32)
import service_call(i32, i32, i32, i32) -> (i32)
import service_register(i32, i32) -> (i32)
import event_fire(i32, i32, i32, i32) -> (i32)
import kv_get(i32, i32, i32, i32) -> (i32)
import kv_set(i32, i32, i32, i32) -> (i32)
import kv_delete(i32, i32) -> (i32)
import take_result(i32, i32) -> (i32)
import time_monotonic_ns() -> (i64)
import timer_start(i64, i64) -> (i32)
import timer_cancel(i64) -> (i32)
export hc_alloc(i32) -> (i32)
export hc_free(i32, i32) -> ()
export hc_setup(i32, i32) -> (i32)
export hc_teardown() -> (i32)
export hc_on_state_changed(i32, i32) -> (i32)
export hc_call_service(i32, i32) -> (i64)
export hc_on_event(i32, i32) -> (i32) optional
export hc_on_timer(i64) -> (i32) optional
status Ok = 0
status NotFound = -1
status Denied = -2
status BadPointer = -3
status BadUtf8 = -4
status BadJson = -5
status NotAnObject = -6
status TooLarge = -7
status InvalidEntityId = -8
status InvalidState = -9
status InvalidName = -10
status LoopGuard = -11
status QuotaExceeded = -12
status UnknownService = -13
status ServiceFailed = -14
status GuestError = -15
status Internal = -16
status InvalidArgument = -17
";

#[test]
fn abi_v1_is_frozen() {
    assert_eq!(
        render(),
        FROZEN,
        "ABI v1 changed: add a new version instead of editing v1"
    );
}

#[test]
fn status_codes_round_trip_and_are_distinct() {
    for s in v1::Status::ALL {
        assert_eq!(v1::Status::from_code(s.code()), Some(*s));
    }
    assert_eq!(v1::Status::from_code(-999), None);
}

#[test]
fn version_section_parsing() {
    assert_eq!(v1::declared_version(&v1::ABI_SECTION_CONTENT), Ok(1));
    assert_eq!(v1::declared_version(&[1, 0, 0, 0, 1, 0, 0, 0]), Ok(1));
    assert!(v1::declared_version(&[]).is_err());
    assert!(v1::declared_version(&[1, 0, 0]).is_err());
    assert_eq!(
        v1::declared_version(&[1, 0, 0, 0, 2, 0, 0, 0]),
        Err(v1::SectionError::Mixed { first: 1, other: 2 })
    );
}

#[test]
fn pointer_packing() {
    let packed = v1::pack_ptr_len(0x1234, 77);
    assert_eq!(v1::unpack_ptr_len(packed), Ok(Some((0x1234, 77))));
    assert_eq!(v1::unpack_ptr_len(0), Ok(None));
    assert_eq!(v1::unpack_ptr_len(-2), Err(-2));
    assert_eq!(
        v1::unpack_ptr_len(v1::pack_ptr_len(u32::MAX >> 1, u32::MAX)),
        Ok(Some((u32::MAX >> 1, u32::MAX)))
    );
}

#[test]
fn wire_state_changed_parses_without_touching_attributes() {
    let json = r#"{"entity_id":"light.hall","old_state":null,"new_state":{"entity_id":"light.hall","state":"on","attributes":{"brightness":255,"nested":{"a":[1,2,3]}},"last_changed":"2024-01-01T00:00:00.000000+00:00","last_updated":"2024-01-01T00:00:00.000000+00:00","context":{"id":"01HQ","parent_id":null,"user_id":null}},"context":{"id":"01HQ","parent_id":null,"user_id":null}}"#;
    let event: homecore_abi::v1::wire::StateChangedEvent<'_> =
        serde_json::from_str(json).expect("parses");
    let new = event.new_state.expect("present");
    assert_eq!(new.state, "on");
    assert_eq!(
        new.attributes.get(),
        r#"{"brightness":255,"nested":{"a":[1,2,3]}}"#
    );
    assert!(event.old_state.is_none());
}

//! Property-based fuzzing of the contract's readers (issue 14 §8; docs/fuzzing.md): the module
//! ABI section reader, the entity id check and the glob matcher. Each never panics, answers
//! with a typed error, accepts what is valid, and agrees with an independent reference.
//!
//! Cases per property: `PROPTEST_CASES` (default 256). A long run:
//! `PROPTEST_CASES=100000 cargo test -p homecore-abi --test fuzz`.

use homecore_abi::v1::{self, ABI_SECTION};
use homecore_abi::{AbiSectionError, check_entity_id, glob_match, module_abi_version};
use homecore_fuzz_kit::{Edits, apply, config};
use proptest::prelude::*;

/// A real module: types, imports, a function, memory, exports, code, data, the ABI section
/// (twice, as a linker may leave it) and another custom section.
fn sample_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (@custom "homecore_abi" "\01\00\00\00")
          (@custom "producers" "x")
          (import "homecore_v1" "log" (func $log (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 8) "hello")
          (func (export "hc_setup") (param i32 i32) (result i32)
            (call $log (i32.const 1) (i32.const 8) (i32.const 5)))
          (@custom "homecore_abi" (after code) "\01\00\00\00")
        )"#,
    )
    .expect("valid WAT")
}

/// The runtime's reader today (`homecore-plugins` `module_check::abi_version`, on wasmparser),
/// as the reference: the declared version, or `Err` for anything it refuses.
fn wasmparser_version(bytes: &[u8]) -> Result<Option<u32>, String> {
    let mut declared: Option<u32> = None;
    let mut parser = wasmparser::Parser::new(0);
    let mut rest = bytes;
    loop {
        let (consumed, payload) = match parser.parse(rest, true) {
            Ok(wasmparser::Chunk::Parsed { consumed, payload }) => (consumed, payload),
            Ok(wasmparser::Chunk::NeedMoreData(_)) => return Err("truncated".into()),
            Err(e) => return Err(e.to_string()),
        };
        rest = rest.get(consumed..).ok_or("truncated")?;
        match payload {
            wasmparser::Payload::End(_) => break,
            wasmparser::Payload::Version {
                encoding: wasmparser::Encoding::Component,
                ..
            } => return Err("a component".into()),
            wasmparser::Payload::CodeSectionStart { size, .. } => {
                parser.skip_section();
                rest = usize::try_from(size)
                    .ok()
                    .and_then(|size| rest.get(size..))
                    .ok_or("code section runs past the end")?;
            }
            wasmparser::Payload::CustomSection(section) if section.name() == ABI_SECTION => {
                let version = v1::declared_version(section.data()).map_err(|e| e.to_string())?;
                if declared.is_some_and(|d| d != version) {
                    return Err("mixed".into());
                }
                declared = Some(version);
            }
            _ => {}
        }
    }
    Ok(declared)
}

/// Whatever the reader answers is a typed result (never a panic), and it agrees with the
/// runtime's wasmparser reader wherever that one accepts the module.
fn check_against_reference(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ours = module_abi_version(bytes);
    if let Err(err) = &ours {
        // Every error renders (a typed error, with a message).
        prop_assert!(!err.to_string().is_empty());
    }
    if let Ok(version) = wasmparser_version(bytes) {
        prop_assert_eq!(ours, Ok(version), "wasmparser accepts {:?}", bytes);
    }
    Ok(())
}

/// Mutations of a valid sample (homecore_fuzz_kit), inserting any byte, up to four edits.
fn edits() -> impl Strategy<Value = Vec<homecore_fuzz_kit::Edit>> {
    Edits {
        most: 4,
        ..Edits::default()
    }
    .strategy()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_abi_section_reader_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_against_reference(&bytes)?;
    }

    #[test]
    fn fuzz_abi_section_reader_arbitrary_sections(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let bytes = [b"\0asm\x01\0\0\0".as_slice(), &body].concat();
        check_against_reference(&bytes)?;
    }

    #[test]
    fn fuzz_abi_section_reader_mutated_module(edits in edits()) {
        let sample = sample_module();
        prop_assert_eq!(module_abi_version(&sample), Ok(Some(1)));
        check_against_reference(&apply(&sample, &edits))?;
    }

    #[test]
    fn fuzz_entity_id_check(id in "[a-z0-9_.A-Z é-]{0,12}") {
        // The check agrees with Home Assistant's rule written as a regular expression would be.
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
                && !p.starts_with('_')
                && !p.ends_with('_')
                && !p.contains("__")
        };
        let expected = matches!(id.split_once('.'), Some((d, o)) if part_ok(d) && part_ok(o));
        match check_entity_id(&id) {
            Ok((domain, object_id)) => {
                prop_assert!(expected, "{id:?} accepted");
                prop_assert_eq!(format!("{domain}.{object_id}"), id);
            }
            Err(err) => {
                prop_assert!(!expected, "{id:?} refused: {err}");
            }
        }
    }

    #[test]
    fn fuzz_glob_match_agrees_with_the_recursive_reference(
        pattern in "[ab*?]{0,8}",
        text in "[ab]{0,10}",
    ) {
        fn reference(p: &[u8], t: &[u8]) -> bool {
            match (p.first(), t.first()) {
                (None, _) => t.is_empty(),
                (Some(b'*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
                (Some(&c), Some(&d)) => (c == b'?' || c == d) && reference(&p[1..], &t[1..]),
                (Some(_), None) => false,
            }
        }
        prop_assert_eq!(glob_match(&pattern, &text), reference(pattern.as_bytes(), text.as_bytes()));
    }
}

/// The sample the mutations start from is valid to both readers, and cut short to neither.
#[test]
fn the_sample_module_declares_v1_to_both_readers() {
    let sample = sample_module();
    assert_eq!(wasmparser_version(&sample), Ok(Some(1)));
    assert_eq!(module_abi_version(&sample), Ok(Some(1)));
    assert!(matches!(
        module_abi_version(&sample[..sample.len() - 1]),
        Err(AbiSectionError::SectionPastEnd { .. })
    ));
}

//! `homecore_abi::module_abi_version` on any bytes: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(err) = homecore_abi::module_abi_version(data) {
        assert!(!err.to_string().is_empty());
    }
});

//! Integration tests of homecore-package through its public API: signing, trust, rollback,
//! compatibility, discovery and the commands.

mod bundle;
mod commands;
mod compat;
mod discovery;
mod fuzz;
mod rollback;
mod signing;
mod support;

/// The types the server shares across tasks are `Send + Sync`.
#[test]
fn public_types_are_send_and_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<homecore_package::VerifiedPackage>();
    assert::<homecore_package::DiscoveryReport>();
    assert::<homecore_package::DiscoveryError>();
    assert::<homecore_package::CommandError>();
    assert::<homecore_package::TrustPolicy>();
    assert::<homecore_package::FileAcceptedVersions>();
    assert::<homecore_package::MemoryAcceptedVersions>();
    assert::<Box<dyn homecore_package::AcceptedVersions>>();
}

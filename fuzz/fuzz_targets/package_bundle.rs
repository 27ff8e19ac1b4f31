//! A `.hcpkg` bundle of any bytes, read as discovery reads it (`PackageFiles::open`, from a
//! file: the reader's only public entry): never a panic.
#![no_main]

use std::path::PathBuf;

use homecore_package::{PackageFiles, PackageLimits, abi_version};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DIR: tempdir::Dir = tempdir::Dir::new();
}

mod tempdir {
    /// A private directory for the bundle file, removed at exit.
    pub(crate) struct Dir(pub(crate) std::path::PathBuf);

    impl Dir {
        pub(crate) fn new() -> Self {
            let path = std::env::temp_dir().join(format!("homecore-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&path).expect("a temporary directory");
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let path: PathBuf = DIR.with(|d| d.0.join("fuzz.hcpkg"));
    std::fs::write(&path, data).expect("writes");
    match PackageFiles::open(&path, &PackageLimits::default()) {
        Ok(files) => {
            let _ = abi_version(files.domain(), &files.module);
        }
        Err(err) => assert!(!err.to_string().is_empty()),
    }
});

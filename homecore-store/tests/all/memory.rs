//! Memory given back (issue 13 §8): a plugin's 64 MiB of stored data used to stay in the
//! server's memory after the plugin was unloaded. A child process (this test binary re-run on
//! the ignored test `memory::release_child`, alone, so no other test's memory is counted) loads
//! and releases the data in cycles and reports its resident memory; the parent checks that it
//! returns near its baseline.

use std::process::Command;

use homecore_plugins::{PluginStorage, release_free_memory};
use homecore_store::{SqlitePluginStorage, Store};

/// Where the child's database lives.
const DB_ENV: &str = "HOMECORE_STORE_MEMORY_DB";
/// Values of 1 MiB the plugin stores.
const VALUES: usize = 64;
/// Load-and-release cycles.
const CYCLES: usize = 5;

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// The child: prints `baseline <bytes> peak <bytes> after <bytes>`.
#[test]
#[ignore = "the child process of an_unloaded_plugins_stored_data_gives_its_memory_back"]
fn release_child() {
    let Ok(path) = std::env::var(DB_ENV) else {
        eprintln!(
            "{DB_ENV} is not set: this is the child of an_unloaded_plugins_stored_data_gives_its_memory_back"
        );
        return;
    };
    let store = Store::open(&path).expect("opens");
    let storage = SqlitePluginStorage::open(&store).expect("opens");
    for i in 0..VALUES {
        let value = vec![u8::try_from(i).expect("small"); 1 << 20];
        storage
            .set("hog", &format!("v{i}"), &value, u64::MAX)
            .expect("stored");
    }
    storage.release("hog");
    release_free_memory();
    let baseline = rss();
    let mut peak = 0;
    for _ in 0..CYCLES {
        // The plugin comes back and reads everything …
        let total: usize = (0..VALUES)
            .map(|i| storage.get("hog", &format!("v{i}")).map_or(0, |v| v.len()))
            .sum();
        assert_eq!(total, VALUES << 20);
        peak = peak.max(rss());
        // … and is unloaded again (what `PluginRegistry::unload` does).
        storage.release("hog");
        release_free_memory();
    }
    println!("baseline {baseline} peak {peak} after {}", rss());
}

#[test]
fn an_unloaded_plugins_stored_data_gives_its_memory_back() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "memory::release_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, dir.path().join("home.db"))
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The report may share its line with the test harness's own output.
    let line = stdout
        .lines()
        .find_map(|l| l.find("baseline ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [baseline, peak, after] = numbers[..] else {
        panic!("bad report {line}");
    };
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    // The data was really in memory at the peak …
    assert!(
        peak >= baseline + (48 << 20),
        "peak {:.1} MiB over a baseline of {:.1} MiB",
        mib(peak),
        mib(baseline)
    );
    // … and is given back: within 16 MiB of the baseline after five cycles.
    assert!(
        after <= baseline + (16 << 20),
        "{:.1} MiB resident after release, baseline {:.1} MiB",
        mib(after),
        mib(baseline)
    );
}

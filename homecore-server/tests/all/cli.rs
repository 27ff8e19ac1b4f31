//! The `homecore` binary: `manifest check`, `package …`, and `run` as a real process.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_homecore");

fn homecore(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn integrations_manifest(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../homecore-integrations/manifests")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn manifest_check_passes_good_manifests() {
    let out = homecore(&[
        "manifest",
        "check",
        &integrations_manifest("motion_lights.json"),
        &integrations_manifest("input_boolean.json"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok (motion_lights)"), "{}", text(&out));
}

#[test]
fn manifest_check_lists_every_problem_and_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("manifest.json");
    std::fs::write(
        &bad,
        r#"{"domain": "Bad", "name": "", "version": "one", "homecore": {"runtime": "lua"}}"#,
    )
    .expect("write");
    let out = homecore(&["manifest", "check", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    for path in [
        "domain:",
        "name:",
        "version:",
        "homecore.runtime:",
        "homecore.api_version:",
    ] {
        assert!(t.contains(path), "{path} missing:\n{t}");
    }
}

#[test]
fn manifest_check_ha_mode_accepts_plain_home_assistant_manifests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hue = tmp.path().join("manifest.json");
    std::fs::write(
        &hue,
        r#"{
  "domain": "hue",
  "name": "Philips Hue",
  "codeowners": ["@balloob"],
  "config_flow": true,
  "documentation": "https://www.home-assistant.io/integrations/hue",
  "iot_class": "local_push",
  "requirements": ["aiohue==4.7.1"]
}"#,
    )
    .expect("write");
    let path = hue.to_str().expect("utf-8");
    let out = homecore(&["manifest", "check", "--ha", path]);
    assert!(out.status.success(), "{}", text(&out));
    let strict = homecore(&["manifest", "check", path]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    let missing = homecore(&["manifest", "check"]);
    assert!(!missing.status.success());
}

#[test]
fn run_refuses_a_bad_config_listing_every_problem() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("homecore.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"nowhere\"\ndata_dir = \"{}\"\n[api]\ntokens = [\"short\"]\n[plugins.motion_lights]\nconfig = {{ quiet_seconds = \"soon\" }}\n",
            tmp.path().join("data").display()
        ),
    )
    .expect("write");
    let out = homecore(&["run", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    for want in ["listen", "api.tokens[0]"] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }
}

#[cfg(unix)]
#[test]
fn run_serves_and_stops_gracefully_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .env_remove("HOMECORE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawned");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    let mut token = None;
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        seen.push(line.clone());
        if let Some(rest) = line.split("is running on ").nth(1) {
            url = Some(rest.trim().to_owned());
        }
        if line.contains("curl -H") {
            token = line
                .split("Bearer ")
                .nth(1)
                .and_then(|t| t.split('"').next())
                .map(str::to_owned);
            break;
        }
    }
    let (url, token) = match (url, token) {
        (Some(u), Some(t)) => (u, t),
        _ => {
            let _ = child.kill();
            panic!("no banner: {seen:#?}");
        }
    };
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /api/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.contains("API running."), "{answer}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("exits");
    assert!(exit.success(), "graceful exit: {exit:?}");
    assert!(tmp.path().join("access_token").exists());
}

#[cfg(feature = "wasm")]
#[test]
fn package_keygen_sign_inspect_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = tmp.path().join("keys");
    let package = tmp.path().join("motion_lights_wasm");
    std::fs::create_dir_all(&package).expect("mkdir");
    std::fs::write(
        package.join("manifest.json"),
        homecore_server::EXAMPLE_MANIFEST,
    )
    .expect("w");
    std::fs::write(
        package.join(homecore_server::EXAMPLE_MODULE_FILE),
        homecore_server::EXAMPLE_MODULE,
    )
    .expect("w");
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();

    let out = homecore(&["package", "keygen", "--out", &s(&keys), "--name", "alice"]);
    assert!(out.status.success(), "{}", text(&out));
    let public = std::fs::read_to_string(keys.join("alice.pub")).expect("pub");

    let out = homecore(&[
        "package",
        "sign",
        &s(&package),
        "--key",
        &s(&keys.join("alice.key")),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let out = homecore(&["package", "inspect", &s(&package)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("matches the files"), "{}", text(&out));

    // Not trusted by the default policy: refused with the reason, exit 1.
    let config = tmp.path().join("homecore.toml");
    std::fs::write(
        &config,
        format!(
            "examples = false\ndata_dir = \"{}\"\n",
            s(&tmp.path().join("data"))
        ),
    )
    .expect("w");
    let out = homecore(&["package", "verify", &s(&package), "--config", &s(&config)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Trusted in [trust]: accepted.
    std::fs::write(
        &config,
        format!(
            "examples = false\ndata_dir = \"{}\"\n[[trust.publishers]]\nname = \"alice\"\nkey = \"{}\"\n",
            s(&tmp.path().join("data")),
            public.trim()
        ),
    )
    .expect("w");
    let out = homecore(&["package", "verify", &s(&package), "--config", &s(&config)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("motion_lights_wasm"), "{}", text(&out));

    let out = homecore(&["package", "sign", &s(&package), "--key", "/nonexistent.key"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// A copy of the example package in `parent/<dir>/` with `domain` as its manifest's domain,
/// signed by `key`; returns its path.
#[cfg(feature = "wasm")]
fn signed_example(parent: &Path, dir: &str, domain: &str, key: &Path) -> std::path::PathBuf {
    let package = parent.join(dir);
    std::fs::create_dir_all(&package).expect("mkdir");
    let manifest = homecore_server::EXAMPLE_MANIFEST.replacen(
        "\"domain\": \"motion_lights_wasm\"",
        &format!("\"domain\": \"{domain}\""),
        1,
    );
    std::fs::write(package.join("manifest.json"), manifest).expect("w");
    std::fs::write(
        package.join(homecore_server::EXAMPLE_MODULE_FILE),
        homecore_server::EXAMPLE_MODULE,
    )
    .expect("w");
    let out = homecore(&[
        "package",
        "sign",
        package.to_str().expect("utf-8"),
        "--key",
        key.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    package
}

/// Two publisher keys, alice and bob, in `dir/keys`.
#[cfg(feature = "wasm")]
fn two_keys(dir: &Path) -> std::path::PathBuf {
    let keys = dir.join("keys");
    for name in ["alice", "bob"] {
        let out = homecore(&[
            "package",
            "keygen",
            "--out",
            keys.to_str().expect("utf-8"),
            "--name",
            name,
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }
    keys
}

#[cfg(feature = "wasm")]
#[test]
fn package_verify_with_key_trusts_exactly_that_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = two_keys(tmp.path());
    let package = signed_example(
        tmp.path(),
        "motion_lights_wasm",
        "motion_lights_wasm",
        &keys.join("alice.key"),
    );
    let data = tmp.path().join("data");
    let verify = |key: &str| {
        homecore(&[
            "package",
            "verify",
            package.to_str().expect("utf-8"),
            "--key",
            keys.join(key).to_str().expect("utf-8"),
            "--data-dir",
            data.to_str().expect("utf-8"),
        ])
    };
    let out = verify("alice.pub");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("OK: motion_lights_wasm"),
        "{}",
        text(&out)
    );
    let out = verify("bob.pub");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refused"), "{}", text(&out));
}

#[cfg(feature = "wasm")]
#[test]
fn package_verify_refuses_a_directory_named_after_another_domain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = two_keys(tmp.path());
    let package = signed_example(
        tmp.path(),
        "hall_lights",
        "motion_lights_wasm",
        &keys.join("alice.key"),
    );
    let out = homecore(&[
        "package",
        "verify",
        package.to_str().expect("utf-8"),
        "--key",
        keys.join("alice.pub").to_str().expect("utf-8"),
        "--data-dir",
        tmp.path().join("data").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("must be named after its domain"),
        "{}",
        text(&out)
    );
}

#[cfg(feature = "wasm")]
#[test]
fn package_verify_refuses_a_native_plugins_domain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = two_keys(tmp.path());
    let package = signed_example(
        tmp.path(),
        "motion_lights",
        "motion_lights",
        &keys.join("alice.key"),
    );
    let out = homecore(&[
        "package",
        "verify",
        package.to_str().expect("utf-8"),
        "--key",
        keys.join("alice.pub").to_str().expect("utf-8"),
        "--data-dir",
        tmp.path().join("data").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("native plugin"), "{}", text(&out));
}

#[cfg(feature = "wasm")]
#[test]
fn package_verify_refuses_a_version_older_than_the_accepted_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = two_keys(tmp.path());
    let package = signed_example(
        tmp.path(),
        "motion_lights_wasm",
        "motion_lights_wasm",
        &keys.join("alice.key"),
    );
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let store =
        homecore_store::Store::open(data.join(homecore_server::DATABASE_FILE)).expect("database");
    store
        .record_accepted("motion_lights_wasm", &"99.0.0".parse().expect("version"))
        .expect("recorded");
    drop(store);
    let out = homecore(&[
        "package",
        "verify",
        package.to_str().expect("utf-8"),
        "--key",
        keys.join("alice.pub").to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("99.0.0"), "{}", text(&out));
}

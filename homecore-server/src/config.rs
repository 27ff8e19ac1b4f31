//! The server's configuration file (`homecore.toml`): parsing and the checks that need no
//! plugin manifests. Every problem is collected with its path before the server refuses to
//! start; see [`Config::parse`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use homecore_plugins::{HostPolicy, Permissions, ResourceLimits};
use serde::Deserialize;
use serde_json::Value;

/// The listen address when the config names none (Home Assistant's port, loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8123";

/// The largest request body the REST API reads when the config sets no limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The shortest access token accepted in the config, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// Events a WebSocket client may have queued before it is disconnected, by default.
pub const DEFAULT_WEBSOCKET_QUEUE: usize = 4096;

/// How long a client has to send a request's headers, by default, in milliseconds (an idle
/// keep-alive connection is closed after as long).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// How long one HTTP request may take once its headers are in (reading its body included), by
/// default, in milliseconds; a WebSocket upgrade is answered at once and not bounded by it.
/// Above the slowest legitimate request: a plugin reload may compile (60 s budget) and run
/// setup (30 s).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 120_000;

/// Connections (HTTP and WebSocket, authenticated or not) open at once, by default; further
/// connections are accepted and closed at once (docs/adr/0009-server.md).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// WebSocket connections that have not authenticated yet, at once, by default; further
/// upgrades get 503.
pub const DEFAULT_MAX_UNAUTHENTICATED_WEBSOCKETS: usize = 64;

/// How long a WebSocket client has to send `auth`, by default, in milliseconds (Home
/// Assistant: 10 s).
pub const DEFAULT_WEBSOCKET_AUTH_TIMEOUT_MS: u64 = 10_000;

/// The largest config file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// How long the plugins directory must be quiet before a changed package is reloaded, by
/// default, in milliseconds.
pub const DEFAULT_HOT_RELOAD_DEBOUNCE_MS: u64 = 300;

/// The longest debounce delay accepted, in milliseconds (a minute).
pub const MAX_HOT_RELOAD_DEBOUNCE_MS: u64 = 60_000;

/// The server's configuration. Every field has a default, so an empty file (or none) is a
/// working configuration.
///
/// ```
/// use homecore_server::Config;
///
/// let config = Config::parse(r#"
///     listen = "127.0.0.1:9000"
///     [api]
///     tokens = ["a-long-enough-access-token"]
///     [plugins.motion_lights]
///     config = { rooms = ["hall"], quiet_seconds = 30 }
/// "#)?;
/// assert_eq!(config.listen.port(), 9000);
/// assert_eq!(config.plugins["motion_lights"].config, Some(serde_json::json!({"rooms": ["hall"], "quiet_seconds": 30})));
/// # Ok::<(), homecore_server::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the HTTP server listens (`listen`, default [`DEFAULT_LISTEN`]).
    pub listen: SocketAddr,
    /// The data directory (`data_dir`): access token, publisher key, accepted versions,
    /// default plugins directory. `None`: [`default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// The directory searched for signed WASM packages (`plugins_dir`). `None`:
    /// `<data_dir>/plugins`.
    pub plugins_dir: Option<PathBuf>,
    /// Whether the example plugins are installed and loaded (`examples`, default `true`).
    pub examples: bool,
    /// The HTTP and WebSocket APIs (`[api]`).
    pub api: ApiConfig,
    /// Host-wide limits and deadlines (`[limits]`).
    pub limits: LimitsConfig,
    /// Watching the plugins directory for changed packages (`[hot_reload]`).
    pub hot_reload: HotReloadConfig,
    /// The trust policy for signed packages (`[trust]`), as written; parsed by the package
    /// layer at start.
    pub trust: Option<toml::Table>,
    /// Per-plugin entries (`[plugins.<domain>]`).
    pub plugins: BTreeMap<String, PluginConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("the default listen address is valid"),
            data_dir: None,
            plugins_dir: None,
            examples: true,
            api: ApiConfig::default(),
            limits: LimitsConfig::default(),
            hot_reload: HotReloadConfig::default(),
            trust: None,
            plugins: BTreeMap::new(),
        }
    }
}

/// The `[api]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Access tokens accepted as `Authorization: Bearer <token>` and in the WebSocket `auth`
    /// message. Empty: the token in the data directory (created on first start).
    pub tokens: Vec<String>,
    /// The largest request body read, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Events queued per WebSocket client before it is disconnected as too slow.
    pub websocket_queue: usize,
    /// How long a client has to send a request's headers, in milliseconds; also how long an
    /// idle keep-alive connection stays open.
    pub header_read_timeout_ms: u64,
    /// How long a request may take once its headers are in, its body included, in
    /// milliseconds; past it the answer is 408 and the connection closes.
    pub request_timeout_ms: u64,
    /// Connections open at once (WebSocket ones included); over it, new connections are
    /// closed as soon as they are accepted.
    pub max_connections: usize,
    /// WebSocket connections not yet authenticated, at once; over it, upgrades get 503.
    pub max_unauthenticated_websockets: usize,
    /// How long a WebSocket client has to send `auth`, in milliseconds.
    pub websocket_auth_timeout_ms: u64,
}

impl ApiConfig {
    /// The header read timeout.
    #[must_use]
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The request timeout.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The WebSocket auth timeout.
    #[must_use]
    pub fn websocket_auth_timeout(&self) -> Duration {
        Duration::from_millis(self.websocket_auth_timeout_ms)
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            websocket_queue: DEFAULT_WEBSOCKET_QUEUE,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_unauthenticated_websockets: DEFAULT_MAX_UNAUTHENTICATED_WEBSOCKETS,
            websocket_auth_timeout_ms: DEFAULT_WEBSOCKET_AUTH_TIMEOUT_MS,
        }
    }
}

/// The `[limits]` table: caps on what any plugin may ask for, and deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Upper bounds for every plugin's resource limits (the manifest's ask is capped by
    /// these, then by the plugin's own `[plugins.<domain>] limits`).
    pub plugins: ResourceLimits,
    /// Deadline for a plugin's setup, in milliseconds.
    pub setup_timeout_ms: u64,
    /// Deadline for a service call into a plugin, in milliseconds.
    pub call_timeout_ms: u64,
    /// Deadline for one plugin's teardown, in milliseconds.
    pub teardown_timeout_ms: u64,
    /// Deadline for the whole shutdown (connections drained, every teardown), in
    /// milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Setup attempts before a plugin is marked failed.
    pub setup_attempts: u32,
    /// How long a plugin may keep making more than its budget allows (state writes, events,
    /// service calls, timers) before it is quarantined, in milliseconds.
    pub quarantine_over_budget_ms: u64,
    /// The largest WASM module accepted, in bytes (checked before compiling).
    pub max_module_bytes: u64,
    /// The largest function body in a WASM module, in bytes (checked before compiling).
    pub max_function_body_bytes: u64,
    /// How long compiling one WASM module may take before the package is refused, in
    /// milliseconds.
    pub compile_budget_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let policy = HostPolicy::default();
        Self {
            plugins: policy.limits,
            setup_timeout_ms: millis(policy.setup_timeout),
            call_timeout_ms: millis(policy.call_timeout),
            teardown_timeout_ms: millis(policy.teardown_timeout),
            shutdown_timeout_ms: 10_000,
            setup_attempts: policy.setup_attempts,
            quarantine_over_budget_ms: millis(policy.quarantine_over_budget),
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            max_function_body_bytes: DEFAULT_MAX_FUNCTION_BODY_BYTES,
            compile_budget_ms: DEFAULT_COMPILE_BUDGET_MS,
        }
    }
}

/// The default of `[limits] max_module_bytes` (Wasmtime runtime's default).
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 64 << 20;
/// The default of `[limits] max_function_body_bytes`.
pub const DEFAULT_MAX_FUNCTION_BODY_BYTES: u64 = 4 << 20;
/// The default of `[limits] compile_budget_ms`.
pub const DEFAULT_COMPILE_BUDGET_MS: u64 = 60_000;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LimitsConfig {
    /// The registry's policy with these limits and deadlines.
    #[must_use]
    pub fn host_policy(&self) -> HostPolicy {
        HostPolicy {
            limits: self.plugins,
            setup_attempts: self.setup_attempts,
            setup_timeout: Duration::from_millis(self.setup_timeout_ms),
            call_timeout: Duration::from_millis(self.call_timeout_ms),
            teardown_timeout: Duration::from_millis(self.teardown_timeout_ms),
            quarantine_over_budget: Duration::from_millis(self.quarantine_over_budget_ms),
            ..HostPolicy::default()
        }
    }

    /// The shutdown deadline.
    #[must_use]
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

/// The `[hot_reload]` table: whether the plugins directory is watched, and how long it must be
/// quiet before a changed package is verified and swapped in (docs/adr/0013-hot-reload.md).
///
/// ```
/// use homecore_server::Config;
///
/// let config = Config::parse("[hot_reload]\nenabled = true\ndebounce_ms = 1000\n")?;
/// assert_eq!(config.hot_reload.debounce().as_millis(), 1000);
/// assert!(Config::parse("[hot_reload]\ndebounce_ms = 0\n").is_err());
/// # Ok::<(), homecore_server::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotReloadConfig {
    /// Whether a package written to, changed in or removed from the plugins directory is
    /// loaded, swapped in or unloaded while the server runs (default `true`; the `wasm`
    /// feature only). `POST /api/homecore/plugins/{domain}/reload` works either way.
    pub enabled: bool,
    /// How long a package's files must be unchanged before it is verified, in milliseconds
    /// (default [`DEFAULT_HOT_RELOAD_DEBOUNCE_MS`], at most [`MAX_HOT_RELOAD_DEBOUNCE_MS`]).
    pub debounce_ms: u64,
}

impl Default for HotReloadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            debounce_ms: DEFAULT_HOT_RELOAD_DEBOUNCE_MS,
        }
    }
}

impl HotReloadConfig {
    /// The debounce delay.
    #[must_use]
    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms)
    }
}

/// One `[plugins.<domain>]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Whether the plugin is loaded (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The configuration passed to the plugin's setup, checked against its manifest's
    /// `config_schema`. `None`: the plugin's default.
    pub config: Option<Value>,
    /// What the operator grants (intersected with what the manifest declares). `None`:
    /// everything the manifest declares.
    pub grant: Option<Permissions>,
    /// Tighter limits for this plugin (each the smaller of this and the manifest's ask).
    pub limits: Option<ResourceLimits>,
}

fn yes() -> bool {
    true
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("config file {} is {len} bytes long, the limit is {max}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The configuration breaks one or more rules; all of them are listed.
    #[error("{}", ProblemList(problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`] configuration; empty otherwise.
    #[must_use]
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            Self::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

struct ProblemList<'a>(&'a [ConfigProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "configuration has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// One problem in a configuration, at a path such as `plugins.motion_lights.config/rooms/0`
/// (TOML keys, then a JSON pointer into a plugin's config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ConfigProblem {
    /// Where.
    pub path: String,
    /// What.
    pub kind: ConfigProblemKind,
}

impl ConfigProblem {
    pub(crate) fn new(path: impl Into<String>, kind: ConfigProblemKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }
}

/// What is wrong at a [`ConfigProblem`]'s path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblemKind {
    /// The text is not TOML.
    #[error("not valid toml at line {line} column {column}: {message}")]
    Syntax {
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
        /// The parser's explanation.
        message: String,
    },
    /// A top-level key the server does not know.
    #[error("unknown key, expected one of: {}", allowed.join(", "))]
    UnknownKey {
        /// The keys allowed.
        allowed: &'static [&'static str],
    },
    /// A value of the wrong shape (type, unknown field, bad glob in a grant, ...).
    #[error("{message}")]
    Shape {
        /// The deserializer's explanation.
        message: String,
    },
    /// `listen` is not `IP:PORT`.
    #[error("{value:?} is not an address such as 127.0.0.1:8123")]
    InvalidAddress {
        /// The text.
        value: String,
    },
    /// An access token shorter than [`MIN_TOKEN_LEN`].
    #[error("access token is {len} bytes long, the minimum is {min}")]
    TokenTooShort {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// An access token with characters outside visible ASCII.
    #[error("access token must be visible ascii without spaces")]
    TokenCharacters,
    /// A size, count or deadline of zero.
    #[error("must be greater than 0")]
    NotPositive,
    /// A number above its maximum.
    #[error("{value} is above the maximum of {max}")]
    TooLarge {
        /// The value.
        value: u64,
        /// The largest accepted.
        max: u64,
    },
    /// A `[plugins.<domain>]` entry for a plugin that is neither compiled in nor found in
    /// the plugins directory.
    #[error("no plugin {domain:?} is compiled in or installed (known: {})", known.join(", "))]
    UnknownPlugin {
        /// The domain.
        domain: String,
        /// The domains known.
        known: Vec<String>,
    },
    /// A plugin's config does not match its manifest's `config_schema`.
    #[error("{message}")]
    Schema {
        /// The validator's explanation.
        message: String,
    },
    /// The manifest's `config_schema` itself is not a valid JSON Schema.
    #[error("the plugin's config_schema is not a valid json schema: {message}")]
    InvalidSchema {
        /// The validator's explanation.
        message: String,
    },
    /// The trust policy was refused by the package layer.
    #[error("{message}")]
    Trust {
        /// The package layer's explanation.
        message: String,
    },
}

const TOP_LEVEL: &[&str] = &[
    "listen",
    "data_dir",
    "plugins_dir",
    "examples",
    "api",
    "limits",
    "hot_reload",
    "trust",
    "plugins",
];

impl Config {
    /// Reads and parses a config file.
    ///
    /// # Errors
    /// [`ConfigError::Read`], [`ConfigError::TooLarge`], or [`ConfigError::Invalid`] listing
    /// every problem.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        use std::io::Read;
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        let len = text.len() as u64;
        if len > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                len,
                max: MAX_CONFIG_BYTES,
            });
        }
        Self::parse(&text)
    }

    /// Parses a configuration. Every section is checked even after a problem is found, so
    /// the error lists all of them.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every problem.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = match toml::from_str(text) {
            Ok(table) => table,
            Err(err) => {
                let (line, column) = err
                    .span()
                    .map_or((1, 1), |span| line_column(text, span.start));
                return Err(ConfigError::Invalid {
                    problems: vec![ConfigProblem::new(
                        "",
                        ConfigProblemKind::Syntax {
                            line,
                            column,
                            message: err.message().trim().to_owned(),
                        },
                    )],
                });
            }
        };
        let mut config = Config::default();
        let mut problems = Vec::new();
        for (key, value) in table {
            match key.as_str() {
                "listen" => {
                    if let Some(text) = section::<String>(&key, value, &mut problems) {
                        match text.parse() {
                            Ok(addr) => config.listen = addr,
                            Err(_) => problems.push(ConfigProblem::new(
                                key,
                                ConfigProblemKind::InvalidAddress { value: text },
                            )),
                        }
                    }
                }
                "data_dir" => config.data_dir = section(&key, value, &mut problems),
                "plugins_dir" => config.plugins_dir = section(&key, value, &mut problems),
                "examples" => {
                    if let Some(on) = section(&key, value, &mut problems) {
                        config.examples = on;
                    }
                }
                "api" => {
                    if let Some(api) = section::<ApiConfig>(&key, value, &mut problems) {
                        check_api(&api, &mut problems);
                        config.api = api;
                    }
                }
                "limits" => {
                    if let Some(limits) = section::<LimitsConfig>(&key, value, &mut problems) {
                        check_limits(&limits, &mut problems);
                        config.limits = limits;
                    }
                }
                "hot_reload" => {
                    if let Some(hot) = section::<HotReloadConfig>(&key, value, &mut problems) {
                        check_hot_reload(&hot, &mut problems);
                        config.hot_reload = hot;
                    }
                }
                "trust" => config.trust = section(&key, value, &mut problems),
                "plugins" => {
                    if let Some(plugins) = section::<toml::Table>(&key, value, &mut problems) {
                        for (domain, entry) in plugins {
                            let path = format!("plugins.{domain}");
                            if let Some(entry) =
                                section::<PluginConfig>(&path, entry, &mut problems)
                            {
                                if let Some(limits) = &entry.limits {
                                    check_resource_limits(
                                        &format!("{path}.limits"),
                                        limits,
                                        &mut problems,
                                    );
                                }
                                config.plugins.insert(domain, entry);
                            }
                        }
                    }
                }
                _ => problems.push(ConfigProblem::new(
                    key,
                    ConfigProblemKind::UnknownKey { allowed: TOP_LEVEL },
                )),
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// The data directory: `data_dir` when set, else [`default_data_dir`].
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// The plugins directory: `plugins_dir` when set, else `<data_dir>/plugins`.
    #[must_use]
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("plugins"))
    }
}

/// The data directory when the config names none: `$HOMECORE_DATA_DIR`, else
/// `$XDG_DATA_HOME/homecore`, else `$HOME/.local/share/homecore`, else `./homecore-data`.
#[must_use]
pub fn default_data_dir() -> PathBuf {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = env("HOMECORE_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = env("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("homecore");
    }
    if let Some(home) = env("HOME") {
        return PathBuf::from(home).join(".local/share/homecore");
    }
    PathBuf::from("homecore-data")
}

fn section<T: serde::de::DeserializeOwned>(
    path: &str,
    value: toml::Value,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    match value.try_into::<T>() {
        Ok(v) => Some(v),
        Err(err) => {
            problems.push(ConfigProblem::new(
                path,
                ConfigProblemKind::Shape {
                    message: err.message().trim().to_owned(),
                },
            ));
            None
        }
    }
}

fn check_api(api: &ApiConfig, problems: &mut Vec<ConfigProblem>) {
    for (i, token) in api.tokens.iter().enumerate() {
        let path = format!("api.tokens[{i}]");
        if token.len() < MIN_TOKEN_LEN {
            problems.push(ConfigProblem::new(
                &path,
                ConfigProblemKind::TokenTooShort {
                    len: token.len(),
                    min: MIN_TOKEN_LEN,
                },
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(ConfigProblem::new(path, ConfigProblemKind::TokenCharacters));
        }
    }
    for (name, value) in [
        ("api.max_body_bytes", api.max_body_bytes),
        ("api.websocket_queue", api.websocket_queue),
        ("api.max_connections", api.max_connections),
        (
            "api.max_unauthenticated_websockets",
            api.max_unauthenticated_websockets,
        ),
        (
            "api.header_read_timeout_ms",
            usize::try_from(api.header_read_timeout_ms).unwrap_or(usize::MAX),
        ),
        (
            "api.websocket_auth_timeout_ms",
            usize::try_from(api.websocket_auth_timeout_ms).unwrap_or(usize::MAX),
        ),
        (
            "api.request_timeout_ms",
            usize::try_from(api.request_timeout_ms).unwrap_or(usize::MAX),
        ),
    ] {
        if value == 0 {
            problems.push(ConfigProblem::new(name, ConfigProblemKind::NotPositive));
        }
    }
}

/// A plugin limit of 0 is refused, as in a manifest: 0 state writes a second would make a plugin
/// that is refused every write and then quarantined.
fn check_resource_limits(path: &str, limits: &ResourceLimits, problems: &mut Vec<ConfigProblem>) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(limits) else {
        return;
    };
    for (name, value) in fields {
        if value.as_u64() == Some(0) {
            problems.push(ConfigProblem::new(
                format!("{path}.{name}"),
                ConfigProblemKind::NotPositive,
            ));
        }
    }
}

fn check_limits(limits: &LimitsConfig, problems: &mut Vec<ConfigProblem>) {
    check_resource_limits("limits.plugins", &limits.plugins, problems);
    for (name, value) in [
        ("limits.setup_timeout_ms", limits.setup_timeout_ms),
        ("limits.call_timeout_ms", limits.call_timeout_ms),
        ("limits.teardown_timeout_ms", limits.teardown_timeout_ms),
        ("limits.shutdown_timeout_ms", limits.shutdown_timeout_ms),
        ("limits.setup_attempts", u64::from(limits.setup_attempts)),
        (
            "limits.quarantine_over_budget_ms",
            limits.quarantine_over_budget_ms,
        ),
        ("limits.max_module_bytes", limits.max_module_bytes),
        (
            "limits.max_function_body_bytes",
            limits.max_function_body_bytes,
        ),
        ("limits.compile_budget_ms", limits.compile_budget_ms),
    ] {
        if value == 0 {
            problems.push(ConfigProblem::new(name, ConfigProblemKind::NotPositive));
        }
    }
}

fn check_hot_reload(hot: &HotReloadConfig, problems: &mut Vec<ConfigProblem>) {
    let path = "hot_reload.debounce_ms";
    if hot.debounce_ms == 0 {
        problems.push(ConfigProblem::new(path, ConfigProblemKind::NotPositive));
    } else if hot.debounce_ms > MAX_HOT_RELOAD_DEBOUNCE_MS {
        problems.push(ConfigProblem::new(
            path,
            ConfigProblemKind::TooLarge {
                value: hot.debounce_ms,
                max: MAX_HOT_RELOAD_DEBOUNCE_MS,
            },
        ));
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_the_default() {
        assert_eq!(Config::parse("").expect("empty is fine"), Config::default());
        assert_eq!(Config::default().listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let err = Config::parse(
            r#"
            listen = "not an address"
            colour = "blue"
            [api]
            tokens = ["short"]
            max_body_bytes = 0
            [limits]
            teardown_timeout_ms = "soon"
            [plugins.motion_lights]
            confg = {}
            [plugins.other]
            grant = { states_read = ["Light.*"] }
            "#,
        )
        .expect_err("invalid");
        let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "api.tokens[0]",
                "api.max_body_bytes",
                "colour",
                "limits",
                "listen",
                "plugins.motion_lights",
                "plugins.other"
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(text.starts_with("configuration has 7 problems:"), "{text}");
        assert!(text.contains("unknown field `confg`"), "{text}");
    }

    #[test]
    fn syntax_errors_have_a_line_and_column() {
        let err = Config::parse("examples = true\nlisten = = 1\n").expect_err("invalid");
        match &err.problems()[0].kind {
            ConfigProblemKind::Syntax { line, column, .. } => assert_eq!((*line, *column), (2, 10)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plugin_entries_and_limits_parse() {
        let config = Config::parse(
            r#"
            [limits]
            teardown_timeout_ms = 250
            plugins = { memory_bytes = 1048576 }
            [plugins.motion_lights]
            enabled = false
            grant = { states_read = ["binary_sensor.*"], storage = true }
            limits = { mailbox_capacity = 16 }
            "#,
        )
        .expect("valid");
        let policy = config.limits.host_policy();
        assert_eq!(policy.teardown_timeout, Duration::from_millis(250));
        assert_eq!(policy.limits.memory_bytes, Some(1 << 20));
        let entry = &config.plugins["motion_lights"];
        assert!(!entry.enabled);
        assert!(entry.grant.as_ref().is_some_and(|g| g.storage));
        assert_eq!(entry.limits.and_then(|l| l.mailbox_capacity), Some(16));
    }

    #[test]
    fn plugin_limits_of_zero_are_refused_where_they_stand() {
        let err = Config::parse(
            "[limits]\nplugins = { state_writes_per_second = 0 }\n[plugins.motion_lights]\nlimits = { subscriptions = 0, mailbox_capacity = 4 }\n",
        )
        .expect_err("zeros");
        let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "limits.plugins.state_writes_per_second",
                "plugins.motion_lights.limits.subscriptions"
            ],
            "{err}"
        );
    }

    #[test]
    fn budget_and_compile_bounds_have_defaults_and_must_be_positive() {
        let config = Config::parse("").expect("valid");
        let policy = config.limits.host_policy();
        assert_eq!(
            policy.quarantine_over_budget,
            HostPolicy::default().quarantine_over_budget
        );
        assert_eq!(config.limits.max_module_bytes, DEFAULT_MAX_MODULE_BYTES);
        let config = Config::parse(
            "[limits]\nquarantine_over_budget_ms = 2500\nmax_module_bytes = 1024\nmax_function_body_bytes = 512\ncompile_budget_ms = 100\nplugins = { state_writes_per_second = 5 }\n",
        )
        .expect("valid");
        let policy = config.limits.host_policy();
        assert_eq!(policy.quarantine_over_budget, Duration::from_millis(2500));
        assert_eq!(policy.limits.state_writes_per_second, Some(5));
        assert_eq!(
            (
                config.limits.max_module_bytes,
                config.limits.max_function_body_bytes,
                config.limits.compile_budget_ms
            ),
            (1024, 512, 100)
        );
        let err = Config::parse(
            "[limits]\nquarantine_over_budget_ms = 0\nmax_module_bytes = 0\nmax_function_body_bytes = 0\ncompile_budget_ms = 0\n",
        )
        .expect_err("zeros");
        let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "limits.quarantine_over_budget_ms",
                "limits.max_module_bytes",
                "limits.max_function_body_bytes",
                "limits.compile_budget_ms"
            ]
        );
    }

    #[test]
    fn hot_reload_is_on_by_default_and_its_delay_is_bounded() {
        let config = Config::parse("").expect("valid");
        assert!(config.hot_reload.enabled);
        assert_eq!(
            config.hot_reload.debounce(),
            Duration::from_millis(DEFAULT_HOT_RELOAD_DEBOUNCE_MS)
        );
        let off = Config::parse("[hot_reload]\nenabled = false\n").expect("valid");
        assert!(!off.hot_reload.enabled);
        assert_eq!(off.hot_reload.debounce_ms, DEFAULT_HOT_RELOAD_DEBOUNCE_MS);
        let err = Config::parse("[hot_reload]\ndebounce_ms = 60001\nwatch = true\n")
            .expect_err("invalid");
        assert_eq!(err.problems()[0].path, "hot_reload", "{err}");
        let err = Config::parse("[hot_reload]\ndebounce_ms = 60001\n").expect_err("too long");
        assert_eq!(
            err.problems(),
            [ConfigProblem::new(
                "hot_reload.debounce_ms",
                ConfigProblemKind::TooLarge {
                    value: 60_001,
                    max: MAX_HOT_RELOAD_DEBOUNCE_MS
                }
            )]
        );
        let err = Config::parse("[hot_reload]\ndebounce_ms = 0\n").expect_err("zero");
        assert_eq!(err.problems()[0].kind, ConfigProblemKind::NotPositive);
    }

    #[test]
    fn client_limits_have_defaults_and_must_be_positive() {
        let config = Config::parse("").expect("valid");
        assert_eq!(config.api.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            config.api.header_read_timeout(),
            Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS)
        );
        let config = Config::parse(
            "[api]\nmax_connections = 10\nheader_read_timeout_ms = 250\nmax_unauthenticated_websockets = 3\nwebsocket_auth_timeout_ms = 500\n",
        )
        .expect("valid");
        assert_eq!(config.api.max_connections, 10);
        assert_eq!(config.api.max_unauthenticated_websockets, 3);
        assert_eq!(config.api.header_read_timeout(), Duration::from_millis(250));
        assert_eq!(
            config.api.websocket_auth_timeout(),
            Duration::from_millis(500)
        );
        let err = Config::parse(
            "[api]\nmax_connections = 0\nheader_read_timeout_ms = 0\nmax_unauthenticated_websockets = 0\nwebsocket_auth_timeout_ms = 0\n",
        )
        .expect_err("zeros");
        let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "api.max_connections",
                "api.max_unauthenticated_websockets",
                "api.header_read_timeout_ms",
                "api.websocket_auth_timeout_ms"
            ]
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let err = Config::load(Path::new("/nonexistent/homecore.toml")).expect_err("missing");
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}

//! The `homecore` binary: `homecore run`, `homecore manifest check`, `homecore package …`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use homecore_server::{Config, ManifestRules, check_manifest_file};

/// HomeCore: a home-automation core speaking Home Assistant's REST and WebSocket APIs.
#[derive(Debug, Parser)]
#[command(name = "homecore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (works with no config file: 127.0.0.1:8123, example plugins loaded).
    Run {
        /// The config file (TOML). Without one, embedded defaults apply.
        #[arg(long, env = "HOMECORE_CONFIG")]
        config: Option<PathBuf>,
        /// The data directory (overrides the config's `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The listen address (overrides the config's `listen`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Check integration manifests, as Home Assistant's hassfest does.
    Manifest {
        #[command(subcommand)]
        command: ManifestCommand,
    },
    /// Publisher keys and signed plugin packages.
    Package {
        #[command(subcommand)]
        command: PackageCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ManifestCommand {
    /// Check manifest files; every problem with its path; non-zero exit on any problem.
    Check {
        /// The manifest files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Plain Home Assistant manifests (no homecore section needed), with HA's own rules.
        #[arg(long)]
        ha: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PackageCommand {
    /// Generate a publisher key pair: NAME.key (0600) and NAME.pub in DIR.
    Keygen {
        /// Where to write the key files.
        #[arg(long)]
        out: PathBuf,
        /// The key's name.
        #[arg(long)]
        name: String,
    },
    /// Sign a package directory (writes signature.json).
    Sign {
        /// The package directory.
        dir: PathBuf,
        /// The private key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify a package as `homecore run` would accept it from its plugins directory: trust,
    /// compatibility, its name (the domain), no native plugin's domain, and the rollback floor
    /// recorded in the data directory.
    Verify {
        /// The package directory (or `.hcpkg` bundle).
        dir: PathBuf,
        /// The config file whose `[trust]` table applies (plus the local example key), and
        /// whose `data_dir` holds the accepted versions.
        #[arg(long, env = "HOMECORE_CONFIG")]
        config: Option<PathBuf>,
        /// Trust exactly this publisher key file (NAME.pub) for every domain, instead of the
        /// config's `[trust]` table.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The data directory whose accepted versions apply (overrides the config's
        /// `data_dir`; default as `homecore run`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Show what a package holds, without a trust decision.
    Inspect {
        /// The package directory.
        dir: PathBuf,
    },
    /// Pack a signed package directory into one `<domain>.hcpkg` bundle.
    Pack {
        /// The package directory.
        dir: PathBuf,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            config,
            data_dir,
            listen,
        } => {
            init_tracing();
            let mut config = load_config(config.as_deref())?;
            if data_dir.is_some() {
                config.data_dir = data_dir;
            }
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Manifest {
            command: ManifestCommand::Check { files, ha },
        } => {
            let rules = if ha {
                ManifestRules::HomeAssistant
            } else {
                ManifestRules::HomeCore
            };
            let mut failed = 0;
            for file in &files {
                let check = check_manifest_file(file, rules);
                if !check.is_ok() {
                    failed += 1;
                }
                println!("{check}");
            }
            if failed > 0 {
                eprintln!("{failed} of {} manifests have problems", files.len());
                Ok(ExitCode::FAILURE)
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Package { command } => {
            init_tracing();
            package(command)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn package(command: PackageCommand) -> anyhow::Result<()> {
    match command {
        PackageCommand::Keygen { out, name } => {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let report = homecore_package::keygen(&out, &name).context("keygen failed")?;
            println!("{report}");
        }
        PackageCommand::Sign { dir, key } => {
            let report = homecore_package::sign(&dir, &key)
                .with_context(|| format!("cannot sign {}", dir.display()))?;
            println!("{report}");
        }
        PackageCommand::Verify {
            dir,
            config,
            key,
            data_dir,
        } => {
            let mut config = load_config(config.as_deref())?;
            if data_dir.is_some() {
                config.data_dir = data_dir;
            }
            let policy = match key {
                Some(key) => homecore_package::TrustPolicy::trusting(
                    homecore_package::load_public_key(&key)
                        .with_context(|| format!("cannot use the key {}", key.display()))?,
                ),
                None => homecore_server::trust_policy(&config)?,
            };
            let database = config.data_dir().join(homecore_server::DATABASE_FILE);
            let accepted: Box<dyn homecore_package::AcceptedVersions> = if database.exists() {
                Box::new(
                    homecore_store::Store::open(&database)
                        .with_context(|| format!("cannot open {}", database.display()))?,
                )
            } else {
                eprintln!(
                    "note: no database at {}: no accepted versions to check against",
                    database.display()
                );
                Box::new(homecore_package::MemoryAcceptedVersions::new())
            };
            let natives = homecore_server::native_plugins().context("the compiled-in plugins")?;
            let report = homecore_package::verify_as_host(&dir, &policy, &*accepted, &natives)
                .with_context(|| format!("{} was refused", dir.display()))?;
            println!("{report}");
        }
        PackageCommand::Pack { dir, out } => {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let report = homecore_package::pack(&dir, &out)
                .with_context(|| format!("cannot pack {}", dir.display()))?;
            println!("{report}");
        }
        PackageCommand::Inspect { dir } => {
            let report = homecore_package::inspect(&dir)
                .with_context(|| format!("cannot inspect {}", dir.display()))?;
            println!("{report}");
        }
    }
    Ok(())
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::default()),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut server = homecore_server::start(config)
        .await
        .context("the server did not start")?;
    print_banner(&server);
    // The API answers already; the plugins' outcomes are printed once they have loaded.
    let signalled = tokio::select! {
        report = server.plugins_started() => {
            print_plugins(report);
            false
        }
        () = wait_for_signal() => true,
    };
    if !signalled {
        wait_for_signal().await;
    }
    tracing::info!("shutting down");
    let report = server.shutdown().await;
    if !report.states_saved {
        anyhow::bail!("the final state commit failed (see the log): {report:?}");
    }
    if !report.plugins_stopped || !report.connections_drained {
        anyhow::bail!("shutdown did not finish within the deadline: {report:?}");
    }
    tracing::info!("stopped");
    Ok(())
}

fn print_banner(server: &homecore_server::RunningServer) {
    // One write, and errors ignored: a server must not die because whoever started it closed
    // its stdout after the first line (tests and supervisors do).
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    macro_rules! say {
        () => {{
            let _ = writeln!(out);
        }};
        ($($arg:tt)*) => {{
            let _ = writeln!(out, $($arg)*);
        }};
    }
    let startup = server.startup();
    let url = format!("http://{}", startup.addr);
    say!("HomeCore {} is running on {url}", homecore_server::VERSION);
    say!("  data directory:    {}", startup.data_dir.display());
    say!("  plugins directory: {}", startup.plugins_dir.display());
    say!(
        "  database:          {} ({} states restored)",
        startup.database.display(),
        startup.restored_states
    );
    say!("  plugins:           loading (their outcomes follow)");
    for rejected in &startup.rejected {
        say!(
            "  package {}: REFUSED ({})",
            rejected.path.as_deref().unwrap_or("?"),
            rejected.reason
        );
    }
    match (&startup.new_token, &startup.token_file) {
        (Some(token), _) => {
            say!();
            say!(
                "A new access token was stored in {} (mode 0600).",
                token.path.display()
            );
            say!("It is shown only this once:");
            say!();
            say!("    {}", token.token);
            say!();
            say!("Try it:");
            say!(
                "    curl -H \"Authorization: Bearer {}\" {url}/api/states",
                token.token
            );
        }
        (None, Some(file)) => {
            say!();
            say!("Access token: in {}. Try it:", file.display());
            say!(
                "    curl -H \"Authorization: Bearer $(cat {})\" {url}/api/states",
                file.display()
            );
        }
        (None, None) => say!("Access tokens: from the config file."),
    }
    let _ = out.flush();
}

fn print_plugins(report: &homecore_plugins::StartReport) {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (domain, outcome) in &report.outcomes {
        let _ = match outcome {
            Ok(()) => writeln!(out, "  plugin {domain}: running"),
            Err(err) => writeln!(out, "  plugin {domain}: FAILED ({err})"),
        };
    }
    let _ = out.flush();
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

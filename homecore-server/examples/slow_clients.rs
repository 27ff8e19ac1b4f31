//! Slow clients (issue 13 §7): what many connections that never finish their HTTP headers
//! cost the server, and how long they hold it.
//!
//! Starts the real server in-process on `127.0.0.1:0` (a temporary data directory, no example
//! plugins, one access token), then:
//!
//! 1. with `api.max_connections` above `--clients` and `api.header_read_timeout_ms =
//!    --timeout-ms`: opens `--clients` connections that each send half a request line and
//!    then nothing, and reports the process's open file descriptors before, while they are
//!    held, and once the header timeout has closed them (the clients' own sockets are in
//!    the same process and are subtracted: "server-held" is what the server keeps open);
//! 2. with the default `api.max_connections`: opens as many again and reports how many the
//!    server kept and how many it closed at once.
//!
//! ```text
//! cargo run -p homecore-server --example slow_clients -- --clients 1500 --timeout-ms 2000
//! ```
//!
//! Linux only (it counts `/proc/self/fd`); the soft `ulimit -n` must exceed twice `--clients`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use homecore_server::{ApiConfig, Config, RunningServer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TOKEN: &str = "slow-clients-token-0123456789abcdef";

#[derive(Debug, Parser)]
struct Args {
    /// Connections that never finish their headers.
    #[arg(long, default_value_t = 1500)]
    clients: usize,
    /// The server's header read timeout, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

fn open_fds() -> anyhow::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")
        .context("/proc/self/fd")?
        .count())
}

/// A metric's value from `/metrics`.
async fn metric(
    client: &reqwest::Client,
    server: &RunningServer,
    name: &str,
) -> anyhow::Result<f64> {
    let text = client
        .get(format!("http://{}/metrics", server.addr()))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .with_context(|| format!("{name} not in /metrics"))
}

async fn start(data: &tempfile::TempDir, api: ApiConfig) -> anyhow::Result<RunningServer> {
    let mut server = homecore_server::start(Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: Some(data.path().to_owned()),
        examples: false,
        api: ApiConfig {
            tokens: vec![TOKEN.to_owned()],
            ..api
        },
        ..Config::default()
    })
    .await
    .context("starting the server")?;
    server.plugins_started().await;
    Ok(server)
}

/// Opens `n` connections that send half a request line.
async fn half_headers(server: &RunningServer, n: usize) -> anyhow::Result<Vec<TcpStream>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = TcpStream::connect(server.addr()).await?;
        // Over the cap the server closes the connection at once: the write may fail.
        let _ = c.write_all(b"GET /api/states HTTP/1.1\r\nHost: loc").await;
        held.push(c);
    }
    Ok(held)
}

/// Polls `name` until `done` holds (at most a minute).
async fn wait_metric(
    client: &reqwest::Client,
    server: &RunningServer,
    name: &str,
    done: impl Fn(f64) -> bool,
) -> anyhow::Result<f64> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        // A pooling client may open a new connection for a scrape, which the cap can refuse:
        // such a scrape is tried again.
        let value = metric(client, server, name).await;
        match value {
            Ok(value) if done(value) => return Ok(value),
            Ok(value) if Instant::now() > until => bail!("{name} stayed at {value}"),
            Err(err) if Instant::now() > until => return Err(err),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().build()?;
    let n = args.clients;

    // 1. The header timeout alone.
    let data = tempfile::tempdir()?;
    let server = start(
        &data,
        ApiConfig {
            header_read_timeout_ms: args.timeout_ms,
            max_connections: n + 64,
            ..ApiConfig::default()
        },
    )
    .await?;
    // The metrics client's own keep-alive connection is one of the server's.
    let base_open = wait_metric(&client, &server, "homecore_http_connections", |_| true).await?;
    let before = open_fds()?;
    let started = Instant::now();
    let held = half_headers(&server, n).await?;
    let open = wait_metric(&client, &server, "homecore_http_connections", |v| {
        v >= base_open + n as f64
    })
    .await?;
    let during = open_fds()?;
    let opened_in = started.elapsed();
    let closed = wait_metric(&client, &server, "homecore_http_connections", |v| {
        v <= base_open
    })
    .await?;
    let closed_after = started.elapsed();
    let after = open_fds()?;
    let timeouts = wait_metric(
        &client,
        &server,
        "homecore_http_header_timeouts_total",
        |_| true,
    )
    .await?;
    println!(
        "{n} half-header connections, header_read_timeout_ms = {}:",
        args.timeout_ms
    );
    println!("  process fds before:            {before}");
    println!(
        "  while held:                    {during} (server-held: {}; server's open connections: {open})",
        during - before - n
    );
    println!(
        "  after the timeout:             {after} (server-held: {}; open connections: {closed}, header timeouts: {timeouts})",
        after.saturating_sub(before + n)
    );
    println!(
        "  all opened after {:.2} s, all closed by the server after {:.2} s",
        opened_in.as_secs_f64(),
        closed_after.as_secs_f64()
    );
    drop(held);
    server.shutdown().await;

    // 2. The connection cap (defaults).
    let data = tempfile::tempdir()?;
    let server = start(&data, ApiConfig::default()).await?;
    let cap = ApiConfig::default().max_connections;
    let base_open = wait_metric(&client, &server, "homecore_http_connections", |_| true).await?;
    let held = half_headers(&server, n).await?;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a gauge of open connections: a small whole number"
    )]
    let base_open = base_open as usize;
    let expected = (n + base_open).saturating_sub(cap) as f64;
    let refused = wait_metric(
        &client,
        &server,
        "homecore_http_connections_refused_total",
        |v| v >= expected,
    )
    .await?;
    let open = wait_metric(&client, &server, "homecore_http_connections", |_| true).await?;
    println!("{n} half-header connections, default max_connections = {cap}:");
    println!(
        "  server's open connections: {open} (the metrics client's included), closed at accept: {refused}"
    );
    drop(held);
    server.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

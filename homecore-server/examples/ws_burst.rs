//! WebSocket fan-out load (issue 5 §9): many subscribers receiving a burst of state changes.
//!
//! Starts the real server in-process on `127.0.0.1:0` (a temporary data directory, the default
//! plugins, one access token, `api.websocket_queue = --queue`), then for each run:
//!
//! 1. opens `--clients` WebSocket clients on loopback, each doing Home Assistant's auth flow and
//!    `subscribe_events` with `event_type: state_changed`;
//! 2. makes `--events` state changes spread over `--writers` entities (`sensor.ws_burst_<k>`,
//!    each entity's states counting up), either with `POST /api/states/{id}` over one
//!    keep-alive HTTP connection per writer (`--source http`, the whole server path) or by
//!    calling the state machine directly (`--source home`, the WebSocket fan-out alone);
//! 3. waits until every client has every event, and checks that each client received each
//!    entity's states exactly once and in order (no loss, no duplicate, no reordering) and was
//!    not disconnected.
//!
//! It prints, per run and as medians: the time from the first change until the last client
//! had its last event, events delivered per second (`events × clients / time`), and how fast
//! the changes themselves were made. A client that loses an event, or is disconnected as too
//! slow, fails the run and the exit status.
//!
//! ```text
//! cargo run --release -p homecore-server --example ws_burst -- --source http
//! cargo run --release -p homecore-server --example ws_burst -- --source home --queue 16384
//! ```
//!
//! The clients run in the same process and on the same cores as the server. They check each
//! event with a scan for `new_state`'s `entity_id` and `state` (the server writes these keys
//! first and in this order), and the first event of every client is also parsed in full to
//! confirm that the scan and the JSON agree.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use homecore::{Attributes, Context, EntityId, Home};
use homecore_server::{ApiConfig, Config};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "ws-burst-token-0123456789abcdef";
const ENTITY_PREFIX: &str = "sensor.ws_burst_";
/// The subscription id every client uses.
const SUBSCRIPTION: u64 = 1;
/// How every event message of that subscription starts.
const EVENT_PREFIX: &str = r#"{"id":1,"type":"event","event":"#;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the state changes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Source {
    /// `POST /api/states/{id}`, one keep-alive HTTP connection per writer.
    Http,
    /// `StateMachine::set` in-process: the WebSocket fan-out alone.
    Home,
}

/// Many WebSocket subscribers receiving a burst of state changes.
#[derive(Parser, Debug)]
struct Args {
    /// WebSocket clients, each subscribed to `state_changed`.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// State changes per burst.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Where the changes come from.
    #[arg(long, value_enum, default_value_t = Source::Http)]
    source: Source,
    /// Writers (HTTP connections, or tasks for `home`), each changing its own entity.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// The server's `api.websocket_queue`: events queued per connection before it is
    /// disconnected as too slow.
    #[arg(long, default_value_t = 4096)]
    queue: usize,
    /// State changes per second over all writers; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Bursts, each with freshly connected clients (the server stays up).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Each client's read buffer in KiB. tungstenite zero-fills the free part of this buffer
    /// before every read (its default is 128 KiB), which costs a client more than the frame
    /// it reads when events arrive one at a time.
    #[arg(long, default_value_t = 16)]
    read_buffer_kib: usize,
    /// Seconds to wait for the clients after the last change.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// What one client saw during a burst.
#[derive(Debug)]
struct ClientReport {
    received: usize,
    /// When the client had its last expected event.
    done_at: Option<Instant>,
    /// Why the client stopped early, if it did.
    problem: Option<String>,
}

/// One burst's figures.
#[derive(Debug)]
struct RunReport {
    /// First change to the last client's last event.
    all_done: Duration,
    /// First change to the last change acknowledged.
    sent: Duration,
    /// First change to the median client's last event.
    median_client: Duration,
    failed_clients: usize,
    first_problem: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every burst; false when a client lost an event or was disconnected.
async fn run(args: Args) -> anyhow::Result<bool> {
    ensure!(args.clients > 0, "--clients must be at least 1");
    ensure!(args.writers > 0, "--writers must be at least 1");
    ensure!(
        args.events >= args.writers,
        "--events must be at least --writers"
    );
    let data = tempfile::tempdir().context("creating a temporary data directory")?;
    let config = Config {
        listen: "127.0.0.1:0".parse().context("loopback address")?,
        data_dir: Some(data.path().to_owned()),
        api: ApiConfig {
            tokens: vec![TOKEN.to_owned()],
            websocket_queue: args.queue,
            ..ApiConfig::default()
        },
        ..Config::default()
    };
    let server = homecore_server::start(config)
        .await
        .context("starting the server")?;
    let addr = server.addr();
    let home = server.api().home().clone();

    let entities: Vec<EntityId> = (0..args.writers)
        .map(|k| EntityId::new(&format!("{ENTITY_PREFIX}{k}")))
        .collect::<Result<_, _>>()
        .context("entity ids")?;
    let per_writer: Vec<u64> = (0..args.writers)
        .map(|k| (args.events / args.writers + usize::from(k < args.events % args.writers)) as u64)
        .collect();
    // The next state value of each entity; states count up across runs.
    let mut next: Vec<u64> = vec![1; args.writers];
    for entity in &entities {
        home.states
            .set(entity, "0", attributes(), &Context::new())
            .context("seeding the burst entities")?;
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.writers)
        .build()
        .context("HTTP client")?;

    println!(
        "{} clients ({} KiB read buffers), {} state changes per burst over {} entities ({:?}, rate {}), websocket_queue {}, {} cores; load average before: {}",
        args.clients,
        args.read_buffer_kib,
        args.events,
        args.writers,
        args.source,
        if args.rate == 0 {
            "unpaced".to_owned()
        } else {
            format!("{}/s", args.rate)
        },
        args.queue,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load_average(),
    );

    let mut reports = Vec::with_capacity(args.runs);
    for run in 1..=args.runs {
        let report = burst(&args, addr, &home, &http, &entities, &per_writer, &next).await?;
        for (value, count) in next.iter_mut().zip(&per_writer) {
            *value += count;
        }
        let delivered = (args.events * args.clients) as f64 / report.all_done.as_secs_f64();
        println!(
            "run {run}: changes made in {:.3} s ({:.0}/s); every client had every event after {:.3} s (median client {:.3} s): {:.0} events/s delivered, {:.0} state changes/s fanned out; clients failed: {}{}",
            report.sent.as_secs_f64(),
            args.events as f64 / report.sent.as_secs_f64(),
            report.all_done.as_secs_f64(),
            report.median_client.as_secs_f64(),
            delivered,
            args.events as f64 / report.all_done.as_secs_f64(),
            report.failed_clients,
            report
                .first_problem
                .as_deref()
                .map(|p| format!(" (first: {p})"))
                .unwrap_or_default(),
        );
        reports.push(report);
    }

    let ok = reports.iter().all(|r| r.failed_clients == 0);
    let mut done: Vec<f64> = reports.iter().map(|r| r.all_done.as_secs_f64()).collect();
    let mut sent: Vec<f64> = reports.iter().map(|r| r.sent.as_secs_f64()).collect();
    let done = median(&mut done);
    let sent = median(&mut sent);
    println!(
        "median of {} runs: all delivered in {:.3} s = {:.0} events/s delivered ({:.0} state changes/s to {} subscribers); changes made at {:.0}/s; {}",
        args.runs,
        done,
        (args.events * args.clients) as f64 / done,
        args.events as f64 / done,
        args.clients,
        args.events as f64 / sent,
        if ok {
            "no event lost, none out of order, no client disconnected"
        } else {
            "SOME CLIENTS LOST EVENTS OR WERE DISCONNECTED"
        },
    );
    println!("load average after: {}", load_average());
    server.shutdown().await;
    Ok(ok)
}

/// The attributes of every burst state (as `bench/load.sh` posts).
fn attributes() -> Attributes {
    Attributes::try_from(json!({"unit_of_measurement": "W"})).expect("an object")
}

/// One burst with freshly connected clients.
async fn burst(
    args: &Args,
    addr: std::net::SocketAddr,
    home: &Home,
    http: &reqwest::Client,
    entities: &[EntityId],
    per_writer: &[u64],
    first: &[u64],
) -> anyhow::Result<RunReport> {
    let url = format!("ws://{addr}/api/websocket");
    let mut sockets = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        sockets.push(subscribed(&url, args.read_buffer_kib * 1024).await?);
    }
    let clients: Vec<_> = sockets
        .into_iter()
        .map(|ws| {
            let expected: Vec<(u64, u64)> = first
                .iter()
                .zip(per_writer)
                .map(|(&from, &count)| (from, from + count))
                .collect();
            tokio::spawn(receive(ws, expected))
        })
        .collect();

    let start = Instant::now();
    let writers: Vec<_> = (0..args.writers)
        .map(|k| {
            let entity = entities[k].clone();
            let (from, count) = (first[k], per_writer[k]);
            // Each writer's share of the rate: its k-th change is due at k / rate.
            let interval = (args.rate > 0)
                .then(|| Duration::from_secs_f64(args.writers as f64 / args.rate as f64));
            match args.source {
                Source::Http => {
                    let http = http.clone();
                    let url = format!("http://{addr}/api/states/{entity}");
                    tokio::spawn(async move {
                        for (i, value) in (from..from + count).enumerate() {
                            pace(start, interval, i).await;
                            let response = http
                                .post(&url)
                                .bearer_auth(TOKEN)
                                .json(&json!({
                                    "state": value.to_string(),
                                    "attributes": {"unit_of_measurement": "W"},
                                }))
                                .send()
                                .await
                                .context("POST /api/states")?;
                            ensure!(
                                response.status().is_success(),
                                "POST /api/states answered {}",
                                response.status()
                            );
                        }
                        anyhow::Ok(())
                    })
                }
                Source::Home => {
                    let home = home.clone();
                    tokio::spawn(async move {
                        for (i, value) in (from..from + count).enumerate() {
                            pace(start, interval, i).await;
                            home.states
                                .set(&entity, &value.to_string(), attributes(), &Context::new())
                                .context("StateMachine::set")?;
                        }
                        anyhow::Ok(())
                    })
                }
            }
        })
        .collect();
    for writer in writers {
        writer.await.context("writer task")??;
    }
    let sent = start.elapsed();

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut finished = Vec::with_capacity(args.clients);
    let mut failed_clients = 0;
    let mut first_problem = None;
    let total = args.events;
    for client in clients {
        let report = match tokio::time::timeout_at(deadline.into(), client).await {
            Ok(joined) => joined.context("client task")?,
            Err(_) => ClientReport {
                received: 0,
                done_at: None,
                problem: Some("timed out".to_owned()),
            },
        };
        match (report.problem, report.done_at) {
            (None, Some(at)) if report.received == total => {
                finished.push(at.duration_since(start));
            }
            (problem, _) => {
                failed_clients += 1;
                first_problem.get_or_insert_with(|| {
                    format!(
                        "{} after {} of {total} events",
                        problem.unwrap_or_else(|| "stopped".to_owned()),
                        report.received
                    )
                });
            }
        }
    }
    finished.sort();
    let all_done = finished.last().copied().unwrap_or(sent);
    let median_client = finished.get(finished.len() / 2).copied().unwrap_or(sent);
    Ok(RunReport {
        all_done,
        sent,
        median_client,
        failed_clients,
        first_problem,
    })
}

/// Waits until the `i`-th change of a writer is due.
async fn pace(start: Instant, interval: Option<Duration>, i: usize) {
    if let Some(interval) = interval {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// A client through the auth flow with a `state_changed` subscription acknowledged.
async fn subscribed(url: &str, read_buffer: usize) -> anyhow::Result<Socket> {
    let config = WebSocketConfig::default().read_buffer_size(read_buffer);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .context("connecting")?;
    let hello = next_json(&mut ws).await?;
    ensure!(
        hello["type"] == "auth_required",
        "expected auth_required, got {hello}"
    );
    send_json(&mut ws, json!({"type": "auth", "access_token": TOKEN})).await?;
    let ok = next_json(&mut ws).await?;
    ensure!(ok["type"] == "auth_ok", "expected auth_ok, got {ok}");
    send_json(
        &mut ws,
        json!({"id": SUBSCRIPTION, "type": "subscribe_events", "event_type": "state_changed"}),
    )
    .await?;
    let result = next_json(&mut ws).await?;
    ensure!(
        result["id"] == SUBSCRIPTION && result["success"] == true,
        "subscribe_events failed: {result}"
    );
    Ok(ws)
}

async fn send_json(ws: &mut Socket, value: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .context("sending")
}

async fn next_json(ws: &mut Socket) -> anyhow::Result<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no message in 10 s")?
            .context("connection closed")?
            .context("reading")?;
        match message {
            Message::Text(text) => return serde_json::from_str(&text).context("not JSON"),
            Message::Close(frame) => bail!("closed by the server: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads events until every entity `k`'s states `expected[k].0 .. expected[k].1` have arrived,
/// each once and in order.
async fn receive(mut ws: Socket, expected: Vec<(u64, u64)>) -> ClientReport {
    let total: u64 = expected.iter().map(|(from, to)| to - from).sum();
    let mut next: Vec<u64> = expected.iter().map(|(from, _)| *from).collect();
    let mut received = 0;
    let mut checked_in_full = false;
    let stop = |received, problem: String| ClientReport {
        received,
        done_at: None,
        problem: Some(problem),
    };
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    while received < total {
        let message = match ws.next().await {
            None => return stop(received, "disconnected".to_owned()),
            Some(Err(err)) => return stop(received, format!("disconnected ({err})")),
            Some(Ok(message)) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                return stop(received, format!("closed by the server ({frame:?})"));
            }
            _ => continue,
        };
        let (k, value) = match burst_state(&text) {
            Ok(Some(found)) => found,
            // Another entity's change.
            Ok(None) => continue,
            Err(problem) => return stop(received, problem),
        };
        if !checked_in_full {
            if let Err(problem) = check_in_full(&text, k, value) {
                return stop(received, problem);
            }
            checked_in_full = true;
        }
        let Some(want) = next.get_mut(k) else {
            return stop(received, format!("an event for unknown entity {k}"));
        };
        if value != *want || value >= expected[k].1 {
            return stop(
                received,
                format!("entity {k}: state {value} where {want} was due (lost or out of order)"),
            );
        }
        *want += 1;
        received += 1;
    }
    ClientReport {
        received,
        done_at: Some(Instant::now()),
        problem: None,
    }
}

/// The burst entity index and state value of an event message (`None` for other entities),
/// found by a scan for `"new_state":{"entity_id":"…","state":"…"`.
fn burst_state(text: &str) -> Result<Option<(usize, u64)>, String> {
    if !text.starts_with(EVENT_PREFIX) {
        return Err(format!("not an event of the subscription: {}", cap(text)));
    }
    let Some(at) = text.find(r#""new_state":"#) else {
        return Err(format!("an event without new_state: {}", cap(text)));
    };
    let rest = &text[at + r#""new_state":"#.len()..];
    if rest.starts_with("null") {
        return Ok(None);
    }
    let Some(rest) = rest.strip_prefix(r#"{"entity_id":""#) else {
        return Err(format!("unexpected new_state shape: {}", cap(text)));
    };
    let Some(rest) = rest.strip_prefix(ENTITY_PREFIX) else {
        return Ok(None);
    };
    let parsed = rest.split_once(r#"","state":""#).and_then(|(k, rest)| {
        let (value, _) = rest.split_once('"')?;
        Some((k.parse().ok()?, value.parse().ok()?))
    });
    parsed
        .map(Some)
        .ok_or_else(|| format!("unexpected burst event: {}", cap(text)))
}

/// Parses `text` in full and checks that it says what the scan found.
fn check_in_full(text: &str, k: usize, value: u64) -> Result<(), String> {
    let message: Value =
        serde_json::from_str(text).map_err(|err| format!("an event that is not JSON: {err}"))?;
    let data = &message["event"]["data"];
    let entity = format!("{ENTITY_PREFIX}{k}");
    if message["type"] == "event"
        && message["event"]["event_type"] == "state_changed"
        && data["entity_id"] == entity.as_str()
        && data["new_state"]["entity_id"] == entity.as_str()
        && data["new_state"]["state"] == value.to_string().as_str()
        && data["new_state"]["attributes"]["unit_of_measurement"] == "W"
    {
        Ok(())
    } else {
        Err(format!(
            "the full parse disagrees with the scan: {}",
            cap(text)
        ))
    }
}

fn cap(text: &str) -> String {
    text.chars().take(200).collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

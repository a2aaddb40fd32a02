//! The serving benchmark's data and load (run by `serve.sh`), the same for every server:
//!
//! - `bench-load csv PATH ROWS`: a deterministic training table, eight float features
//!   `f1`..`f8` (standard normal) and a 0/1 `label` drawn from a logistic model of them.
//! - `bench-load body ROWS`: an Open Inference Protocol v2 request of `ROWS` rows of the same
//!   distribution, as one `input` tensor `[ROWS, 8]` (FP64), asking for the `predict` output.
//! - `bench-load ready URL SINCE_NS PID [TIMEOUT_S]`: polls `URL` every 2 ms until it
//!   answers 200, then prints the seconds since `SINCE_NS` (nanoseconds since the Unix epoch,
//!   taken just before the server was started): its cold start. Fails at once when the
//!   process `PID` (the server) has exited.
//! - `bench-load run URL BODY_FILE CONCURRENCY SECONDS [WARMUP_S]`: a closed loop. Each of
//!   `CONCURRENCY` clients holds one keep-alive HTTP/1.1 connection and POSTs the body, waits
//!   for the whole answer, and sends again. Requests started during the warm-up are not
//!   counted. Prints `requests N rps X p50_ms Y p99_ms Z` and exits 1 on any answer but 200.
//!
//! One thread (a current-thread runtime) drives every client: the same program, at the same
//! cost per request, loads every server, and it fits on a core of its own.
#![forbid(unsafe_code)]

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The model the labels are drawn from: logit = W·x + B (two features carry nothing).
const W: [f64; 8] = [1.5, -2.0, 0.8, 0.0, 0.6, -1.2, 1.0, 0.0];
const B: f64 = 0.3;

const USAGE: &str = "usage: bench-load csv PATH ROWS | body ROWS | ready URL SINCE_NS PID [TIMEOUT_S] \
                     | run URL BODY_FILE CONCURRENCY SECONDS [WARMUP_S]";

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or(USAGE);
    match arg(0)? {
        "csv" => csv(arg(1)?, arg(2)?.parse()?),
        "body" => {
            println!("{}", body(arg(1)?.parse()?));
            Ok(())
        }
        "ready" => {
            let timeout = args.get(4).map_or(Ok(120.0), |s| s.parse())?;
            let runtime = runtime()?;
            let (url, since, pid) = (arg(1)?, arg(2)?.parse()?, arg(3)?.parse()?);
            let seconds = runtime.block_on(ready(url, since, pid, timeout))?;
            println!("{seconds:.3}");
            Ok(())
        }
        "run" => {
            let body = Bytes::from(std::fs::read(arg(2)?)?);
            let warmup = args.get(5).map_or(Ok(2.0), |s| s.parse())?;
            let runtime = runtime()?;
            let report = runtime.block_on(run(
                arg(1)?,
                body,
                arg(3)?.parse()?,
                Duration::from_secs_f64(arg(4)?.parse()?),
                Duration::from_secs_f64(warmup),
            ))?;
            println!("{report}");
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Deterministic uniform in (0, 1) from a counter (splitmix64).
fn uniform(i: u64) -> f64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Row `row` of stream `stream`: eight standard normals (Box-Muller) and the label.
fn row(stream: u64, row: u64) -> ([f64; 8], u8) {
    let base = (stream << 40) + row * 16;
    let mut x = [0.0; 8];
    for (k, pair) in x.chunks_mut(2).enumerate() {
        let (u1, u2) = (
            uniform(base + 2 * k as u64),
            uniform(base + 2 * k as u64 + 1),
        );
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        pair[0] = r * t.cos();
        pair[1] = r * t.sin();
    }
    let logit: f64 = B + W.iter().zip(&x).map(|(w, v)| w * v).sum::<f64>();
    let label = u8::from(uniform(base + 15) < 1.0 / (1.0 + (-logit).exp()));
    (x, label)
}

fn csv(path: &str, rows: u64) -> Result<(), Error> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "f1,f2,f3,f4,f5,f6,f7,f8,label")?;
    for i in 0..rows {
        let (x, label) = row(1, i);
        for v in x {
            write!(out, "{v:.6},")?;
        }
        writeln!(out, "{label}")?;
    }
    out.flush()?;
    Ok(())
}

/// The request body: rows from another stream than the training table's.
fn body(rows: u64) -> String {
    let data: Vec<f64> = (0..rows)
        .flat_map(|i| row(2, i).0.map(|v| (v * 1e6).round() / 1e6))
        .collect();
    serde_json::json!({
        "inputs": [{"name": "input", "shape": [rows, 8], "datatype": "FP64", "data": data}],
        "outputs": [{"name": "predict"}],
    })
    .to_string()
}

/// `http://host:port/path` into the address to connect to and the path.
fn split_url(url: &str) -> Result<(String, String), Error> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("the URL must start with http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    Ok((authority.to_string(), path.to_string()))
}

async fn connect<B>(authority: &str) -> Result<SendRequest<B>, Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Whether process `pid` has exited (gone, or a zombie its parent has not reaped yet).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        // The state follows the command name, which is in parentheses and may hold spaces.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
    })
}

async fn ready(url: &str, since_ns: u128, pid: u32, timeout: f64) -> Result<f64, Error> {
    let (authority, path) = split_url(url)?;
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        let ok = async {
            let mut sender = connect::<Empty<Bytes>>(&authority).await?;
            let request = Request::get(path.as_str())
                .header(HOST, authority.as_str())
                .body(Empty::new())?;
            let response = sender.send_request(request).await?;
            Ok::<_, Error>(response.status() == StatusCode::OK)
        }
        .await
        .unwrap_or(false);
        if ok {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
            return Ok(now.saturating_sub(since_ns) as f64 / 1e9);
        }
        if exited(pid) {
            return Err(format!("the server (pid {pid}) exited before {url} answered 200").into());
        }
        if Instant::now() > deadline {
            return Err(format!("{url} did not answer 200 within {timeout} s").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// What one client saw: the latency (µs) of each counted request, and the end of its last.
struct Client {
    latencies: Vec<u32>,
    last: Instant,
}

async fn run(
    url: &str,
    body: Bytes,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
) -> Result<String, Error> {
    let (authority, path) = split_url(url)?;
    let start = Instant::now() + warmup;
    let end = start + duration;
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (authority, path, body) = (authority.clone(), path.clone(), body.clone());
            tokio::spawn(async move { client(&authority, &path, body, start, end).await })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut last = start;
    for c in clients {
        let c = c.await??;
        latencies.extend(c.latencies);
        last = last.max(c.last);
    }
    if latencies.is_empty() {
        return Err("no request completed".into());
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        f64::from(latencies[rank - 1]) / 1000.0
    };
    let seconds = last.duration_since(start).as_secs_f64();
    Ok(format!(
        "requests {} rps {:.1} p50_ms {:.3} p99_ms {:.3}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        at(0.50),
        at(0.99),
    ))
}

async fn client(
    authority: &str,
    path: &str,
    body: Bytes,
    start: Instant,
    end: Instant,
) -> Result<Client, Error> {
    let mut sender = connect::<Full<Bytes>>(authority).await?;
    let mut latencies = Vec::new();
    let mut last = start;
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            return Err(format!(
                "{path}: {status} {}",
                String::from_utf8_lossy(&answer[..answer.len().min(500)])
            )
            .into());
        }
        let done = Instant::now();
        if sent >= start {
            let micros = done.duration_since(sent).as_micros();
            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
            last = done;
        }
    }
    Ok(Client { latencies, last })
}

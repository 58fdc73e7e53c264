//! `opentrail-bench --proxy`: what the recording proxy adds to a call (issue 16), side by
//! side with calling the upstream directly, in the same run.
//!
//! - A fast upstream (a minimal HTTP/1.1 keep-alive responder in this process, ~tens of
//!   µs per call), called at a fixed rate (open loop, 2,000 requests/s by default; latency
//!   counted from each request's scheduled time, so a stall is not hidden) directly and
//!   through `opentrail proxy` recording into a real `opentrail serve` over its disk
//!   queue; after 2 s of warm-up on each path, alternated three times so drift hits both,
//!   and the median difference reported. Then the most calls/s with 8 clients.
//! - `moto_server` (when found) as a real AWS-protocol upstream: DynamoDB `ListTables`,
//!   SigV4-signed, at a rate moto sustains, directly and through the proxy.
//! - Every proxied call must be recorded: the events of the benchmark's access key are
//!   counted in OpenTrail afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use opentrail_protocol::sigv4::{self, SigningParams};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::server::ServerProcess;

/// The access key of the benchmark's calls: the upstreams ignore it, the proxy records it.
const BENCH_KEY: &str = "AKIAPROXYBENCH000001";
const THROUGHPUT_CLIENTS: usize = 8;
/// Direct and proxied phases alternate this many times; the added latency reported is the
/// median of the alternations' differences.
const ALTERNATIONS: usize = 3;
const THROUGHPUT_SECONDS: u64 = 5;

#[derive(Debug, Clone, Serialize)]
pub struct LatencyFigures {
    pub requests: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxyReport {
    pub rate_per_second: u32,
    pub seconds: u64,
    /// One entry per alternation: (direct, proxied).
    pub fast_upstream: Vec<(LatencyFigures, LatencyFigures)>,
    pub added_p50_ms: f64,
    pub added_p99_ms: f64,
    pub throughput_direct_per_second: f64,
    pub throughput_proxied_per_second: f64,
    pub moto: Option<MotoFigures>,
    pub proxied_calls: usize,
    pub recorded_calls: usize,
    pub proxy_peak_rss_mb: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MotoFigures {
    pub rate_per_second: u32,
    pub direct: LatencyFigures,
    pub proxied: LatencyFigures,
    pub throughput_direct_per_second: f64,
    pub throughput_proxied_per_second: f64,
}

pub async fn run(
    binary: &Path,
    work: &Path,
    rate: u32,
    seconds: u64,
    moto_server: Option<PathBuf>,
) -> anyhow::Result<ProxyReport> {
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let upstream = start_fast_upstream().await?;
    let mut server =
        ServerProcess::start(binary, &work.join("data"), &work.join("server.log")).await?;
    let credentials = work.join("data").join("credentials");
    let proxy = ProxyChild::start(
        binary,
        &format!("http://{upstream}"),
        &server.endpoint,
        &credentials,
        &work.join("queue"),
        &work.join("proxy.log"),
    )
    .await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .http1_only()
        .build()?;

    let direct_url = format!("http://{upstream}/v1/orders?status=open");
    let proxied_url = format!("http://{}/v1/orders?status=open", proxy.address);
    let get = |url: String| {
        let http = http.clone();
        move || {
            http.get(&url).header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential={BENCH_KEY}/20261204/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=00"),
            )
        }
    };
    // Warm both paths at the full rate (connection pools, the queue's first segment, the
    // server's first ingest batches): start-up is not what is measured.
    open_loop(get(direct_url.clone()), rate, 2).await;
    let warm_up = open_loop(get(proxied_url.clone()), rate, 2).await;
    let mut proxied_calls = warm_up.requests;

    let mut fast_upstream = Vec::new();
    for _ in 0..ALTERNATIONS {
        let direct = open_loop(get(direct_url.clone()), rate, seconds).await;
        let proxied = open_loop(get(proxied_url.clone()), rate, seconds).await;
        proxied_calls += proxied.requests;
        fast_upstream.push((direct, proxied));
    }
    let median = |values: Vec<f64>| {
        let mut values = values;
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let added_p50_ms = median(
        fast_upstream
            .iter()
            .map(|(direct, proxied)| proxied.p50_ms - direct.p50_ms)
            .collect(),
    );
    let added_p99_ms = median(
        fast_upstream
            .iter()
            .map(|(direct, proxied)| proxied.p99_ms - direct.p99_ms)
            .collect(),
    );
    let (throughput_direct_per_second, _) =
        closed_loop_with(get(direct_url.clone()), THROUGHPUT_CLIENTS).await;
    let (throughput_proxied_per_second, closed_calls) =
        closed_loop_with(get(proxied_url.clone()), THROUGHPUT_CLIENTS).await;
    proxied_calls += closed_calls;

    // The moto proxy and moto stay up until the records are counted: a proxy stopped
    // earlier would keep its last records queued until it runs again.
    let (moto, _moto_processes) = match moto_server {
        Some(moto_server) => {
            let (figures, calls, processes) = moto_figures(
                &moto_server,
                binary,
                &server.endpoint,
                &credentials,
                work,
                &http,
            )
            .await?;
            proxied_calls += calls;
            (Some(figures), Some(processes))
        }
        None => (None, None),
    };

    let recorded_calls = wait_for_records(&server, proxied_calls).await?;
    let proxy_peak_rss_mb = crate::server::peak_rss_kb(proxy.pid()).map(|kb| kb as f64 / 1024.0);
    drop(proxy);
    server.stop()?;
    Ok(ProxyReport {
        rate_per_second: rate,
        seconds,
        fast_upstream,
        added_p50_ms,
        added_p99_ms,
        throughput_direct_per_second,
        throughput_proxied_per_second,
        moto,
        proxied_calls,
        recorded_calls,
        proxy_peak_rss_mb,
    })
}

pub fn print(report: &ProxyReport) {
    println!(
        "recording proxy, fast upstream, {} requests/s for {} s (open loop), alternated:",
        report.rate_per_second, report.seconds
    );
    for (direct, proxied) in &report.fast_upstream {
        println!(
            "  direct  p50 {:.3} ms  p99 {:.3} ms  max {:.1} ms  errors {}",
            direct.p50_ms, direct.p99_ms, direct.max_ms, direct.errors
        );
        println!(
            "  proxied p50 {:.3} ms  p99 {:.3} ms  max {:.1} ms  errors {}",
            proxied.p50_ms, proxied.p99_ms, proxied.max_ms, proxied.errors
        );
    }
    println!(
        "  added by the proxy (median of the alternations): p50 {:.3} ms, p99 {:.3} ms",
        report.added_p50_ms, report.added_p99_ms
    );
    println!(
        "  most calls/s with {THROUGHPUT_CLIENTS} clients: direct {:.0}, proxied {:.0} (ratio {:.2})",
        report.throughput_direct_per_second,
        report.throughput_proxied_per_second,
        report.throughput_proxied_per_second / report.throughput_direct_per_second
    );
    if let Some(moto) = &report.moto {
        println!(
            "moto_server (DynamoDB ListTables, SigV4) at {} requests/s:",
            moto.rate_per_second
        );
        println!(
            "  direct  p50 {:.2} ms  p99 {:.2} ms;  proxied p50 {:.2} ms  p99 {:.2} ms",
            moto.direct.p50_ms, moto.direct.p99_ms, moto.proxied.p50_ms, moto.proxied.p99_ms
        );
        println!(
            "  most calls/s with 4 clients: direct {:.0}, proxied {:.0} (ratio {:.2})",
            moto.throughput_direct_per_second,
            moto.throughput_proxied_per_second,
            moto.throughput_proxied_per_second / moto.throughput_direct_per_second
        );
    }
    println!(
        "recorded {} of {} proxied calls; proxy peak RSS {}",
        report.recorded_calls,
        report.proxied_calls,
        report
            .proxy_peak_rss_mb
            .map_or("n/a".to_owned(), |mb| format!("{mb:.0} MB"))
    );
}

/// Sends `rate` requests a second for `seconds`, each at its scheduled time whatever the
/// earlier ones are doing, and times each from that scheduled time.
async fn open_loop<F>(request: F, rate: u32, seconds: u64) -> LatencyFigures
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let total = rate as u64 * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = tokio::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for index in 0..total {
        let scheduled = start + interval.mul_f64(index as f64);
        tokio::time::sleep_until(scheduled).await;
        let sent = request();
        calls.spawn(async move {
            let ok = match sent.send().await {
                Ok(response) => response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (scheduled.elapsed(), ok)
        });
    }
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0;
    while let Some(joined) = calls.join_next().await {
        match joined {
            Ok((latency, true)) => latencies.push(latency),
            _ => errors += 1,
        }
    }
    figures(latencies, errors)
}

fn figures(mut latencies: Vec<Duration>, errors: usize) -> LatencyFigures {
    latencies.sort();
    let at = |quantile: f64| {
        latencies
            .get(
                ((latencies.len() as f64 * quantile) as usize)
                    .min(latencies.len().saturating_sub(1)),
            )
            .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
    };
    LatencyFigures {
        requests: latencies.len() + errors,
        errors,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: latencies
            .last()
            .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0),
    }
}

/// `clients` callers, each sending its next request when the last one is answered, for
/// [`THROUGHPUT_SECONDS`]: successful calls per second and calls made.
async fn closed_loop_with<F>(request: F, clients: usize) -> (f64, usize)
where
    F: Fn() -> reqwest::RequestBuilder + Clone + Send + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(THROUGHPUT_SECONDS);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let request = request.clone();
        workers.spawn(async move {
            let (mut ok, mut made) = (0usize, 0usize);
            while Instant::now() < deadline {
                made += 1;
                if let Ok(response) = request().send().await
                    && response.bytes().await.is_ok()
                {
                    ok += 1;
                }
            }
            (ok, made)
        });
    }
    let (mut ok, mut made) = (0, 0);
    while let Some(Ok((worker_ok, worker_made))) = workers.join_next().await {
        ok += worker_ok;
        made += worker_made;
    }
    (ok as f64 / THROUGHPUT_SECONDS as f64, made)
}

async fn moto_figures(
    moto_server: &Path,
    binary: &Path,
    endpoint: &str,
    credentials: &Path,
    work: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<(MotoFigures, usize, (ProxyChild, ChildGuard))> {
    const MOTO_RATE: u32 = 100;
    const MOTO_SECONDS: u64 = 10;
    let port = crate::server::free_port()?;
    let moto = ChildGuard(
        Command::new(moto_server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", moto_server.display()))?,
    );
    wait_for_port(&format!("127.0.0.1:{port}")).await?;
    let proxy = ProxyChild::start(
        binary,
        &format!("http://127.0.0.1:{port}"),
        endpoint,
        credentials,
        &work.join("queue-moto"),
        &work.join("proxy-moto.log"),
    )
    .await?;
    let list_tables = |host: String| {
        let http = http.clone();
        move || signed_list_tables(&http, &host)
    };
    let direct_host = format!("127.0.0.1:{port}");
    open_loop(list_tables(direct_host.clone()), 20, 1).await;
    open_loop(list_tables(proxy.address.clone()), 20, 1).await;
    let direct = open_loop(list_tables(direct_host.clone()), MOTO_RATE, MOTO_SECONDS).await;
    let proxied = open_loop(list_tables(proxy.address.clone()), MOTO_RATE, MOTO_SECONDS).await;
    let (throughput_direct_per_second, _) = closed_loop_with(list_tables(direct_host), 4).await;
    let (throughput_proxied_per_second, closed_calls) =
        closed_loop_with(list_tables(proxy.address.clone()), 4).await;
    let calls = 20 + proxied.requests + closed_calls;
    Ok((
        MotoFigures {
            rate_per_second: MOTO_RATE,
            direct,
            proxied,
            throughput_direct_per_second,
            throughput_proxied_per_second,
        },
        calls,
        (proxy, moto),
    ))
}

fn signed_list_tables(http: &reqwest::Client, host: &str) -> reqwest::RequestBuilder {
    const TARGET: &str = "DynamoDB_20120810.ListTables";
    const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
    let body = b"{}".to_vec();
    let signature = sigv4::sign(
        "POST",
        "/",
        &[
            ("host", host),
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", TARGET),
        ],
        &body,
        &SigningParams {
            access_key_id: BENCH_KEY,
            secret_access_key: "moto-does-not-check",
            region: "us-east-1",
            service: "dynamodb",
            now: jiff::Timestamp::now(),
            include_content_sha256: false,
        },
    );
    let mut request = http
        .post(format!("http://{host}/"))
        .header("content-type", CONTENT_TYPE)
        .header("x-amz-target", TARGET);
    for (name, value) in signature {
        request = request.header(name, value);
    }
    request.body(body)
}

/// Counts the benchmark key's events until every proxied call is there (or a minute
/// passes without progress).
async fn wait_for_records(server: &ServerProcess, expected: usize) -> anyhow::Result<usize> {
    let api = crate::api::Api::new(&server.endpoint, &server.host, server.credentials.clone())?;
    let mut last = 0;
    let mut last_progress = Instant::now();
    loop {
        let count = api.count_events("accessKeyId", BENCH_KEY).await?;
        if count >= expected {
            return Ok(count);
        }
        if count > last {
            last = count;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(60) {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A minimal HTTP/1.1 keep-alive server answering every request with a small JSON body:
/// the fastest upstream there can be, so what is measured is the proxy.
async fn start_fast_upstream() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nx-request-id: bench\r\n\r\n{\"ok\":true}";
                let mut buffer = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(header_end) = find(&buffer, b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                        }
                        continue;
                    };
                    let body_length = content_length(&buffer[..header_end]);
                    while buffer.len() < header_end + 4 + body_length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                        }
                    }
                    buffer.drain(..header_end + 4 + body_length);
                    if stream.write_all(ANSWER).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(address)
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

pub(crate) fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

async fn wait_for_port(address: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(address).await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("nothing listens on {address} after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A child process killed when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `opentrail proxy` recording into a server through its disk queue.
struct ProxyChild {
    child: ChildGuard,
    address: String,
}

impl ProxyChild {
    async fn start(
        binary: &Path,
        upstream: &str,
        endpoint: &str,
        credentials: &Path,
        queue: &Path,
        log: &Path,
    ) -> anyhow::Result<ProxyChild> {
        let address = format!("127.0.0.1:{}", crate::server::free_port()?);
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(binary)
            .args([
                "proxy",
                "--listen",
                &address,
                "--upstream",
                upstream,
                "--endpoint",
                endpoint,
            ])
            .arg("--credentials")
            .arg(credentials)
            .arg("--queue-dir")
            .arg(queue)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {} proxy", binary.display()))?;
        let proxy = ProxyChild {
            child: ChildGuard(child),
            address,
        };
        wait_for_port(&proxy.address).await?;
        Ok(proxy)
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

//! `bench`: many clients send requests as fast as the server answers; latencies go into a
//! histogram.
//!
//! Each client holds one connection and keeps `pipeline` requests in flight. With a pipeline of
//! one that is the plain request/reply loop a CLI runs; deeper pipelines split the connection
//! so that sending and receiving overlap, and the latency of a request runs from just before it
//! is sent to its reply. Replies come in request order, so matching them needs no ids.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bunctl_ipc::{IpcError, IpcMessage, MAX_MESSAGE_SIZE};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::call::connect;
use crate::error::CliError;

/// Replies counted locally before the shared progress bar is told, to keep it off the hot path.
const PROGRESS_BATCH: u64 = 64;

/// The largest `payload`: the name must fit a frame, and so must the reply that echoes it.
pub const MAX_PAYLOAD: usize = MAX_MESSAGE_SIZE - 1024;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchConfig {
    /// Connections, each in its own task.
    pub clients: u32,
    /// Requests in all; the clients share them as evenly as possible.
    pub requests: u64,
    /// `0`: each request is `List`. `N`: each is `Status` for an app with an N-byte name.
    pub payload: usize,
    /// Requests each client keeps in flight (at least 1).
    pub pipeline: u32,
}

impl BenchConfig {
    /// The request every client sends.
    pub fn message(&self) -> IpcMessage {
        match self.payload {
            0 => IpcMessage::List,
            n => IpcMessage::Status { name: Some("x".repeat(n)) },
        }
    }

    fn check(&self) -> Result<(), CliError> {
        if self.clients == 0 || self.pipeline == 0 || self.requests == 0 {
            return Err(CliError::Usage(
                "bench: clients, requests and pipeline must be at least 1".into(),
            ));
        }
        if self.payload > MAX_PAYLOAD {
            return Err(CliError::Usage(format!(
                "bench: --payload is at most {MAX_PAYLOAD} bytes"
            )));
        }
        Ok(())
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What ran.
    pub config: BenchConfig,
    /// The server's endpoint.
    pub endpoint: PathBuf,
    /// From the first connection to the last reply.
    pub elapsed: Duration,
    /// Round-trip latencies in nanoseconds, one per request.
    pub latency: Histogram<u64>,
}

impl BenchReport {
    /// Requests answered per second.
    pub fn requests_per_second(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The latency at `quantile` (0.0 to 1.0).
    pub fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_nanos(self.latency.value_at_quantile(quantile))
    }

    /// The slowest round trip.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.latency.max())
    }

    /// The latency line alone: `p50 31.2 µs  p90 ...  max ...`.
    pub fn latency_line(&self) -> String {
        let p = |q| human_duration(self.quantile(q));
        format!(
            "p50 {}   p90 {}   p99 {}   p99.9 {}   max {}",
            p(0.5),
            p(0.9),
            p(0.99),
            p(0.999),
            human_duration(self.max())
        )
    }

    /// The report as one JSON object (latencies in microseconds).
    pub fn to_json(&self) -> Value {
        let us = |d: Duration| (d.as_nanos() as f64 / 1e3 * 10.0).round() / 10.0;
        json!({
            "endpoint": self.endpoint,
            "clients": self.config.clients,
            "requests": self.latency.len(),
            "payload": self.config.payload,
            "pipeline": self.config.pipeline,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_second": self.requests_per_second().round(),
            "latency_us": {
                "p50": us(self.quantile(0.5)),
                "p90": us(self.quantile(0.9)),
                "p99": us(self.quantile(0.99)),
                "p999": us(self.quantile(0.999)),
                "max": us(self.max()),
            },
        })
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let request = match c.payload {
            0 => "List".to_owned(),
            n => format!("Status with a {n}-byte name"),
        };
        writeln!(
            f,
            "{} requests ({request}) from {} client{}, pipeline {}, in {:.2} s",
            self.latency.len(),
            c.clients,
            if c.clients == 1 { "" } else { "s" },
            c.pipeline,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "throughput  {:.0} requests/s", self.requests_per_second())?;
        writeln!(f, "latency     {}", self.latency_line())
    }
}

/// A duration with a unit that keeps 3 or 4 significant digits: `850 ns`, `31.2 µs`, `4.07 ms`.
pub fn human_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A progress bar for `total` requests on stderr; indicatif hides it when stderr is not a
/// terminal.
pub fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} requests  eta {eta}") {
        bar.set_style(style);
    }
    bar
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 1 h with 3 significant digits; values outside are clamped by `saturating_record`.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs `config` against the server at `endpoint`, advancing `progress` as replies arrive.
///
/// Every client connects before the clock starts. Any failure — a connection refused, a reply
/// that does not come within `timeout`, the server leaving — ends the run with that error.
pub async fn run(
    endpoint: &Path,
    timeout: Duration,
    config: &BenchConfig,
    progress: &ProgressBar,
) -> Result<BenchReport, CliError> {
    config.check()?;
    let mut clients = Vec::with_capacity(config.clients as usize);
    for _ in 0..config.clients {
        clients.push(connect(endpoint, timeout).await?);
    }
    let message = Arc::new(config.message());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let share = config.requests / u64::from(config.clients);
    let extra = config.requests % u64::from(config.clients);
    for (i, client) in (0u64..).zip(clients) {
        let count = share + u64::from(i < extra);
        let message = Arc::clone(&message);
        let progress = progress.clone();
        let pipeline = config.pipeline as usize;
        tasks.spawn(async move {
            if pipeline == 1 {
                one_at_a_time(client, &message, count, &progress).await
            } else {
                pipelined(client, &message, count, pipeline, &progress).await
            }
        });
    }
    let mut latency = histogram();
    while let Some(joined) = tasks.join_next().await {
        let client = joined.map_err(|e| CliError::Other(format!("a bench client failed: {e}")))?;
        let client = client.map_err(|e| CliError::talking(endpoint, e))?;
        latency.add(&client).map_err(|e| CliError::Other(format!("merging latencies: {e:?}")))?;
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    Ok(BenchReport { config: config.clone(), endpoint: endpoint.to_owned(), elapsed, latency })
}

async fn one_at_a_time(
    mut client: bunctl_ipc::IpcClient,
    message: &IpcMessage,
    count: u64,
    progress: &ProgressBar,
) -> Result<Histogram<u64>, IpcError> {
    let mut latency = histogram();
    for done in 1..=count {
        let sent = Instant::now();
        client.request(message).await?;
        latency.saturating_record(elapsed_ns(sent));
        if done % PROGRESS_BATCH == 0 {
            progress.inc(PROGRESS_BATCH);
        }
    }
    progress.inc(count % PROGRESS_BATCH);
    Ok(latency)
}

async fn pipelined(
    client: bunctl_ipc::IpcClient,
    message: &IpcMessage,
    count: u64,
    pipeline: usize,
    progress: &ProgressBar,
) -> Result<Histogram<u64>, IpcError> {
    let (conn, _) = client.into_connection();
    let (mut rx, mut tx) = conn.split();
    // A permit per request in flight; the receiver gives one back per reply.
    let window = Semaphore::new(pipeline);
    let sent_at = std::sync::Mutex::new(VecDeque::with_capacity(pipeline));
    let send = async {
        for _ in 0..count {
            if let Ok(permit) = window.acquire().await {
                permit.forget();
            }
            lock(&sent_at).push_back(Instant::now());
            tx.send(message).await?;
        }
        Ok::<_, IpcError>(())
    };
    let receive = async {
        let mut latency = histogram();
        for done in 1..=count {
            rx.recv().await?;
            let sent = lock(&sent_at).pop_front();
            window.add_permits(1);
            if let Some(sent) = sent {
                latency.saturating_record(elapsed_ns(sent));
            }
            if done % PROGRESS_BATCH == 0 {
                progress.inc(PROGRESS_BATCH);
            }
        }
        progress.inc(count % PROGRESS_BATCH);
        Ok::<_, IpcError>(latency)
    };
    // Both run in this one task: no wake-ups cross threads on the hot path.
    let ((), latency) = tokio::try_join!(send, receive)?;
    Ok(latency)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_a_few_significant_digits() {
        assert_eq!(human_duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(human_duration(Duration::from_nanos(31_240)), "31.2 µs");
        assert_eq!(human_duration(Duration::from_micros(4_071)), "4.07 ms");
        assert_eq!(human_duration(Duration::from_millis(2_500)), "2.50 s");
    }

    #[test]
    fn payload_picks_the_request() {
        let config = BenchConfig { clients: 1, requests: 1, payload: 0, pipeline: 1 };
        assert_eq!(config.message(), IpcMessage::List);
        let config = BenchConfig { payload: 3, ..config };
        assert_eq!(config.message(), IpcMessage::Status { name: Some("xxx".into()) });
        assert!(BenchConfig { payload: MAX_PAYLOAD + 1, ..config }.check().is_err());
    }
}

//! Helpers shared by the integration tests: a local HTTP server that records
//! what it receives, a metrics recorder, and a deterministic monitor.

// Each test binary uses some of these helpers, and a failed unwrap in a test
// helper is a failed test, as clippy.toml allows inside tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use zt_monitoring::{ManualClock, MemoryRecords, MemorySink, Monitor, MonitorBuilder};
use zt_types::Timestamp;

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Received {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A plain HTTP/1.1 server on 127.0.0.1 that answers each request with the
/// next status from a script (then 200), and hands every request to a channel.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) requests: Receiver<Received>,
}

impl Server {
    pub(crate) fn start(statuses: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = channel();
        let statuses = Arc::new(Mutex::new(statuses.into_iter()));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let tx = tx.clone();
                let statuses = statuses.clone();
                thread::spawn(move || serve(stream, &tx, &statuses));
            }
        });
        Self { addr, requests }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request, waiting up to 10 s.
    pub(crate) fn next(&self) -> Received {
        self.requests
            .recv_timeout(Duration::from_secs(10))
            .expect("a request within 10 s")
    }

    /// The next request whose path contains `needle`.
    pub(crate) fn next_matching(&self, predicate: impl Fn(&Received) -> bool) -> Received {
        loop {
            let request = self.next();
            if predicate(&request) {
                return request;
            }
        }
    }
}

fn serve(stream: TcpStream, tx: &Sender<Received>, statuses: &Mutex<std::vec::IntoIter<u16>>) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let mut body = Vec::new();
        if let Some(length) = headers
            .get("content-length")
            .and_then(|value| value.parse::<usize>().ok())
        {
            body.resize(length, 0);
            reader.read_exact(&mut body).unwrap();
        } else if headers
            .get("transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        let status = statuses.lock().unwrap().next().unwrap_or(200);
        tx.send(Received {
            method,
            path,
            headers,
            body,
        })
        .ok();
        let response =
            format!("HTTP/1.1 {status} Status\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{{}}");
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

pub(crate) fn start_time() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// A monitor on a manual clock with manual evaluation, a memory sink and no
/// tracing sink: every alert decision happens in `tick`.
pub(crate) fn deterministic(
    configure: impl FnOnce(MonitorBuilder) -> MonitorBuilder,
) -> (Monitor, ManualClock, MemoryRecords) {
    let clock = ManualClock::new(start_time());
    let sink = MemorySink::new();
    let records = sink.records();
    let builder = Monitor::builder()
        .clock(clock.clone())
        .without_tracing_sink()
        .sink(sink)
        .manual_evaluation();
    (configure(builder).build().unwrap(), clock, records)
}

/// Advances the clock second by second for `seconds`, ticking after each,
/// and returns every notification.
pub(crate) fn run_for(monitor: &Monitor, clock: &ManualClock, seconds: u64) -> Vec<zt_monitoring::Notification> {
    let mut all = Vec::new();
    for _ in 0..seconds {
        clock.advance(Duration::from_secs(1));
        all.extend(monitor.tick());
    }
    all
}

/// A `metrics` recorder that keeps counters, gauges and histograms by key.
#[derive(Default, Debug)]
pub(crate) struct TestRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
}

#[derive(Default, Debug)]
pub(crate) struct Samples(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn key_string(key: &metrics::Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|label| format!("{}={}", label.key(), label.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl TestRecorder {
    pub(crate) fn counter(&self, key: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |value| value.load(Ordering::SeqCst))
    }

    pub(crate) fn gauge(&self, key: &str) -> Option<f64> {
        self.gauges
            .lock()
            .unwrap()
            .get(key)
            .map(|value| f64::from_bits(value.load(Ordering::SeqCst)))
    }

    pub(crate) fn histogram(&self, key: &str) -> Vec<f64> {
        self.histograms
            .lock()
            .unwrap()
            .get(key)
            .map(|samples| samples.0.lock().unwrap().clone())
            .unwrap_or_default()
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let cell = self
            .counters
            .lock()
            .unwrap()
            .entry(key_string(key))
            .or_default()
            .clone();
        metrics::Counter::from_arc(cell)
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        let cell = self.gauges.lock().unwrap().entry(key_string(key)).or_default().clone();
        metrics::Gauge::from_arc(cell)
    }

    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        let cell = self
            .histograms
            .lock()
            .unwrap()
            .entry(key_string(key))
            .or_default()
            .clone();
        metrics::Histogram::from_arc(cell)
    }
}

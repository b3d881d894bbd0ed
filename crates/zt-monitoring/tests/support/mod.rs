//! Helpers shared by the integration tests: a local HTTP or HTTPS server that
//! records what it receives, certificate authorities made at test time, a
//! metrics recorder, and a deterministic monitor.

// Each test binary uses some of these helpers, and a failed unwrap in a test
// helper is a failed test, as clippy.toml allows inside tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
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

/// A certificate authority made at test time, which signs server
/// certificates for 127.0.0.1 and localhost.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Self {
            pem: certificate.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate, PEM-encoded, for the client to trust.
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// A server configuration with a certificate this CA signed for
    /// 127.0.0.1 and localhost.
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_for(&["127.0.0.1", "localhost"])
    }

    /// A server configuration with a certificate this CA signed for `names`.
    pub(crate) fn server_config_for(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let certificate = server_params(names).signed_by(&key, &self.issuer).unwrap();
        server_config(certificate.der().clone(), &key)
    }
}

fn server_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, "zt test server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

/// A server configuration with a self-signed certificate, which no CA vouches for.
pub(crate) fn self_signed_server_config() -> Arc<rustls::ServerConfig> {
    let key = KeyPair::generate().unwrap();
    let certificate = server_params(&["127.0.0.1", "localhost"]).self_signed(&key).unwrap();
    server_config(certificate.der().clone(), &key)
}

fn server_config(certificate: CertificateDer<'static>, key: &KeyPair) -> Arc<rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();
    Arc::new(config)
}

/// How a [`Server`] answers.
#[derive(Default)]
pub(crate) struct Setup {
    /// The status of each answer in turn, then 200.
    pub(crate) statuses: Vec<u16>,
    /// Extra headers on every answer.
    pub(crate) headers: Vec<(String, String)>,
    /// Serve HTTPS with this configuration.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Hold the answer to the first request, once it is recorded, until a
    /// message arrives or the sender is dropped.
    pub(crate) hold_first: Option<Receiver<()>>,
}

/// An HTTP/1.1 server on 127.0.0.1, plain or over TLS, that hands every
/// request to a channel and answers it as its [`Setup`] says.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) requests: Receiver<Received>,
    /// Errors of connections that ended before a request, such as a TLS
    /// handshake the client aborted.
    pub(crate) connection_errors: Receiver<String>,
    https: bool,
}

struct Answers {
    statuses: Mutex<std::vec::IntoIter<u16>>,
    headers: Vec<(String, String)>,
    hold: Mutex<Option<Receiver<()>>>,
}

impl Server {
    /// A plain HTTP server answering with `statuses`, then 200.
    pub(crate) fn start(statuses: Vec<u16>) -> Self {
        Self::with(Setup {
            statuses,
            ..Setup::default()
        })
    }

    /// An HTTPS server with `tls`, answering 200.
    pub(crate) fn start_tls(tls: Arc<rustls::ServerConfig>) -> Self {
        Self::with(Setup {
            tls: Some(tls),
            ..Setup::default()
        })
    }

    pub(crate) fn with(setup: Setup) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = channel();
        let (error_tx, connection_errors) = channel();
        let https = setup.tls.is_some();
        let answers = Arc::new(Answers {
            statuses: Mutex::new(setup.statuses.into_iter()),
            headers: setup.headers,
            hold: Mutex::new(setup.hold_first),
        });
        let tls = setup.tls;
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let tx = tx.clone();
                let error_tx = error_tx.clone();
                let answers = answers.clone();
                let tls = tls.clone();
                thread::spawn(move || match tls {
                    Some(config) => {
                        let connection = rustls::ServerConnection::new(config).unwrap();
                        serve(rustls::StreamOwned::new(connection, stream), &tx, &error_tx, &answers);
                    }
                    None => serve(stream, &tx, &error_tx, &answers),
                });
            }
        });
        Self {
            addr,
            requests,
            connection_errors,
            https,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// A Sentry DSN for project 1 on this server.
    pub(crate) fn dsn(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://public@{}/1", self.addr)
    }

    /// The next request, waiting up to 10 s.
    pub(crate) fn next(&self) -> Received {
        self.requests
            .recv_timeout(Duration::from_secs(10))
            .expect("a request within 10 s")
    }

    /// The next request that satisfies `predicate`.
    pub(crate) fn next_matching(&self, predicate: impl Fn(&Received) -> bool) -> Received {
        loop {
            let request = self.next();
            if predicate(&request) {
                return request;
            }
        }
    }

    /// The next connection error, waiting up to 10 s.
    pub(crate) fn next_connection_error(&self) -> String {
        self.connection_errors
            .recv_timeout(Duration::from_secs(10))
            .expect("a connection error within 10 s")
    }
}

fn serve(stream: impl Read + Write, tx: &Sender<Received>, errors: &Sender<String>, answers: &Answers) {
    let mut reader = BufReader::new(stream);
    let mut first = true;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) => {
                if first {
                    errors.send(error.to_string()).ok();
                }
                return;
            }
        }
        first = false;
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
        let status = answers.statuses.lock().unwrap().next().unwrap_or(200);
        tx.send(Received {
            method,
            path,
            headers,
            body,
        })
        .ok();
        let hold = answers.hold.lock().unwrap().take();
        if let Some(hold) = hold {
            hold.recv().ok();
        }
        let mut response =
            format!("HTTP/1.1 {status} Status\r\ncontent-length: 2\r\ncontent-type: application/json\r\n");
        for (name, value) in &answers.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n{}");
        let writer = reader.get_mut();
        if writer
            .write_all(response.as_bytes())
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
    }
}

/// The event items of a Sentry envelope: a header line, then item headers each
/// followed by a payload.
pub(crate) fn events(request: &Received) -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest: &[u8] = &request.body;
    let line = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let taken = rest[..end].to_vec();
        *rest = rest.get(end + 1..).unwrap_or_default();
        Some(taken)
    };
    line(&mut rest).expect("an envelope header");
    while let Some(header) = line(&mut rest) {
        if header.is_empty() {
            continue;
        }
        let header: Value = serde_json::from_slice(&header).unwrap();
        let payload = match header["length"].as_u64() {
            Some(length) => {
                let length = usize::try_from(length).unwrap();
                let payload = rest[..length].to_vec();
                rest = rest.get(length + 1..).unwrap_or_default();
                payload
            }
            None => line(&mut rest).unwrap_or_default(),
        };
        if header["type"] == "event" {
            out.push(serde_json::from_slice(&payload).unwrap());
        }
    }
    out
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every warning logged so far by any thread, such as a sink's worker: the
/// first call installs a global subscriber that keeps them.
pub(crate) fn warnings() -> String {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .init();
        buffer
    });
    String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned()
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

//! A small HTTP/1.1 server with bounds, over `httparse`, for the example
//! service and the stand-in identity provider's JWKS.
//!
//! A hostile client can hold only its own connection, and not for long:
//!
//! - one accept thread, and a thread per connection up to
//!   [`Limits::max_connections`]; beyond it a connection is answered 503 and
//!   closed;
//! - a request's header block and body must both arrive within
//!   [`Limits::request_timeout`] (5 s), counted from the connection's accept
//!   or, on a kept-alive connection, from the request's first byte; a slow
//!   client is answered 408 and dropped, whatever the pace of its bytes;
//! - the header block is bounded ([`Limits::max_header_bytes`], 16 KiB, and
//!   [`Limits::max_headers`], 64): 431, without reading the rest;
//! - the body is announced by `Content-Length` and bounded
//!   ([`Limits::max_body`], 64 KiB): a larger one is a 413 before any of it
//!   is read; `Transfer-Encoding` is refused (411 for `chunked`, 501 for
//!   others), so the body's end is never ambiguous;
//! - a panic in the handler is caught and answered with a generic 500; the
//!   server keeps serving.
//!
//! The handler is any `Fn(Request) -> Response`, so the server can be tested
//! on its own. The answers the server gives itself (400, 408, 411, 413, 431,
//! 500, 501, 503) are fixed `application/problem+json` bodies with a fresh
//! reference id, which the server's log records with the reason.
//!
//! ```no_run
//! use zt_examples::server::{Limits, Response, Server};
//!
//! let server = Server::bind("127.0.0.1:0", Limits::new(), |request| {
//!     Response::new(200).with_body("text/plain", format!("you asked for {}", request.path()))
//! })?;
//! println!("listening on http://{}", server.address());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zt_types::ReferenceId;

/// How much a connection may ask of the server. Each setter names its
/// default.
#[derive(Debug, Clone)]
pub struct Limits {
    max_connections: usize,
    max_header_bytes: usize,
    max_headers: usize,
    max_body: u64,
    request_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 128,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body: 64 * 1024,
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections served at once, each on its own thread. Default: 128.
    /// Beyond it a connection is answered 503 and closed. Each costs a
    /// thread, and up to its header and body bounds in memory.
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// The largest header block (request line and headers), in bytes.
    /// Default: 16 KiB. A larger one is a 431.
    #[must_use]
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes.max(64);
        self
    }

    /// The most header fields in a request. Default: 64. More is a 431.
    #[must_use]
    pub fn max_headers(mut self, headers: usize) -> Self {
        self.max_headers = headers.max(1);
        self
    }

    /// The largest body, in bytes. Default: 64 KiB. A larger
    /// `Content-Length` is a 413, answered before any of the body is read.
    #[must_use]
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// How long a request's header block and body together may take to
    /// arrive. Default: 5 s. A client slower than that is answered 408 and
    /// dropped; a longer time lets slow clients hold connections longer.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = bounded(timeout);
        self
    }

    /// How long a kept-alive connection may wait for its next request.
    /// Default: 5 s. It is then closed without an answer.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = bounded(timeout);
        self
    }

    /// How long writing an answer may block. Default: 5 s.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = bounded(timeout);
        self
    }
}

/// A timeout between 1 ms and a day: zero would mean "no timeout" to the
/// socket, and a day is past any use while `Instant` arithmetic stays far
/// from overflow.
fn bounded(timeout: Duration) -> Duration {
    timeout.clamp(Duration::from_millis(1), Duration::from_secs(24 * 3600))
}

/// A request whose header block and body have arrived whole.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    peer: SocketAddr,
}

impl Request {
    /// The method, such as `POST`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent, path and query.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path: the target before any `?`.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every value of the header `name` (any case), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body: exactly `Content-Length` bytes, empty without it.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The socket peer.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// An answer. The server adds `Content-Length` and `Connection`.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header. One whose name or value holds a control character
    /// (which could split the answer), or that the server sets itself
    /// (`Content-Length`, `Connection`, `Transfer-Encoding`), is left out.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let safe = !name.is_empty()
            && name.chars().all(token)
            && !value.chars().any(|c| c.is_control() && c != '\t')
            && !["content-length", "connection", "transfer-encoding"]
                .iter()
                .any(|own| name.eq_ignore_ascii_case(own));
        if safe {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Sets the body and its `Content-Type`.
    #[must_use]
    pub fn with_body(self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut response = self.with_header("Content-Type", content_type);
        response.body = body.into();
        response
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The value of the header `name` (any case), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The server's own generic `application/problem+json` answer for
    /// `status`, with a fresh reference id: nothing about the request or
    /// the server. Returns the reference too, for the log. The statuses the
    /// server answers itself (400, 408, 411, 413, 431, 501, 503) have their
    /// own title; any other is told as an internal error.
    pub fn problem(status: u16) -> (Self, ReferenceId) {
        let (title, detail) = match status {
            400 => ("Bad request", "The request could not be understood."),
            408 => ("Request timeout", "The request did not arrive in time."),
            411 => ("Length required", "Send the body with a Content-Length."),
            413 => ("Request too large", "The request is larger than allowed."),
            431 => (
                "Request header fields too large",
                "The request's headers are larger than allowed.",
            ),
            501 => (
                "Not implemented",
                "The request uses a feature the service does not support.",
            ),
            503 => (
                "Service unavailable",
                "The service is temporarily unavailable. Try again later.",
            ),
            _ => (
                "Internal error",
                "Something went wrong on our side. Quote the reference id if you contact support.",
            ),
        };
        let reference = ReferenceId::new();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": format!("urn:uuid:{reference}"),
        });
        let response = Self::new(status).with_body(zt_errors::PROBLEM_CONTENT_TYPE, body.to_string());
        (response, reference)
    }
}

/// What the server runs for each request.
type Handler = dyn Fn(Request) -> Response + Send + Sync;

/// A running server. Dropping it stops accepting, wakes the connections
/// that wait for a request, lets the handlers at work answer, and waits for
/// them (10 s at most).
pub struct Server {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

/// What the accept thread and the connections share.
struct Shared {
    limits: Limits,
    handler: Box<Handler>,
    stop: AtomicBool,
    connections: Mutex<Connections>,
    /// Signalled when a connection ends.
    ended: Condvar,
}

/// The open connections, each with a handle to wake it on stop.
#[derive(Default)]
struct Connections {
    serving: usize,
    refusing: usize,
    next: u64,
    open: HashMap<u64, TcpStream>,
}

/// Connections beyond the cap get a 503 from a short-lived thread of their
/// own, up to this many at once; beyond those they are closed unanswered.
const MAX_REFUSING: usize = 16;

/// After an answer that ends a connection, at most this much of what the
/// client still sends is read and dropped, so that closing does not reset
/// the connection before the client reads the answer.
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(1);

/// How long `Drop` waits for connections to end.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Bytes read at a time.
const CHUNK: usize = 8 * 1024;

impl Server {
    /// Listens on `address` (port 0 picks a free one) and serves each
    /// request with `handler`.
    pub fn bind(
        address: impl ToSocketAddrs,
        limits: Limits,
        handler: impl Fn(Request) -> Response + Send + Sync + 'static,
    ) -> io::Result<Self> {
        Self::start(TcpListener::bind(address)?, limits, handler)
    }

    /// Serves requests from `listener` with `handler`.
    pub fn start(
        listener: TcpListener,
        limits: Limits,
        handler: impl Fn(Request) -> Response + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            limits,
            handler: Box::new(handler),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Connections::default()),
            ended: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("zt-http-accept".to_owned())
                .spawn(move || accept(&listener, &shared))?
        };
        Ok(Self {
            address,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // The accept thread blocks in `accept`: a connection of our own
            // wakes it to see the flag. Should that fail, it is left behind
            // rather than waited for forever.
            if TcpStream::connect_timeout(&wake_address(self.address), Duration::from_secs(1)).is_ok() {
                let _ = acceptor.join();
            }
        }
        let mut connections = self.shared.lock();
        // Waiting reads see the end of their stream; handlers at work still
        // write their answers.
        for stream in connections.open.values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
        let until = Instant::now() + STOP_GRACE;
        while connections.serving + connections.refusing > 0 {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            connections = match self.shared.ended.wait_timeout(connections, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// Where to connect to reach a listener on `address`: loopback for an
/// unspecified address.
fn wake_address(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), address.port()),
        _ => address,
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Connections> {
        // The counts stay consistent: no code that holds the lock panics.
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's place among the open ones; it gives it back when dropped,
/// even when its thread unwinds.
struct Slot {
    shared: Arc<Shared>,
    id: u64,
    refusing: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut connections = self.shared.lock();
        connections.open.remove(&self.id);
        if self.refusing {
            connections.refusing = connections.refusing.saturating_sub(1);
        } else {
            connections.serving = connections.serving.saturating_sub(1);
        }
        drop(connections);
        self.shared.ended.notify_all();
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(target: "zt::http", error = %error, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let Some(slot) = admit(shared, handle) else {
            tracing::warn!(target: "zt::http", peer = %peer, "connection closed unanswered: too many connections");
            continue;
        };
        let spawned = std::thread::Builder::new()
            .name("zt-http-conn".to_owned())
            .spawn(move || {
                if slot.refusing {
                    refuse(stream, peer, &slot.shared.limits);
                } else {
                    serve(stream, peer, &slot.shared);
                }
                drop(slot);
            });
        if let Err(error) = spawned {
            // The closure, its slot and its stream are dropped with the error.
            tracing::warn!(target: "zt::http", error = %error, "no thread for a connection");
        }
    }
}

/// Registers a new connection: served, refused with a 503, or (`None`)
/// closed unanswered.
fn admit(shared: &Arc<Shared>, handle: TcpStream) -> Option<Slot> {
    let mut connections = shared.lock();
    let refusing = if connections.serving < shared.limits.max_connections {
        connections.serving += 1;
        false
    } else if connections.refusing < MAX_REFUSING {
        connections.refusing += 1;
        true
    } else {
        return None;
    };
    let id = connections.next;
    connections.next = connections.next.wrapping_add(1);
    connections.open.insert(id, handle);
    Some(Slot {
        shared: Arc::clone(shared),
        id,
        refusing,
    })
}

fn refuse(mut stream: TcpStream, peer: SocketAddr, limits: &Limits) {
    let (response, reference) = Response::problem(503);
    tracing::warn!(target: "zt::http", peer = %peer, reference_id = %reference, "refused a connection: too many connections");
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let response = response.with_header("Retry-After", "1");
    if write_response(&mut stream, &response, false, false).is_ok() {
        linger_close(&stream);
    }
}

/// Why a request is answered by the server instead of the handler.
enum Refusal {
    /// Answer with this status, then close.
    Status(u16, &'static str),
    /// Close without an answer: the client left, or waited idle.
    Close,
}

/// A connection's stream and the bytes read from it but not yet used.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    peer: SocketAddr,
}

impl Connection {
    /// Reads at most `most` more bytes before `deadline`. `Ok(0)` is the end
    /// of the stream; a missed deadline is `TimedOut`.
    fn fill(&mut self, most: usize, deadline: Instant) -> io::Result<usize> {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or(io::ErrorKind::TimedOut)?;
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0_u8; CHUNK];
        let most = most.min(CHUNK);
        let read = loop {
            match self.stream.read(&mut chunk[..most]) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // A read timeout is `WouldBlock` on Unix and `TimedOut` on Windows.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Err(io::ErrorKind::TimedOut.into()),
                other => break other?,
            }
        };
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(read)
    }
}

fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let limits = &shared.limits;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let mut connection = Connection {
        stream,
        buffer: Vec::new(),
        peer,
    };
    // The first request's clock starts at the accept.
    let mut deadline = Some(Instant::now() + limits.request_timeout);
    loop {
        let (request, keep_alive) = match read_request(&mut connection, limits, deadline) {
            Ok(read) => read,
            Err(Refusal::Close) => return,
            Err(Refusal::Status(status, reason)) => {
                let (response, reference) = Response::problem(status);
                tracing::info!(target: "zt::http", peer = %peer, status, reference_id = %reference, reason, "request refused");
                if write_response(&mut connection.stream, &response, false, false).is_ok() {
                    linger_close(&connection.stream);
                }
                return;
            }
        };
        let head = request.method.eq_ignore_ascii_case("HEAD");
        let handler = &shared.handler;
        let (response, panicked) = match catch_unwind(AssertUnwindSafe(|| handler(request))) {
            Ok(response) => (response, false),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a panic without a message");
                let (response, reference) = Response::problem(500);
                tracing::error!(target: "zt::http", peer = %peer, reference_id = %reference, panic = message, "the handler panicked");
                (response, true)
            }
        };
        // After a panic the connection ends, in case its state went wrong
        // with it; the server goes on.
        let keep_alive = keep_alive && !panicked && !shared.stop.load(Ordering::SeqCst);
        if write_response(&mut connection.stream, &response, keep_alive, head).is_err() {
            return;
        }
        if !keep_alive {
            linger_close(&connection.stream);
            return;
        }
        // The next request's clock starts at its first byte.
        deadline = (!connection.buffer.is_empty()).then(|| Instant::now() + limits.request_timeout);
    }
}

/// Reads one request. `deadline` bounds the whole request; `None` waits up
/// to the idle timeout for its first byte, then starts the request's clock.
/// Returns the request and whether the client keeps the connection open.
fn read_request(
    connection: &mut Connection,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<(Request, bool), Refusal> {
    let idle_until = Instant::now() + limits.idle_timeout;
    let mut deadline = deadline;
    let mut scanned = 0;
    let (header_len, head) = loop {
        if let Some(end) = header_end(&connection.buffer, scanned) {
            let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
            let mut parsed = httparse::Request::new(&mut fields);
            match parsed.parse(&connection.buffer[..end]) {
                Ok(httparse::Status::Complete(len)) => break (len, Head::of(&parsed)?),
                // Blank lines before the request line, which HTTP allows.
                Ok(httparse::Status::Partial) => scanned = end,
                Err(httparse::Error::TooManyHeaders) => return Err(Refusal::Status(431, "too many headers")),
                Err(_) => return Err(Refusal::Status(400, "malformed header block")),
            }
        } else {
            scanned = connection.buffer.len().saturating_sub(2);
        }
        let room = limits.max_header_bytes.saturating_sub(connection.buffer.len());
        if room == 0 {
            return Err(Refusal::Status(431, "header block too large"));
        }
        let waiting = connection.buffer.is_empty();
        match connection.fill(room, deadline.unwrap_or(idle_until)) {
            Ok(0) => return Err(Refusal::Close),
            Ok(_) => {
                deadline.get_or_insert_with(|| Instant::now() + limits.request_timeout);
            }
            Err(error) if error.kind() == io::ErrorKind::TimedOut && !waiting => {
                return Err(Refusal::Status(408, "the header block came too slowly"));
            }
            // Nothing sent at all (a connection left idle), or the client
            // went: closed unanswered.
            Err(_) => return Err(Refusal::Close),
        }
    };
    let Head {
        method,
        target,
        http11,
        headers,
    } = head;
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
        peer: connection.peer,
    };
    let length = body_length(&request, limits.max_body)?;
    connection.buffer.drain(..header_len);

    let expects_continue = request
        .header("Expect")
        .is_some_and(|expect| expect.eq_ignore_ascii_case("100-continue"));
    let wanted = usize::try_from(length).map_err(|_| Refusal::Status(413, "body too large"))?;
    if expects_continue && http11 && connection.buffer.len() < wanted {
        let _ = connection.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    // The deadline was set when the first byte arrived.
    let deadline = deadline.unwrap_or_else(|| Instant::now() + limits.request_timeout);
    while connection.buffer.len() < wanted {
        let missing = wanted.saturating_sub(connection.buffer.len());
        match connection.fill(missing, deadline) {
            Ok(0) => return Err(Refusal::Close),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                return Err(Refusal::Status(408, "the body came too slowly"));
            }
            Err(_) => return Err(Refusal::Close),
        }
    }
    // What follows the body stays for the next request.
    request.body = connection.buffer.drain(..wanted).collect();
    let connection_tokens = |token: &str| {
        request
            .header_values("Connection")
            .flat_map(|value| value.split(','))
            .any(|value| value.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = if http11 {
        !connection_tokens("close")
    } else {
        connection_tokens("keep-alive")
    };
    Ok((request, keep_alive))
}

/// A parsed header block, owned.
struct Head {
    method: String,
    target: String,
    http11: bool,
    headers: Vec<(String, String)>,
}

impl Head {
    fn of(parsed: &httparse::Request<'_, '_>) -> Result<Self, Refusal> {
        let mut headers = Vec::with_capacity(parsed.headers.len());
        for field in parsed.headers.iter() {
            let Ok(value) = std::str::from_utf8(field.value) else {
                return Err(Refusal::Status(400, "a header value is not UTF-8"));
            };
            headers.push((field.name.to_owned(), value.trim().to_owned()));
        }
        Ok(Self {
            method: parsed.method.unwrap_or_default().to_owned(),
            target: parsed.path.unwrap_or_default().to_owned(),
            http11: parsed.version == Some(1),
            headers,
        })
    }
}

/// The end of the header block (just past its blank line) in `buffer`,
/// looking at line ends from `from` on.
fn header_end(buffer: &[u8], from: usize) -> Option<usize> {
    (from..buffer.len()).find_map(|at| match buffer.get(at..) {
        Some([b'\n', b'\n', ..]) => Some(at + 2),
        Some([b'\n', b'\r', b'\n', ..]) => Some(at + 3),
        _ => None,
    })
}

/// The body's length from `Content-Length` (0 without one), refusing what
/// would make its end ambiguous or that is larger than `max`.
fn body_length(request: &Request, max: u64) -> Result<u64, Refusal> {
    if let Some(coding) = request.header("Transfer-Encoding") {
        return Err(if coding.eq_ignore_ascii_case("chunked") {
            Refusal::Status(411, "chunked body")
        } else {
            Refusal::Status(501, "unsupported transfer coding")
        });
    }
    let mut length = None;
    for value in request.header_values("Content-Length") {
        if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(Refusal::Status(400, "malformed Content-Length"));
        }
        // Only digits: the one way to fail is a number too large for u64.
        let value: u64 = value.parse().map_err(|_| Refusal::Status(413, "body too large"))?;
        if length.is_some_and(|length| length != value) {
            return Err(Refusal::Status(400, "conflicting Content-Length"));
        }
        length = Some(value);
    }
    let length = length.unwrap_or(0);
    if length > max {
        return Err(Refusal::Status(413, "body too large"));
    }
    Ok(length)
}

fn write_response(stream: &mut TcpStream, response: &Response, keep_alive: bool, head: bool) -> io::Result<()> {
    use std::fmt::Write as _;
    let mut text = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    // No body at all in a 1xx, 204 or 304 answer.
    let bodyless = matches!(response.status, 100..=199 | 204 | 304);
    if !bodyless {
        let _ = write!(text, "Content-Length: {}\r\n", response.body.len());
    }
    text.push_str(if keep_alive {
        "Connection: keep-alive\r\n"
    } else {
        "Connection: close\r\n"
    });
    for (name, value) in &response.headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    if !bodyless && !head {
        bytes.extend_from_slice(&response.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Ends a connection after its last answer: stops writing, then reads and
/// drops what the client still sends, for a bounded time and size, so that
/// the close does not reset the connection and lose the answer.
fn linger_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + LINGER_TIME;
    let mut sink = [0_u8; CHUNK];
    let mut dropped = 0_usize;
    let mut reader = stream;
    while dropped < LINGER_BYTES {
        let Some(left) = until
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
        else {
            return;
        };
        if reader.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(read) => dropped = dropped.saturating_add(read),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn echo(request: Request) -> Response {
        if request.path() == "/panic" {
            panic!("the handler broke: secret-internal-detail");
        }
        Response::new(200).with_body("text/plain", request.body)
    }

    /// Sends `raw` on a new connection and reads the answer's status and
    /// body; the connection is closed by the server or after 5 s.
    fn exchange(address: SocketAddr, raw: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(raw).unwrap();
        read_answer(&mut BufReader::new(stream))
    }

    fn read_answer(reader: &mut BufReader<TcpStream>) -> (u16, String) {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8(body).unwrap())
    }

    /// As [`exchange`], trying again while the server answers 503: a
    /// connection's slot is given back a moment after the client has read
    /// its answer.
    fn exchange_when_admitted(address: SocketAddr, raw: &[u8]) -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, body) = exchange(address, raw);
            if status != 503 || Instant::now() > deadline {
                return (status, body);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_panicking_handler_is_a_generic_500_and_the_server_goes_on() {
        // Fewer slots than panics: a panic must give its slot back.
        let server = Server::bind("127.0.0.1:0", Limits::new().max_connections(2), echo).unwrap();
        for _ in 0..6 {
            let (status, body) = exchange_when_admitted(server.address(), b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(status, 500);
            let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                (problem["status"].as_u64(), problem["title"].as_str()),
                (Some(500), Some("Internal error"))
            );
            assert!(!body.contains("secret") && !body.contains("panic"), "{body}");
        }
        let (status, body) =
            exchange_when_admitted(server.address(), b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!((status, body.as_str()), (200, "ok"));
    }

    #[test]
    fn kept_alive_connections_serve_pipelined_requests_in_order() {
        let server = Server::bind("127.0.0.1:0", Limits::new(), echo).unwrap();
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
            .write_all(
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nonePOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwo",
            )
            .unwrap();
        let mut reader = BufReader::new(stream);
        assert_eq!(read_answer(&mut reader), (200, "one".to_owned()));
        assert_eq!(read_answer(&mut reader), (200, "two".to_owned()));
    }

    #[test]
    fn a_client_that_expects_100_continue_is_told_to_go_on() {
        let server = Server::bind("127.0.0.1:0", Limits::new(), echo).unwrap();
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
            .write_all(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
        reader.read_line(&mut line).unwrap();
        stream.write_all(b"ok").unwrap();
        assert_eq!(read_answer(&mut reader), (200, "ok".to_owned()));
    }

    #[test]
    fn oversized_and_ambiguous_requests_never_reach_the_handler() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let limits = Limits::new().max_header_bytes(1024).max_headers(8).max_body(16);
        let server = Server::bind("127.0.0.1:0", limits, move |request| {
            counted.fetch_add(1, Ordering::SeqCst);
            echo(request)
        })
        .unwrap();
        let many_headers: String = (0..9).map(|n| format!("X-{n}: y\r\n")).collect();
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (
                format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(2000)).into_bytes(),
                431,
            ),
            (format!("GET / HTTP/1.1\r\n{many_headers}\r\n").into_bytes(), 431),
            (b"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n".to_vec(), 413),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
                413,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
                400,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc".to_vec(), 400),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
                411,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(),
                501,
            ),
            (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
        ];
        for (raw, status) in cases {
            let (answered, body) = exchange(server.address(), &raw);
            assert_eq!(
                answered,
                status,
                "{}",
                String::from_utf8_lossy(&raw[..raw.len().min(80)])
            );
            let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(problem["status"].as_u64(), Some(u64::from(status)));
            assert!(problem["instance"].as_str().unwrap().starts_with("urn:uuid:"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let (status, body) = exchange(server.address(), b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!((status, body.as_str()), (200, "ok"));
    }

    #[test]
    fn a_slow_request_is_a_408_and_dropping_the_server_is_prompt() {
        let limits = Limits::new().request_timeout(Duration::from_millis(300));
        let server = Server::bind("127.0.0.1:0", limits, echo).unwrap();
        let started = Instant::now();
        let (status, _) = exchange(server.address(), b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
        assert_eq!(status, 408);
        assert!(started.elapsed() < Duration::from_secs(3));

        // With the default 5 s: a connection that never sends, and one
        // inside a header block.
        let server = Server::bind("127.0.0.1:0", Limits::new(), echo).unwrap();
        let idle = TcpStream::connect(server.address()).unwrap();
        let mut partial = TcpStream::connect(server.address()).unwrap();
        partial.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let stopping = Instant::now();
        drop(server);
        assert!(stopping.elapsed() < Duration::from_secs(2), "{:?}", stopping.elapsed());
        drop((idle, partial));
    }

    #[test]
    fn connections_beyond_the_cap_are_a_503() {
        let server = Server::bind("127.0.0.1:0", Limits::new().max_connections(2), echo).unwrap();
        let held: Vec<_> = (0..2).map(|_| TcpStream::connect(server.address()).unwrap()).collect();
        // Let the accept thread count both.
        std::thread::sleep(Duration::from_millis(100));
        let (status, body) = exchange(server.address(), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(status, 503, "{body}");
        drop(held);
        let (status, _) = exchange_when_admitted(server.address(), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200, "the slots were not given back");
    }

    #[test]
    fn response_headers_cannot_be_split() {
        let response = Response::new(200)
            .with_header("X-Ok", "fine")
            .with_header("X-Evil", "a\r\nSet-Cookie: b")
            .with_header("Bad Name", "x")
            .with_header("Content-Length", "1");
        assert_eq!(response.header("X-Ok"), Some("fine"));
        assert_eq!(response.headers.len(), 1);
    }

    #[test]
    fn the_end_of_a_header_block_is_found_across_reads() {
        assert_eq!(header_end(b"GET / HTTP/1.1\r\n\r\nbody", 0), Some(18));
        assert_eq!(header_end(b"GET / HTTP/1.1\n\nbody", 0), Some(16));
        assert_eq!(header_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        let full = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        assert_eq!(header_end(full, full.len() - 4), Some(full.len()));
    }
}

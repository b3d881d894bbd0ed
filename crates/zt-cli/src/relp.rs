//! A RELP client (the Reliable Event Logging Protocol that rsyslog's
//! `imrelp` speaks): syslog messages that the collector acknowledges one by
//! one, so that a row counts as shipped only once the collector has it.
//!
//! Every frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The client opens
//! a session (`open`, with its offers), sends each message as a `syslog`
//! command, and the server answers each transaction with `rsp` and a status
//! (`200 OK`). Frames are pipelined up to a window; after a lost connection
//! the messages not yet acknowledged are sent again on a new session. A
//! message whose acknowledgement was lost with the connection is therefore
//! delivered twice: at least once, never lost.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::syslog::{NETWORK_TIMEOUT, connect};

/// How many frames may wait for their acknowledgement.
const WINDOW: usize = 128;

/// The highest transaction number; the next is 1 again.
const MAX_TXNR: u32 = 999_999_999;

/// The largest response accepted from a server.
const MAX_RESPONSE: usize = 64 * 1024;

/// Why a batch was not fully delivered.
#[derive(Debug)]
pub(crate) enum RelpError {
    /// The connection failed or closed: reconnect and send the rest again.
    Connection(io::Error),
    /// The server refused a message (a status other than 200): sending it
    /// again would be refused again.
    Refused(String),
}

impl std::fmt::Display for RelpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connection(error) => write!(f, "{error}"),
            Self::Refused(status) => write!(f, "the RELP server refused a message: {status}"),
        }
    }
}

/// One received frame.
#[derive(Debug)]
struct Frame {
    txnr: u32,
    command: String,
    data: Vec<u8>,
}

/// An open RELP session.
#[derive(Debug)]
struct Session {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    next_txnr: u32,
}

/// A RELP client that reconnects on demand.
#[derive(Debug)]
pub(crate) struct RelpClient {
    address: String,
    session: Option<Session>,
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RELP protocol error: {what}"))
}

impl RelpClient {
    /// Opens a session with `address` at once, so a wrong address fails at start.
    pub(crate) fn connect(address: &str) -> io::Result<Self> {
        Ok(Self {
            address: address.to_owned(),
            session: Some(Session::open(address)?),
        })
    }

    /// Sends `messages` in order and waits for every acknowledgement. On
    /// failure it returns how many, from the first, were acknowledged.
    pub(crate) fn send(&mut self, messages: &[String]) -> Result<(), (usize, RelpError)> {
        let session = match &mut self.session {
            Some(session) => session,
            None => self
                .session
                .insert(Session::open(&self.address).map_err(|e| (0, RelpError::Connection(e)))?),
        };
        let mut acknowledged = 0;
        for window in messages.chunks(WINDOW) {
            match session.send_window(window) {
                Ok(()) => acknowledged += window.len(),
                Err((done, error)) => {
                    if matches!(error, RelpError::Connection(_)) {
                        self.session = None;
                    }
                    return Err((acknowledged + done, error));
                }
            }
        }
        Ok(())
    }
}

impl Drop for RelpClient {
    fn drop(&mut self) {
        if let Some(session) = &mut self.session {
            // Best effort: the server also copes with a dropped connection.
            let _ = session.close();
        }
    }
}

impl Session {
    fn open(address: &str) -> io::Result<Self> {
        let stream = connect(address)?;
        stream.set_read_timeout(Some(NETWORK_TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut session = Self {
            writer: stream,
            reader,
            next_txnr: 1,
        };
        let offers = format!(
            "relp_version=0\nrelp_software=zt,{},https://github.com/zt-rs/zt\ncommands=syslog",
            env!("CARGO_PKG_VERSION")
        );
        let txnr = session.write_frame("open", offers.as_bytes())?;
        session.writer.flush()?;
        let frame = session.read_frame()?;
        if frame.command != "rsp" || frame.txnr != txnr {
            return Err(protocol_error("the server did not answer the open command"));
        }
        let response = String::from_utf8_lossy(&frame.data);
        if !response.starts_with("200") {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "the RELP server refused the session: {}",
                    zt_types::neutralize(response.lines().next().unwrap_or_default())
                ),
            ));
        }
        let offers_syslog = response
            .lines()
            .filter_map(|line| line.strip_prefix("commands="))
            .any(|commands| commands.split(',').any(|command| command == "syslog"));
        if !offers_syslog {
            return Err(protocol_error("the server does not offer the syslog command"));
        }
        Ok(session)
    }

    /// The next transaction number.
    fn take_txnr(&mut self) -> u32 {
        let txnr = self.next_txnr;
        self.next_txnr = if txnr >= MAX_TXNR { 1 } else { txnr + 1 };
        txnr
    }

    /// Appends one frame to `out` and returns its transaction number.
    fn frame(&mut self, out: &mut Vec<u8>, command: &str, data: &[u8]) -> u32 {
        let txnr = self.take_txnr();
        out.extend_from_slice(format!("{txnr} {command} {}", data.len()).as_bytes());
        if !data.is_empty() {
            out.push(b' ');
            out.extend_from_slice(data);
        }
        out.push(b'\n');
        txnr
    }

    /// Writes one frame and returns its transaction number.
    fn write_frame(&mut self, command: &str, data: &[u8]) -> io::Result<u32> {
        let mut out = Vec::new();
        let txnr = self.frame(&mut out, command, data);
        self.writer.write_all(&out)?;
        Ok(txnr)
    }

    /// Sends up to a window of messages, then reads their acknowledgements.
    fn send_window(&mut self, messages: &[String]) -> Result<(), (usize, RelpError)> {
        let connection = |done, error| (done, RelpError::Connection(error));
        let mut pending = std::collections::VecDeque::with_capacity(messages.len());
        // Frames go out as one write, so a window costs one round trip.
        let mut batch = Vec::new();
        for message in messages {
            let txnr = self.frame(&mut batch, "syslog", message.as_bytes());
            pending.push_back(txnr);
        }
        self.writer.write_all(&batch).map_err(|e| connection(0, e))?;
        let mut acknowledged = 0;
        while let Some(&expected) = pending.front() {
            let frame = self.read_frame().map_err(|e| connection(acknowledged, e))?;
            match frame.command.as_str() {
                "rsp" => {}
                "serverclose" => {
                    return Err(connection(
                        acknowledged,
                        io::Error::new(io::ErrorKind::ConnectionAborted, "the RELP server closed the session"),
                    ));
                }
                _ => {
                    return Err(connection(
                        acknowledged,
                        protocol_error("unexpected command from the server"),
                    ));
                }
            }
            // librelp answers in order; anything else is a protocol error.
            if frame.txnr != expected {
                return Err(connection(acknowledged, protocol_error("acknowledgement out of order")));
            }
            let status = String::from_utf8_lossy(&frame.data);
            if !status.starts_with("200") {
                let line = zt_types::neutralize(status.lines().next().unwrap_or_default()).into_owned();
                return Err((acknowledged, RelpError::Refused(line)));
            }
            pending.pop_front();
            acknowledged += 1;
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        self.write_frame("close", b"")?;
        self.writer.flush()
    }

    fn read_frame(&mut self) -> io::Result<Frame> {
        let txnr = self.read_token(b' ', 9)?;
        let command = self.read_token(b' ', 32)?;
        let (length, terminator) = self.read_number()?;
        let txnr: u32 = txnr.parse().map_err(|_| protocol_error("bad transaction number"))?;
        if length > MAX_RESPONSE {
            return Err(protocol_error("response too long"));
        }
        let mut data = vec![0; length];
        if terminator == b' ' {
            self.reader.read_exact(&mut data)?;
            let mut trailer = [0u8; 1];
            self.reader.read_exact(&mut trailer)?;
            if trailer[0] != b'\n' {
                return Err(protocol_error("frame without its trailer"));
            }
        } else if length != 0 {
            return Err(protocol_error("data length without data"));
        }
        Ok(Frame { txnr, command, data })
    }

    /// Reads bytes up to `end`, at most `max` of them, as ASCII text.
    fn read_token(&mut self, end: u8, max: usize) -> io::Result<String> {
        let mut token = Vec::new();
        loop {
            let byte = self.read_byte()?;
            if byte == end {
                break;
            }
            if token.len() == max || !byte.is_ascii_graphic() {
                return Err(protocol_error("malformed frame header"));
            }
            token.push(byte);
        }
        if token.is_empty() {
            return Err(protocol_error("empty frame header field"));
        }
        Ok(String::from_utf8_lossy(&token).into_owned())
    }

    /// Reads the data length and what follows it: a space before data, or
    /// the trailer.
    fn read_number(&mut self) -> io::Result<(usize, u8)> {
        let mut digits = String::new();
        loop {
            let byte = self.read_byte()?;
            match byte {
                b'0'..=b'9' if digits.len() < 9 => digits.push(char::from(byte)),
                b' ' | b'\n' if !digits.is_empty() => {
                    let length = digits.parse().map_err(|_| protocol_error("bad data length"))?;
                    return Ok((length, byte));
                }
                _ => return Err(protocol_error("bad data length")),
            }
        }
    }

    fn read_byte(&mut self) -> io::Result<u8> {
        let buffer = self.reader.fill_buf()?;
        let Some(&byte) = buffer.first() else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the RELP server closed the connection",
            ));
        };
        self.reader.consume(1);
        Ok(byte)
    }
}

//! PostgreSQL's binary COPY format, both ways: the batch writer streams its
//! rows in with each MAC computed as the row is encoded, and the verifier
//! reads chain ranges out without diesel's row-at-a-time machinery.
//!
//! The format: a signature, two 32-bit header words, then per row a 16-bit
//! field count and per field a 32-bit length (-1 for NULL) and the field in
//! the type's binary send format; a field count of -1 ends the stream.

use std::io::{BufRead, Write};
use std::net::IpAddr;

use diesel::data_types::PgTimestamp;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::AstPass;
use ipnetwork::IpNetwork;
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};
use crate::pg::Row;
use crate::schema::pg::audit_logs;
use crate::stored::RawText;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// PostgreSQL's address family numbers in inet's binary form.
const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

/// How much encoded data is handed to libpq at a time: libpq sends in 8 KiB
/// pieces, and the server waits for the first, so a larger piece only
/// delays the start of every batch.
const FLUSH_BYTES: usize = 8 * 1024;

/// Encodes rows into a buffer and hands it to the COPY sink in large pieces.
pub(crate) struct CopyEncoder<'w> {
    sink: &'w mut dyn Write,
    buffer: Vec<u8>,
}

impl<'w> CopyEncoder<'w> {
    /// Starts the stream: writes the signature and header.
    pub(crate) fn start(sink: &'w mut dyn Write) -> Self {
        let mut buffer = Vec::with_capacity(FLUSH_BYTES + 4096);
        buffer.extend_from_slice(SIGNATURE);
        buffer.extend_from_slice(&0i32.to_be_bytes());
        buffer.extend_from_slice(&0i32.to_be_bytes());
        Self { sink, buffer }
    }

    /// Starts a row of `fields` fields; flushes what is buffered first when
    /// it is large enough.
    pub(crate) fn row(&mut self, fields: i16) -> std::io::Result<()> {
        if self.buffer.len() >= FLUSH_BYTES {
            self.sink.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        self.buffer.extend_from_slice(&fields.to_be_bytes());
        Ok(())
    }

    fn length(&mut self, length: usize) {
        // Every field zt writes is bounded far below 2 GiB.
        let length = i32::try_from(length).unwrap_or(i32::MAX);
        self.buffer.extend_from_slice(&length.to_be_bytes());
    }

    pub(crate) fn null(&mut self) {
        self.buffer.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub(crate) fn int2(&mut self, value: i16) {
        self.length(2);
        self.buffer.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn int8(&mut self, value: i64) {
        self.length(8);
        self.buffer.extend_from_slice(&value.to_be_bytes());
    }

    /// text, bytea and uuid: the bytes themselves.
    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.length(value.len());
        self.buffer.extend_from_slice(value);
    }

    pub(crate) fn optional_text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => self.bytes(text.as_bytes()),
            None => self.null(),
        }
    }

    /// jsonb: a version byte, then the text.
    pub(crate) fn jsonb(&mut self, text: &str) {
        self.length(text.len() + 1);
        self.buffer.push(1);
        self.buffer.extend_from_slice(text.as_bytes());
    }

    /// A host address as inet.
    pub(crate) fn inet(&mut self, ip: Option<IpAddr>) {
        match ip {
            Some(IpAddr::V4(v4)) => {
                self.length(8);
                self.buffer.extend_from_slice(&[PGSQL_AF_INET, 32, 0, 4]);
                self.buffer.extend_from_slice(&v4.octets());
            }
            Some(IpAddr::V6(v6)) => {
                self.length(20);
                self.buffer.extend_from_slice(&[PGSQL_AF_INET6, 128, 0, 16]);
                self.buffer.extend_from_slice(&v6.octets());
            }
            None => self.null(),
        }
    }

    /// Ends the stream: the trailer, and whatever is still buffered.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        self.sink.write_all(&self.buffer)
    }
}

/// A row's columns, in the order both directions send them: chain ranges
/// are read with these, and batches written with all of them but the id,
/// which the column's default gives.
pub(crate) const ROW_COLUMNS: &str = "id, event_id, created_at, actor_kind, user_id, user_email, action, \
     resource, resource_id, metadata::text, client_ip, peer_ip, user_agent, status, error_code, request_id, \
     chain_version, prev_mac, mac, chain_id, chain_seq";
/// How many columns [`ROW_COLUMNS`] names.
pub(crate) const ROW_FIELDS: i16 = 21;

/// `COPY (SELECT … one chain range …) TO STDOUT`. COPY takes no bind
/// parameters, so the range is read from three settings that
/// [`select_range`] sets on the session just before.
pub(crate) struct ChainRangeCopy;

impl diesel::pg::CopyTarget for ChainRangeCopy {
    type Table = audit_logs::table;
    type SqlType = diesel::sql_types::BigInt;

    fn walk_target(mut pass: AstPass<'_, '_, Pg>) -> QueryResult<()> {
        pass.push_sql("(SELECT ");
        pass.push_sql(ROW_COLUMNS);
        pass.push_sql(
            " FROM audit_logs WHERE chain_id = current_setting('zt_audit.range_chain')::smallint \
             AND chain_seq > current_setting('zt_audit.range_after')::bigint \
             AND chain_seq <= current_setting('zt_audit.range_last')::bigint ORDER BY chain_seq)",
        );
        Ok(())
    }
}

/// Sets the range [`ChainRangeCopy`] reads: positions `after + 1 ..= last`
/// of `chain_id`.
pub(crate) fn select_range(conn: &mut PgConnection, chain_id: i16, after: i64, last: i64) -> Result<()> {
    use diesel::sql_types::Text;
    diesel::sql_query(
        "SELECT set_config('zt_audit.range_chain', $1, false), set_config('zt_audit.range_after', $2, false), \
         set_config('zt_audit.range_last', $3, false)",
    )
    .bind::<Text, _>(chain_id.to_string())
    .bind::<Text, _>(after.to_string())
    .bind::<Text, _>(last.to_string())
    .execute(conn)?;
    Ok(())
}

/// Clears the range settings once the COPY is read to its end. It also
/// leaves the connection ready for other statements: diesel does not collect
/// the COPY's closing status, and the simple-query protocol this runs on does.
pub(crate) fn forget_range(conn: &mut PgConnection) -> Result<()> {
    diesel::connection::SimpleConnection::batch_execute(
        conn,
        "RESET zt_audit.range_chain; RESET zt_audit.range_after; RESET zt_audit.range_last",
    )?;
    Ok(())
}

fn malformed(what: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::Decode,
        format!("COPY stream from the database: {}", what.into()),
    )
}

/// Reads a binary COPY stream of [`ROW_COLUMNS`] rows as [`Row`]s, the
/// shape diesel reads them in, so both decode the same way.
pub(crate) struct CopyDecoder<R> {
    input: R,
    started: bool,
}

impl<R: BufRead> CopyDecoder<R> {
    pub(crate) fn new(input: R) -> Self {
        Self { input, started: false }
    }

    fn exact<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.input
            .read_exact(&mut bytes)
            .map_err(|error| malformed(format!("cut short: {error}")))?;
        Ok(bytes)
    }

    fn field(&mut self) -> Result<Option<Vec<u8>>> {
        let length = i32::from_be_bytes(self.exact::<4>()?);
        if length < 0 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| malformed("a negative field length"))?;
        let mut bytes = vec![0u8; length];
        self.input
            .read_exact(&mut bytes)
            .map_err(|error| malformed(format!("cut short: {error}")))?;
        Ok(Some(bytes))
    }

    /// A field of a fixed-width type, read without allocating.
    fn fixed<const N: usize>(&mut self, what: &str) -> Result<Option<[u8; N]>> {
        let length = i32::from_be_bytes(self.exact::<4>()?);
        match usize::try_from(length) {
            Err(_) => Ok(None),
            Ok(length) if length == N => self.exact::<N>().map(Some),
            Ok(length) => Err(malformed(format!("{what} is {length} bytes, not {N}"))),
        }
    }

    fn text(&mut self) -> Result<Option<RawText>> {
        Ok(self.field()?.map(RawText))
    }

    fn inet(&mut self, what: &str) -> Result<Option<IpNetwork>> {
        let Some(bytes) = self.field()? else {
            return Ok(None);
        };
        let bad = || malformed(format!("{what} is not an inet"));
        let (&[family, bits, _is_cidr, length], address) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
        let ip = match (family, length, address.len()) {
            (PGSQL_AF_INET, 4, 4) => IpAddr::from(<[u8; 4]>::try_from(address).map_err(|_| bad())?),
            (PGSQL_AF_INET6, 16, 16) => IpAddr::from(<[u8; 16]>::try_from(address).map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        IpNetwork::new(ip, bits).map(Some).map_err(|_| bad())
    }

    /// Reads whatever is left of the stream, so that the connection is
    /// ready for its next statement.
    pub(crate) fn drain(mut self) {
        let _ = std::io::copy(&mut self.input, &mut std::io::sink());
    }

    /// The next row, or `None` at the end of the stream.
    pub(crate) fn next_row(&mut self) -> Result<Option<Row>> {
        if !self.started {
            let signature = self.exact::<11>()?;
            if &signature != SIGNATURE {
                return Err(malformed("not a binary COPY stream"));
            }
            let _flags = self.exact::<4>()?;
            let extension = u32::from_be_bytes(self.exact::<4>()?);
            for _ in 0..extension {
                self.exact::<1>()?;
            }
            self.started = true;
        }
        let fields = i16::from_be_bytes(self.exact::<2>()?);
        if fields == -1 {
            return Ok(None);
        }
        if fields != ROW_FIELDS {
            return Err(malformed(format!("a row of {fields} fields, not {ROW_FIELDS}")));
        }
        let id = self
            .fixed::<8>("id")?
            .map(i64::from_be_bytes)
            .ok_or_else(|| malformed("id is NULL"))?;
        Ok(Some(Row {
            id,
            event_id: self.fixed::<16>("event_id")?.map(Uuid::from_bytes),
            created_at: self
                .fixed::<8>("created_at")?
                .map(|micros| PgTimestamp(i64::from_be_bytes(micros))),
            actor_kind: self.text()?,
            user_id: self.text()?,
            user_email: self.text()?,
            action: self.text()?,
            resource: self.text()?,
            resource_id: self.text()?,
            metadata: self.text()?,
            client_ip: self.inet("client_ip")?,
            peer_ip: self.inet("peer_ip")?,
            user_agent: self.text()?,
            status: self.text()?,
            error_code: self.text()?,
            request_id: self.text()?,
            chain_version: self.fixed::<2>("chain_version")?.map(i16::from_be_bytes),
            prev_mac: self.field()?,
            mac: self.field()?,
            chain_id: self.fixed::<2>("chain_id")?.map(i16::from_be_bytes),
            chain_seq: self.fixed::<8>("chain_seq")?.map(i64::from_be_bytes),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_stream() -> Vec<u8> {
        let mut stream = Vec::new();
        let mut encoder = CopyEncoder::start(&mut stream);
        encoder.row(ROW_FIELDS).unwrap();
        encoder.int8(7);
        encoder.bytes(Uuid::from_u128(42).as_bytes());
        encoder.int8(1_000);
        for text in ["user", "u1", "a@b.c", "act", "res"] {
            encoder.bytes(text.as_bytes());
        }
        encoder.null();
        encoder.bytes(b"{}");
        encoder.inet(Some("192.0.2.1".parse().unwrap()));
        encoder.inet(Some("2001:db8::1".parse().unwrap()));
        encoder.optional_text(None);
        encoder.bytes(b"success");
        encoder.null();
        encoder.optional_text(Some("req"));
        encoder.int2(3);
        encoder.bytes(&[0; 32]);
        encoder.bytes(&[1; 32]);
        encoder.int2(2);
        encoder.int8(9);
        encoder.finish().unwrap();
        stream
    }

    /// What the encoder writes, the decoder reads back field for field.
    #[test]
    fn encoder_and_decoder_agree() {
        let stream = sample_stream();
        let mut decoder = CopyDecoder::new(stream.as_slice());
        let row = decoder.next_row().unwrap().unwrap();
        assert_eq!(row.id, 7);
        assert_eq!(row.event_id, Some(Uuid::from_u128(42)));
        assert_eq!(row.created_at, Some(PgTimestamp(1_000)));
        assert_eq!(row.user_email.map(|text| text.0), Some(b"a@b.c".to_vec()));
        assert!(row.resource_id.is_none());
        assert_eq!(row.client_ip.map(|ip| ip.to_string()), Some("192.0.2.1/32".to_owned()));
        assert_eq!(row.peer_ip.map(|ip| ip.to_string()), Some("2001:db8::1/128".to_owned()));
        assert_eq!(row.request_id.map(|text| text.0), Some(b"req".to_vec()));
        assert_eq!(row.chain_version, Some(3));
        assert_eq!(row.mac, Some(vec![1; 32]));
        assert_eq!((row.chain_id, row.chain_seq), (Some(2), Some(9)));
        assert!(decoder.next_row().unwrap().is_none());
    }

    /// A stream cut short, or of another shape, is a decode error, not a panic.
    #[test]
    fn damaged_streams_are_errors() {
        assert!(CopyDecoder::new(&b"PGCOPY"[..]).next_row().is_err());
        let stream = sample_stream();
        for cut in [20, stream.len() / 2, stream.len() - 2] {
            let mut decoder = CopyDecoder::new(&stream[..cut]);
            let outcome = decoder.next_row().and_then(|_| decoder.next_row());
            assert!(outcome.is_err(), "a stream cut at {cut} bytes was read");
        }
        let mut other = Vec::new();
        let mut encoder = CopyEncoder::start(&mut other);
        encoder.row(2).unwrap();
        encoder.int8(1);
        encoder.int8(2);
        encoder.finish().unwrap();
        let error = CopyDecoder::new(other.as_slice()).next_row().err().unwrap();
        assert!(error.to_string().contains("2 fields"), "{error}");
    }
}

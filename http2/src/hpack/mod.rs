//! HPACK (RFC 7541): header compression for HTTP/2, without I/O.
//!
//! [`Decoder`] turns a header block into fields and keeps its dynamic table
//! in step with the peer's encoder; it is bounded: the table by the size we
//! announced (`SETTINGS_HEADER_TABLE_SIZE`), a table size update only where
//! the RFC allows one, the decoded list by `SETTINGS_MAX_HEADER_LIST_SIZE`
//! (exceeding it fails the block after the table was brought up to date, so
//! the connection survives), integers and strings by the block's length.
//! [`Encoder`] writes request fields with the static table and literals
//! never added to the peer's table: the peer's decoder holds nothing for us.
//!
//! ```
//! use uploadtask_http2::hpack::{Decoder, Encoder};
//!
//! let mut block = Vec::new();
//! let mut encoder = Encoder::default();
//! encoder.encode(b":method", b"POST", &mut block);
//! encoder.encode(b"x-upload", b"photo.png", &mut block);
//! let mut decoder = Decoder::new(4096, 16 * 1024);
//! let mut fields = Vec::new();
//! decoder.decode(&block, |name, value| fields.push((name.to_vec(), value.to_vec()))).unwrap();
//! assert_eq!(fields[0], (b":method".to_vec(), b"POST".to_vec()));
//! assert_eq!(fields[1], (b"x-upload".to_vec(), b"photo.png".to_vec()));
//! ```

pub mod huffman;
mod table;
mod tables;

use std::fmt;

pub use self::table::DynamicTable;
use self::tables::STATIC;

/// Why a header block was refused. Every kind but
/// [`HpackError::ListTooLarge`] is a connection error
/// (`COMPRESSION_ERROR`): the dynamic table can no longer be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HpackError {
    /// The block ended inside a field.
    Truncated,
    /// An integer larger than any this decoder accepts.
    IntegerOverflow,
    /// An index that is in neither table (or 0).
    BadIndex(usize),
    /// Huffman data with EOS, or padding that is not a short run of ones.
    Huffman,
    /// A table size update above the size we allowed, or after a field.
    BadTableSizeUpdate,
    /// The decoded list exceeds `SETTINGS_MAX_HEADER_LIST_SIZE` (the table
    /// is up to date: only the stream fails).
    ListTooLarge,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => f.write_str("header block ends inside a field"),
            HpackError::IntegerOverflow => f.write_str("HPACK integer too large"),
            HpackError::BadIndex(i) => write!(f, "HPACK index {i} is in no table"),
            HpackError::Huffman => f.write_str("bad Huffman data in a header block"),
            HpackError::BadTableSizeUpdate => f.write_str("HPACK table size update not allowed here"),
            HpackError::ListTooLarge => f.write_str("header list larger than announced"),
        }
    }
}

impl std::error::Error for HpackError {}

/// Integers above this are refused (no real block needs one; bounds the work).
const MAX_INTEGER: u64 = 1 << 24;

/// Decodes an integer with an `n`-bit prefix (§5.1) from `input[*at..]`.
pub fn decode_integer(input: &[u8], at: &mut usize, n: u8) -> Result<u64, HpackError> {
    let first = *input.get(*at).ok_or(HpackError::Truncated)?;
    *at += 1;
    let max = (1u64 << n) - 1;
    let mut value = u64::from(first) & max;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let byte = *input.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        // Four continuation bytes hold 28 bits: more is too large, even
        // when they add nothing.
        if shift > 21 {
            return Err(HpackError::IntegerOverflow);
        }
        value += u64::from(byte & 0x7f) << shift;
        if value > MAX_INTEGER {
            return Err(HpackError::IntegerOverflow);
        }
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

/// Appends `value` with an `n`-bit prefix; `first` holds the bits above it.
pub fn encode_integer(value: u64, n: u8, first: u8, out: &mut Vec<u8>) {
    let max = (1u64 << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Decodes a string literal (§5.2) into `out` (cleared first).
fn decode_string(input: &[u8], at: &mut usize, out: &mut Vec<u8>) -> Result<(), HpackError> {
    let huffman = input.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = decode_integer(input, at, 7)? as usize;
    let end = at
        .checked_add(len)
        .filter(|&end| end <= input.len())
        .ok_or(HpackError::Truncated)?;
    out.clear();
    if huffman {
        huffman::decode(&input[*at..end], out)?;
    } else {
        out.extend_from_slice(&input[*at..end]);
    }
    *at = end;
    Ok(())
}

/// Appends a string literal, Huffman-coded when that is shorter.
fn encode_string(bytes: &[u8], out: &mut Vec<u8>) {
    let coded = huffman::encoded_len(bytes);
    if coded < bytes.len() {
        encode_integer(coded as u64, 7, 0x80, out);
        huffman::encode(bytes, out);
    } else {
        encode_integer(bytes.len() as u64, 7, 0, out);
        out.extend_from_slice(bytes);
    }
}

/// Decodes header blocks from one peer (one per connection).
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// The most the peer may set the table to (what we announced).
    max_table_size: usize,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` as we announced it.
    max_list_size: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder for a peer allowed a table of `max_table_size` bytes and
    /// header lists of `max_list_size` bytes (RFC 9113 §6.5.2 sizes).
    pub fn new(max_table_size: usize, max_list_size: usize) -> Self {
        Decoder {
            table: DynamicTable::new(max_table_size),
            max_table_size,
            max_list_size,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// The dynamic table (for tests and statistics).
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Decodes one whole block, calling `field` with each name and value in
    /// order. On [`HpackError::ListTooLarge`] the whole block was read and
    /// the table is up to date; on any other error the connection must end.
    pub fn decode(&mut self, block: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> Result<(), HpackError> {
        let mut at = 0;
        let mut list_size = 0usize;
        let mut fields_seen = false;
        while at < block.len() {
            let first = block[at];
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = decode_integer(block, &mut at, 7)? as usize;
                let (name, value) = self.lookup(index)?;
                list_size = list_size.saturating_add(name.len() + value.len() + 32);
                if list_size <= self.max_list_size {
                    field(name, value);
                }
                fields_seen = true;
                continue;
            }
            if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3): only before the first field.
                let size = decode_integer(block, &mut at, 5)? as usize;
                if fields_seen || size > self.max_table_size {
                    return Err(HpackError::BadTableSizeUpdate);
                }
                self.table.set_max_size(size);
                continue;
            }
            // A literal: with incremental indexing (6-bit prefix), without
            // indexing or never indexed (4-bit prefix).
            let (indexing, prefix) = if first & 0xc0 == 0x40 { (true, 6) } else { (false, 4) };
            let index = decode_integer(block, &mut at, prefix)? as usize;
            let mut name = std::mem::take(&mut self.name);
            let mut value = std::mem::take(&mut self.value);
            let read = (|| {
                if index == 0 {
                    decode_string(block, &mut at, &mut name)?;
                } else {
                    name.clear();
                    name.extend_from_slice(self.lookup(index)?.0);
                }
                decode_string(block, &mut at, &mut value)
            })();
            if read.is_ok() {
                list_size = list_size.saturating_add(name.len() + value.len() + 32);
                if list_size <= self.max_list_size {
                    field(&name, &value);
                }
                if indexing {
                    self.table.insert(&name, &value);
                }
            }
            (self.name, self.value) = (name, value);
            read?;
            fields_seen = true;
        }
        if list_size > self.max_list_size {
            return Err(HpackError::ListTooLarge);
        }
        Ok(())
    }

    /// The field at `index` (1-based: the static table, then the dynamic one).
    fn lookup(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::BadIndex(0)),
            i if i <= STATIC.len() => {
                let (name, value) = STATIC[i - 1];
                Ok((name.as_bytes(), value.as_bytes()))
            }
            i => self.table.get(i - STATIC.len() - 1).ok_or(HpackError::BadIndex(i)),
        }
    }
}

/// Encodes request fields for one peer. Fields are never added to the
/// peer's dynamic table: a static-table index where the table has the name
/// (or the whole field), a literal otherwise, Huffman-coded when shorter.
#[derive(Debug, Default)]
pub struct Encoder {
    _private: (),
}

impl Encoder {
    /// Appends one field (the name in lower case, as HTTP/2 requires).
    pub fn encode(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        let mut name_index = None;
        for (i, (n, v)) in STATIC.iter().enumerate() {
            if n.as_bytes() == name {
                if v.as_bytes() == value {
                    encode_integer(i as u64 + 1, 7, 0x80, out);
                    return;
                }
                name_index = name_index.or(Some(i + 1));
            }
        }
        // Literal without indexing (§6.2.2).
        match name_index {
            Some(index) => encode_integer(index as u64, 4, 0, out),
            None => {
                out.push(0);
                encode_string(name, out);
            }
        }
        encode_string(value, out);
    }
}

#[cfg(test)]
mod tests;

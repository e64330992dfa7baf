//! The ordered key space of a timeline.
//!
//! Keys compare as plain bytes, and the encoders here are *memcomparable*: comparing two encoded
//! keys byte by byte gives the same order as comparing the values they encode. This lets the
//! pageserver keep everything in one sorted space without knowing any schema, and lets a
//! primary-key range in SQL become one contiguous key range.
//!
//! Layout (one byte of region prefix, then big-endian ids):
//! - `m …`                                   the catalog (databases, schemas, tables, sequences)
//! - `t <table id:u64> r <primary key>`      table rows
//! - `t <table id:u64> i <index id:u64> …`   secondary-index entries
//! - `~ …`                                   kept by the pageserver for itself ([`COMMIT_TIME_KEY`])

/// First byte of every catalog key.
pub const CATALOG_PREFIX: u8 = b'm';
/// First byte of every table-data key.
pub const TABLE_PREFIX: u8 = b't';
/// First byte of the keys the pageserver keeps for itself. Scans served to computes end
/// before it.
pub const META_PREFIX: u8 = b'~';
/// The key under which the pageserver records, at every WAL record's LSN, when that record
/// committed: its versions map a point in time to an LSN. It sorts after every table key, so
/// no table or catalog scan meets it.
pub const COMMIT_TIME_KEY: &[u8] = b"~commit-time";
const ROW_MARKER: u8 = b'r';
const INDEX_MARKER: u8 = b'i';

/// The prefix shared by every key of one table: its rows and its index entries.
pub fn table_prefix(table_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(TABLE_PREFIX);
    key.extend_from_slice(&table_id.to_be_bytes());
    key
}

/// The prefix shared by every row of one table.
pub fn row_prefix(table_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(10);
    key.push(TABLE_PREFIX);
    key.extend_from_slice(&table_id.to_be_bytes());
    key.push(ROW_MARKER);
    key
}

/// The prefix shared by every entry of one secondary index.
pub fn index_prefix(table_id: u64, index_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.push(TABLE_PREFIX);
    key.extend_from_slice(&table_id.to_be_bytes());
    key.push(INDEX_MARKER);
    key.extend_from_slice(&index_id.to_be_bytes());
    key
}

/// The smallest key that is greater than every key starting with `prefix`, or `None` when no such
/// key exists (the prefix is empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Appends memcomparable encodings of values to a key.
#[derive(Debug, Default, Clone)]
pub struct KeyEncoder {
    buf: Vec<u8>,
}

/// Tag written before a value that may be NULL. NULL sorts after every value, as PostgreSQL
/// orders NULLs last in ascending indexes.
pub const NOT_NULL_TAG: u8 = 0x01;
pub const NULL_TAG: u8 = 0x02;

impl KeyEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts after an existing prefix, such as [`row_prefix`].
    pub fn with_prefix(prefix: Vec<u8>) -> Self {
        Self { buf: prefix }
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Marks a NULL in a nullable position (index columns).
    pub fn null(&mut self) -> &mut Self {
        self.buf.push(NULL_TAG);
        self
    }

    /// Marks that a non-NULL value follows in a nullable position.
    pub fn not_null(&mut self) -> &mut Self {
        self.buf.push(NOT_NULL_TAG);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }

    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.buf
            .extend_from_slice(&((v as u16) ^ (1 << 15)).to_be_bytes());
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf
            .extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf
            .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i128(&mut self, v: i128) -> &mut Self {
        self.buf
            .extend_from_slice(&((v as u128) ^ (1 << 127)).to_be_bytes());
        self
    }

    /// IEEE floats: flip the sign bit of positives and every bit of negatives. -0.0 is encoded as
    /// 0.0 and every NaN as the canonical NaN, which sorts above +inf as in PostgreSQL.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        let v = if v == 0.0 {
            0.0
        } else if v.is_nan() {
            f64::NAN
        } else {
            v
        };
        let bits = v.to_bits();
        let bits = if bits >> 63 == 0 {
            bits ^ (1 << 63)
        } else {
            !bits
        };
        self.buf.extend_from_slice(&bits.to_be_bytes());
        self
    }

    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.f64(f64::from(v))
    }

    /// Byte strings: every 0x00 becomes 0x00 0xff and the string ends with 0x00 0x01, so a string
    /// sorts before every longer string it is a prefix of.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        for &b in v {
            self.buf.push(b);
            if b == 0 {
                self.buf.push(0xff);
            }
        }
        self.buf.extend_from_slice(&[0x00, 0x01]);
        self
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl Fn(&mut KeyEncoder)) -> Vec<u8> {
        let mut e = KeyEncoder::new();
        f(&mut e);
        e.finish()
    }

    #[test]
    fn integers_sort_like_their_values() {
        let values = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        let keys: Vec<_> = values
            .iter()
            .map(|v| {
                enc(|e| {
                    e.i64(*v);
                })
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let values = [i32::MIN, -1, 0, 3, i32::MAX];
        let keys: Vec<_> = values
            .iter()
            .map(|v| {
                enc(|e| {
                    e.i32(*v);
                })
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let values = [i16::MIN, -1, 0, i16::MAX];
        let keys: Vec<_> = values
            .iter()
            .map(|v| {
                enc(|e| {
                    e.i16(*v);
                })
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let values = [i128::MIN, -1, 0, 10, i128::MAX];
        let keys: Vec<_> = values
            .iter()
            .map(|v| {
                enc(|e| {
                    e.i128(*v);
                })
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn floats_sort_like_their_values() {
        let values = [
            f64::NEG_INFINITY,
            -1e10,
            -1.5,
            -0.0,
            1e-300,
            2.5,
            f64::INFINITY,
            f64::NAN,
        ];
        let keys: Vec<_> = values
            .iter()
            .map(|v| {
                enc(|e| {
                    e.f64(*v);
                })
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(
            enc(|e| {
                e.f64(0.0);
            }),
            enc(|e| {
                e.f64(-0.0);
            })
        );
    }

    #[test]
    fn strings_sort_like_their_bytes_and_compose() {
        let values: [&[u8]; 6] = [b"", b"\0", b"\0\0", b"a", b"a\0", b"ab"];
        let keys: Vec<_> = values
            .iter()
            .map(|v| {
                enc(|e| {
                    e.bytes(v);
                })
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        // A composite key orders by its first column before its second.
        let a = enc(|e| {
            e.str("a").i32(9);
        });
        let b = enc(|e| {
            e.str("ab").i32(1);
        });
        assert!(a < b);
    }

    #[test]
    fn nulls_sort_last() {
        let v = enc(|e| {
            e.not_null().i32(i32::MAX);
        });
        let n = enc(|e| {
            e.null();
        });
        assert!(v < n);
    }

    #[test]
    fn prefixes_bound_their_keys() {
        let p = row_prefix(7);
        let end = prefix_end(&p).unwrap();
        let mut k = KeyEncoder::with_prefix(p.clone());
        k.i64(i64::MAX);
        let k = k.finish();
        assert!(p.as_slice() < k.as_slice() && k < end);
        assert!(row_prefix(7) < row_prefix(8));
        assert!(prefix_end(&[]).is_none());
        assert_eq!(prefix_end(&[1, 0xff]).unwrap(), vec![2]);
        assert!(index_prefix(7, 1) < row_prefix(7));
    }
}

//! What the manifest says about one layer file: its name, key range, LSN range and size.
//! Readers use it to skip layers (and their downloads) that cannot hold a key.

use std::fmt::Write;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strata_core::Lsn;

/// Key bytes of a layer name are truncated to this many bytes (hex doubles it), so names stay
/// well under file-system and object-key limits; the exact range is in the manifest and file.
const NAME_KEY_BYTES: usize = 24;

/// The role of a layer file in the timeline's layer map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LayerKind {
    /// A delta flushed from memory: every key written in its LSN range. L0 files pile up and
    /// overlap in keys, so compaction merges them into L1.
    #[default]
    L0,
    /// A delta written by compaction: one slice of the key space over the LSN range of the
    /// L0 files it replaced; the L1 files of one compaction do not overlap in keys.
    L1,
    /// Every live key of its key range at one LSN (`lsn_start == lsn_end`).
    Image,
}

/// Describes one immutable layer file. Both ranges are inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LayerDesc {
    pub name: String,
    /// Manifests written before compaction existed name only L0 files.
    #[serde(default)]
    pub kind: LayerKind,
    /// Smallest key in the file.
    #[serde(with = "hex_bytes")]
    pub key_start: Bytes,
    /// Largest key in the file.
    #[serde(with = "hex_bytes")]
    pub key_end: Bytes,
    /// The file holds every record of the timeline with `lsn_start <= lsn <= lsn_end`.
    pub lsn_start: Lsn,
    pub lsn_end: Lsn,
    /// File size in bytes; a local copy of another size is not trusted.
    pub size: u64,
}

impl LayerDesc {
    /// Names a layer by its key range, LSN range and the generation that wrote it:
    /// `<key start>-<key end>__<lsn start>-<lsn end>-g<generation>` (hex) for deltas and
    /// `<key start>-<key end>__<lsn>-g<generation>` for images. The generation makes names
    /// unique across owners, so a fenced pageserver's late upload can never overwrite an
    /// object that the current owner's manifest names.
    pub fn layer_name(
        kind: LayerKind,
        key_start: &[u8],
        key_end: &[u8],
        lsn_start: Lsn,
        lsn_end: Lsn,
        generation: u64,
    ) -> String {
        let ks = hex(&key_start[..key_start.len().min(NAME_KEY_BYTES)]);
        let ke = hex(&key_end[..key_end.len().min(NAME_KEY_BYTES)]);
        if kind == LayerKind::Image {
            return format!("{ks}-{ke}__{:016X}-g{generation:08X}", lsn_start.0);
        }
        format!(
            "{ks}-{ke}__{:016X}-{:016X}-g{generation:08X}",
            lsn_start.0, lsn_end.0
        )
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.key_start.as_ref() <= key && key <= self.key_end.as_ref()
    }

    /// Whether the file may hold keys in `[start, end)` (`end` `None` = unbounded).
    pub fn overlaps(&self, start: &[u8], end: Option<&[u8]>) -> bool {
        self.key_end.as_ref() >= start && end.is_none_or(|end| self.key_start.as_ref() < end)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(s, "{b:02x}").expect("writing to a String cannot fail");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Keys in the manifest are hex strings: readable, and safe for any byte.
mod hex_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        unhex(&s)
            .map(Bytes::from)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid hex key {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_keys_round_trip() {
        let name =
            LayerDesc::layer_name(LayerKind::L0, b"\x00a", &[0xff; 40], Lsn(1), Lsn(0x20), 3);
        assert_eq!(
            name,
            format!(
                "0061-{}__0000000000000001-0000000000000020-g00000003",
                "ff".repeat(24)
            )
        );
        assert_eq!(
            LayerDesc::layer_name(LayerKind::Image, b"a", b"b", Lsn(0x20), Lsn(0x20), 3),
            "61-62__0000000000000020-g00000003"
        );
        let desc = LayerDesc {
            name,
            kind: LayerKind::L1,
            key_start: Bytes::from_static(b"\x00a"),
            key_end: Bytes::from_static(b"zz"),
            lsn_start: Lsn(1),
            lsn_end: Lsn(0x20),
            size: 10,
        };
        let json = serde_json::to_string(&desc).unwrap();
        assert!(json.contains("\"key_start\":\"0061\""), "{json}");
        assert!(json.contains("\"kind\":\"l1\""), "{json}");
        let old = json.replace("\"kind\":\"l1\",", "");
        assert_eq!(
            serde_json::from_str::<LayerDesc>(&old).unwrap().kind,
            LayerKind::L0
        );
        assert_eq!(serde_json::from_str::<LayerDesc>(&json).unwrap(), desc);
        assert!(desc.contains_key(b"b") && !desc.contains_key(b"zzz"));
        assert!(desc.overlaps(b"zz", None) && !desc.overlaps(b"zzz", None));
        assert!(!desc.overlaps(b"", Some(b"\x00a")) && desc.overlaps(b"", Some(b"\x00b")));
        assert!(unhex("0g").is_none() && unhex("abc").is_none());
    }
}

//! A per-file bloom filter on keys, so a point read skips the files that cannot hold its key
//! without reading (or downloading) a block of them.
//!
//! One 64-bit xxHash per key; the `k` probe positions come from it by double hashing
//! (Kirsch–Mitzenmacher), which is as good as `k` independent hashes for a bloom filter.

use twox_hash::XxHash64;

/// About 1% false positives: 10 bits per key and 7 probes.
const BITS_PER_KEY: usize = 10;
const PROBES: u8 = 7;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bloom {
    bits: Vec<u8>,
    probes: u8,
}

fn key_hash(key: &[u8]) -> u64 {
    XxHash64::oneshot(0, key)
}

impl Bloom {
    /// A filter holding every key whose hash is in `hashes`.
    pub fn build(hashes: &[u64]) -> Self {
        let bytes = (hashes.len() * BITS_PER_KEY).div_ceil(8).max(8);
        let mut bloom = Bloom {
            bits: vec![0; bytes],
            probes: PROBES,
        };
        for &h in hashes {
            for bit in bloom.positions(h) {
                bloom.bits[bit / 8] |= 1 << (bit % 8);
            }
        }
        bloom
    }

    /// The hash [`build`](Self::build) wants for `key`.
    pub fn hash(key: &[u8]) -> u64 {
        key_hash(key)
    }

    /// Rebuilds a filter read from a file.
    pub fn from_parts(bits: Vec<u8>, probes: u8) -> Option<Self> {
        (!bits.is_empty() && probes > 0).then_some(Bloom { bits, probes })
    }

    pub fn bits(&self) -> &[u8] {
        &self.bits
    }

    pub fn probes(&self) -> u8 {
        self.probes
    }

    /// False only if `key` is certainly not in the file.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.positions(key_hash(key))
            .all(|bit| self.bits[bit / 8] & (1 << (bit % 8)) != 0)
    }

    fn positions(&self, hash: u64) -> impl Iterator<Item = usize> {
        let m = (self.bits.len() * 8) as u64;
        let h1 = hash;
        let h2 = hash.rotate_left(32) | 1;
        (0..u64::from(self.probes)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let keys: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let hashes: Vec<u64> = keys.iter().map(|k| Bloom::hash(k)).collect();
        let bloom = Bloom::build(&hashes);
        assert!(keys.iter().all(|k| bloom.may_contain(k)));
        let false_positives = (10_000..110_000u32)
            .filter(|i| bloom.may_contain(&i.to_be_bytes()))
            .count();
        // 1% expected; allow some slack.
        assert!(false_positives < 2_000, "{false_positives} of 100000");
        let back = Bloom::from_parts(bloom.bits().to_vec(), bloom.probes()).unwrap();
        assert_eq!(back, bloom);
        assert!(Bloom::build(&[]).bits().len() == 8);
    }
}

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use strata_core::Lsn;

use super::*;
use crate::error::PageserverError;
use crate::layer_desc::LayerKind;

/// The model: every version of every key, as a plain sorted map.
type Model = BTreeMap<(Bytes, Lsn), Option<Bytes>>;

fn key(i: u32) -> Bytes {
    Bytes::from(format!("key-{i:06}"))
}

/// 2,000 keys, one to four versions each (LSNs 10..=40), some versions tombstones, with
/// values large enough to fill many 1 KiB blocks.
fn model() -> Model {
    let mut m = Model::new();
    for i in 0..2000u32 {
        let versions = 1 + i % 4;
        for v in 0..versions {
            let lsn = Lsn(10 + u64::from(v) * 10);
            let value = if (i + v) % 7 == 3 {
                None
            } else {
                Some(Bytes::from(format!(
                    "value-{i}-{v}-{}",
                    "x".repeat((i % 50) as usize)
                )))
            };
            m.insert((key(i), lsn), value);
        }
    }
    m
}

fn write(
    dir: &std::path::Path,
    m: &Model,
    block_size: usize,
) -> (crate::layer_desc::LayerDesc, std::path::PathBuf) {
    let mut w = LayerWriter::try_new(dir, Lsn(10), Lsn(40), block_size).unwrap();
    for ((k, lsn), v) in m {
        w.add(k, *lsn, v.as_deref()).unwrap();
    }
    w.finish(7).unwrap()
}

/// What a read of `k` at `lsn` must return, from the model.
fn expected(m: &Model, k: &Bytes, lsn: Lsn) -> Found {
    m.range((k.clone(), Lsn::ZERO)..=(k.clone(), lsn))
        .next_back()
        .map(|((_, l), v)| (*l, v.clone()))
}

#[test]
fn round_trip_point_reads_at_many_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let (desc, path) = write(dir.path(), &m, 1024);
    assert!(desc
        .name
        .ends_with("__000000000000000A-0000000000000028-g00000007"));
    assert_eq!(desc.key_start, key(0));
    assert_eq!(desc.key_end, key(1999));
    assert_eq!(desc.size, std::fs::metadata(&path).unwrap().len());

    let r = LayerReader::open(&path, &desc.name).unwrap();
    assert_eq!(r.format_version(), FORMAT_VERSION);
    assert!(!r.is_image());
    assert!(r.block_count() > 50, "{} blocks", r.block_count());
    assert_eq!(r.entry_count(), m.len() as u64);
    assert_eq!(r.lsn_range(), (Lsn(10), Lsn(40)));
    assert_eq!(r.key_range(), (&key(0), &key(1999)));
    for i in (0..2000).step_by(7).chain([1, 1998, 1999]) {
        let k = key(i);
        for lsn in [0, 9, 10, 15, 20, 29, 30, 35, 40, 1000] {
            assert_eq!(
                r.get(&k, Lsn(lsn)).unwrap(),
                expected(&m, &k, Lsn(lsn)),
                "{i}@{lsn}"
            );
        }
    }
    // Batched lookups (unsorted, with repeats and misses) agree with single ones.
    let keys: Vec<Bytes> = [1999, 5, 700, 5, 0, 1234]
        .into_iter()
        .map(key)
        .chain([Bytes::from_static(b"zzz")])
        .collect();
    for lsn in [10, 25, 40] {
        let many = r.get_many(&keys, Lsn(lsn)).unwrap();
        let single: Vec<_> = keys.iter().map(|k| expected(&m, k, Lsn(lsn))).collect();
        assert_eq!(many, single);
    }
    assert_eq!(r.get(b"key-", Lsn::MAX).unwrap(), None);
    assert_eq!(r.get(b"key-0000005", Lsn::MAX).unwrap(), None);
    assert_eq!(r.get(b"zzz", Lsn::MAX).unwrap(), None);
}

#[test]
fn range_scans_cross_block_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let (desc, path) = write(dir.path(), &m, 512);
    let r = Arc::new(LayerReader::open(&path, &desc.name).unwrap());
    for (start, end, lsn) in [
        (0u32, Some(2000u32), u64::MAX),
        (13, Some(777), 25),
        (500, None, 20),
        (1999, Some(1999), 40),
    ] {
        let start_key = key(start);
        let end_key = end.map(key);
        let got: Vec<_> = r
            .clone()
            .iter(start_key.clone(), end_key.clone(), Lsn(lsn))
            .map(|e| {
                let e = e.unwrap();
                ((e.key, e.lsn), e.value)
            })
            .collect();
        let want: Vec<_> = m
            .iter()
            .filter(|((k, l), _)| {
                *k >= start_key && end_key.as_ref().is_none_or(|e| k < e) && l.0 <= lsn
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want, "{start}..{end:?}@{lsn}");
    }
}

#[test]
fn a_corrupt_block_is_an_error_not_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let (desc, path) = write(dir.path(), &m, 1024);
    // Flip one byte in the middle of the data blocks.
    let mut bytes = std::fs::read(&path).unwrap();
    let pos = bytes.len() / 3;
    bytes[pos] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let r = Arc::new(LayerReader::open(&path, &desc.name).unwrap());
    let all: Vec<_> = r.clone().iter(Bytes::new(), None, Lsn::MAX).collect();
    let err = all.last().unwrap().as_ref().unwrap_err();
    assert!(matches!(err, PageserverError::Corruption { .. }), "{err}");
    // Some point read lands in the damaged block and fails rather than answering.
    let failures = (0..2000)
        .filter(|i| r.get(&key(*i), Lsn::MAX).is_err())
        .count();
    assert!(failures > 0);
}

#[test]
fn a_damaged_footer_or_index_is_detected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (desc, path) = write(dir.path(), &model(), 1024);
    let good = std::fs::read(&path).unwrap();
    for pos in [
        good.len() - 1,
        good.len() - 30,
        good.len() - FOOTER_LEN - 10,
    ] {
        let mut bad = good.clone();
        bad[pos] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let err = LayerReader::open(&path, &desc.name).unwrap_err();
        assert!(
            matches!(err, PageserverError::Corruption { .. }),
            "{pos}: {err}"
        );
    }
    std::fs::write(&path, &good[..10]).unwrap();
    assert!(LayerReader::open(&path, &desc.name).is_err());
}

#[test]
fn the_writer_refuses_disorder_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LayerWriter::try_new(dir.path(), Lsn(1), Lsn(5), 1024).unwrap();
    w.add(&key(2), Lsn(3), Some(b"x")).unwrap();
    assert!(w.add(&key(1), Lsn(3), Some(b"x")).is_err());
    assert!(w.add(&key(2), Lsn(3), None).is_err());
    assert!(w.add(&key(3), Lsn(6), None).is_err());
    let w = LayerWriter::try_new(dir.path(), Lsn(1), Lsn(5), 1024).unwrap();
    assert!(w.finish(1).is_err());
}

#[test]
fn big_values_make_big_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LayerWriter::try_new(dir.path(), Lsn(1), Lsn(1), 1024).unwrap();
    let big = vec![7u8; 100_000];
    w.add(&key(1), Lsn(1), Some(&big)).unwrap();
    w.add(&key(2), Lsn(1), Some(b"small")).unwrap();
    let (desc, path) = w.finish(1).unwrap();
    let r = LayerReader::open(&path, &desc.name).unwrap();
    assert_eq!(
        r.get(&key(1), Lsn(1)).unwrap(),
        Some((Lsn(1), Some(Bytes::from(big))))
    );
    assert_eq!(
        r.get(&key(2), Lsn(1)).unwrap(),
        Some((Lsn(1), Some(Bytes::from_static(b"small"))))
    );
}

#[test]
fn blocks_are_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LayerWriter::try_new(dir.path(), Lsn(1), Lsn(1), 32 * 1024).unwrap();
    let mut raw = 0;
    for i in 0..5000 {
        let value = format!("row {i} of a table whose rows look much like each other");
        raw += value.len() + 20;
        w.add(&key(i), Lsn(1), Some(value.as_bytes())).unwrap();
    }
    let (desc, path) = w.finish(1).unwrap();
    assert!(desc.size * 2 < raw as u64, "{} bytes for {raw}", desc.size);
    let r = LayerReader::open(&path, &desc.name).unwrap();
    assert_eq!(
        r.get(&key(4321), Lsn(1)).unwrap().unwrap().1.unwrap(),
        Bytes::from("row 4321 of a table whose rows look much like each other")
    );
}

#[test]
fn an_image_knows_its_keys_are_all_there_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut w =
        LayerWriter::with_kind(dir.path(), LayerKind::Image, Lsn(50), Lsn(50), 256).unwrap();
    assert!(w.add(&key(0), Lsn(50), None).is_err());
    for i in (0..1000).step_by(2) {
        w.add(&key(i), Lsn(50), Some(b"v")).unwrap();
    }
    let (desc, path) = w.finish(4).unwrap();
    assert_eq!(desc.kind, LayerKind::Image);
    assert!(
        desc.name.ends_with("__0000000000000032-g00000004"),
        "{}",
        desc.name
    );
    let r = Arc::new(LayerReader::open(&path, &desc.name).unwrap());
    assert!(r.is_image());
    let v = Some(Bytes::from_static(b"v"));
    assert_eq!(r.get(&key(10), Lsn(60)).unwrap(), Some((Lsn(50), v)));
    // In range but missing: absent at the image's LSN. Out of range or before it: unknown.
    assert_eq!(r.get(&key(11), Lsn(60)).unwrap(), Some((Lsn(50), None)));
    assert_eq!(
        r.get(b"key-000001x", Lsn(60)).unwrap(),
        Some((Lsn(50), None))
    );
    assert_eq!(r.get(b"key-", Lsn(60)).unwrap(), None);
    assert_eq!(r.get(&key(999), Lsn(60)).unwrap(), None);
    assert_eq!(r.get(&key(10), Lsn(49)).unwrap(), None);
    assert_eq!(r.clone().iter(key(0), Some(key(10)), Lsn(50)).count(), 5);
    assert_eq!(r.iter(key(0), None, Lsn(49)).count(), 0);
    assert!(LayerWriter::with_kind(dir.path(), LayerKind::Image, Lsn(1), Lsn(2), 256).is_err());
}

/// Writes a version 1 file by hand: raw blocks, no bloom filter, the old footer.
fn write_v1(path: &std::path::Path, m: &Model) {
    let mut file = Vec::new();
    let mut index = Vec::new();
    let mut entries = 0u32;
    for chunk in m.iter().collect::<Vec<_>>().chunks(100) {
        let mut block = Vec::new();
        for ((k, lsn), v) in chunk {
            encode_entry(&mut block, k, *lsn, v.as_deref());
            entries += 1;
        }
        let ((first_key, first_lsn), _) = chunk[0];
        put_bytes(&mut index, first_key);
        index.extend_from_slice(&first_lsn.0.to_le_bytes());
        index.extend_from_slice(&(file.len() as u64).to_le_bytes());
        index.extend_from_slice(&(block.len() as u32).to_le_bytes());
        file.extend_from_slice(&block);
        file.extend_from_slice(&crc32c::crc32c(&block).to_le_bytes());
    }
    let blocks = (m.len() as u32).div_ceil(100);
    put_bytes(&mut index, &m.keys().next().unwrap().0);
    put_bytes(&mut index, &m.keys().next_back().unwrap().0);
    index.extend_from_slice(&crc32c::crc32c(&index).to_le_bytes());
    let mut footer = Vec::new();
    for word in [
        file.len() as u64,
        index.len() as u64,
        u64::from(entries),
        10,
        40,
    ] {
        footer.extend_from_slice(&word.to_le_bytes());
    }
    footer.extend_from_slice(&blocks.to_le_bytes());
    footer.extend_from_slice(&1u32.to_le_bytes());
    footer.extend_from_slice(&crc32c::crc32c(&footer).to_le_bytes());
    footer.extend_from_slice(&0u32.to_le_bytes());
    footer.extend_from_slice(&MAGIC.to_le_bytes());
    file.extend_from_slice(&index);
    file.extend_from_slice(&footer);
    std::fs::write(path, file).unwrap();
}

#[test]
fn version_1_files_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let path = dir.path().join("v1");
    write_v1(&path, &m);
    let r = Arc::new(LayerReader::open(&path, "v1").unwrap());
    assert_eq!(r.format_version(), 1);
    assert_eq!(r.entry_count(), m.len() as u64);
    for i in (0..2000).step_by(13) {
        for lsn in [9, 20, 40] {
            assert_eq!(
                r.get(&key(i), Lsn(lsn)).unwrap(),
                expected(&m, &key(i), Lsn(lsn))
            );
        }
    }
    assert_eq!(r.iter(Bytes::new(), None, Lsn::MAX).count(), m.len());
}

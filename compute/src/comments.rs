//! `COMMENT ON`: descriptions of tables, views, sequences, indexes, columns, schemas and types,
//! as `pg_description`, `obj_description` and `col_description` show them (and with them psql's
//! `\d+`, `\dt+` and `\dn+`).
//!
//! A comment is a catalog key of its own: `m K <database> 0x00 <object oid:u64> <catalog
//! oid:u32> <sub-id:u32>` → the text. The sub-id of a column's comment is the column's id, not
//! its position, so the comment follows the column when others are dropped; the catalogs show
//! it at the column's position. Object oids are never reused, so a comment left by a dropped
//! object names nothing and is not shown.

use bytes::Bytes;
use strata_core::key::CATALOG_PREFIX;

/// `pg_class`: tables, views, sequences and indexes.
pub const PG_CLASS: u32 = 1259;
/// `pg_namespace`: schemas.
pub const PG_NAMESPACE: u32 = 2615;
/// `pg_type`: types.
pub const PG_TYPE: u32 = 1247;

/// What a comment describes: (object oid, catalog oid, sub-id).
pub type CommentTarget = (u64, u32, u32);

fn prefix(database: &str) -> Vec<u8> {
    let mut k = vec![CATALOG_PREFIX, b'K'];
    k.extend_from_slice(database.as_bytes());
    k.push(0);
    k
}

/// The first key of a database's comments (their keys all start so).
pub fn comments_prefix(database: &str) -> Bytes {
    Bytes::from(prefix(database))
}

pub fn comment_key(database: &str, (object, catalog, sub_id): CommentTarget) -> Bytes {
    let mut k = prefix(database);
    k.extend_from_slice(&object.to_be_bytes());
    k.extend_from_slice(&catalog.to_be_bytes());
    k.extend_from_slice(&sub_id.to_be_bytes());
    Bytes::from(k)
}

/// The database and target of a comment key.
pub fn parse_comment_key(key: &[u8]) -> Option<(String, CommentTarget)> {
    let rest = key.strip_prefix(&[CATALOG_PREFIX, b'K'][..])?;
    let end = rest.iter().position(|b| *b == 0)?;
    let database = String::from_utf8(rest[..end].to_vec()).ok()?;
    let ids = &rest[end + 1..];
    if ids.len() != 16 {
        return None;
    }
    let object = u64::from_be_bytes(ids[..8].try_into().ok()?);
    let catalog = u32::from_be_bytes(ids[8..12].try_into().ok()?);
    let sub_id = u32::from_be_bytes(ids[12..].try_into().ok()?);
    Some((database, (object, catalog, sub_id)))
}

/// The catalog oid `obj_description(oid, 'pg_class')` names.
pub fn catalog_oid(name: &str) -> Option<u32> {
    match name.trim_start_matches("pg_catalog.") {
        "pg_class" => Some(PG_CLASS),
        "pg_namespace" => Some(PG_NAMESPACE),
        "pg_type" => Some(PG_TYPE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_within_their_database() {
        let target = (16390, PG_CLASS, 3);
        let key = comment_key("postgres", target);
        assert!(key.starts_with(&comments_prefix("postgres")));
        assert!(!key.starts_with(&comments_prefix("post")));
        assert_eq!(
            parse_comment_key(&key),
            Some(("postgres".to_string(), target))
        );
    }
}

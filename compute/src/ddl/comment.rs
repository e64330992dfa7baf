//! `COMMENT ON … IS 'text' | NULL` (see `comments`).

use datafusion::sql::sqlparser::ast::{CommentObject, ObjectName};

use super::{txn_view, DdlOutcome};
use crate::catalog::CatalogView;
use crate::comments::{comment_key, CommentTarget, PG_CLASS, PG_NAMESPACE, PG_TYPE};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::{normalize, table_name};
use crate::primary::Primary;
use crate::txn::Transaction;

/// Sets (or with `None`, removes) the comment on an object. The key is locked until the
/// transaction ends, so two sessions commenting on one object take turns.
pub async fn comment_on(
    primary: &Primary,
    txn: &mut Transaction,
    object_type: &CommentObject,
    name: &ObjectName,
    comment: Option<&str>,
) -> SqlResult<DdlOutcome> {
    let target = {
        let view = txn_view(primary, txn);
        target(&view, object_type, name)?
    };
    let key = comment_key(txn.database(), target);
    txn.lock(&key).await?;
    match comment {
        // PostgreSQL treats an empty comment as none.
        Some(text) if !text.is_empty() => {
            txn.put(key, bytes::Bytes::copy_from_slice(text.as_bytes()))
        }
        _ => txn.delete(key),
    }
    Ok(DdlOutcome {
        tag: "COMMENT",
        notice: None,
        detail: None,
    })
}

/// The object a `COMMENT ON` names.
fn target(
    view: &CatalogView,
    object_type: &CommentObject,
    name: &ObjectName,
) -> SqlResult<CommentTarget> {
    // A relation of one kind: its oid, else 42809 when another kind has the name, else 42P01.
    let relation = |kind: &str, oid: &dyn Fn(&str, &str) -> SqlResult<Option<u64>>| {
        let (schema, relation) = table_name(name)?;
        match oid(&schema, &relation)? {
            Some(oid) => Ok((oid, PG_CLASS, 0)),
            None if view.relation_exists(&schema, &relation)? => Err(not_a(&relation, kind)),
            None => Err(SqlError::undefined_table(&relation)),
        }
    };
    Ok(match object_type {
        CommentObject::Table => relation("table", &|s, n| Ok(view.get(s, n)?.map(|d| d.id)))?,
        CommentObject::View => relation("view", &|s, n| Ok(view.get_view(s, n)?.map(|d| d.id)))?,
        CommentObject::Sequence => relation("sequence", &|s, n| {
            Ok(view.get_sequence(s, n)?.map(|d| d.id))
        })?,
        CommentObject::Index => relation("index", &|s, n| {
            Ok(view.tables(s).iter().find_map(|t| {
                crate::pg_catalog::table_indexes(t)
                    .into_iter()
                    .find(|i| i.name == n)
                    .map(|i| i.oid as u64)
            }))
        })?,
        CommentObject::Column => {
            let Some((column, table)) = name.0.split_last() else {
                return Err(SqlError::syntax("COMMENT ON COLUMN needs table.column"));
            };
            if table.is_empty() {
                return Err(SqlError::syntax(format!(
                    "column name must be qualified: {name}"
                )));
            }
            let column = column
                .as_ident()
                .map(normalize)
                .ok_or_else(|| SqlError::syntax(format!("invalid name {name}")))?;
            let (schema, relation) = table_name(&ObjectName(table.to_vec()))?;
            let def = view
                .get(&schema, &relation)?
                .ok_or_else(|| SqlError::undefined_table(&relation))?;
            let id = def
                .columns
                .iter()
                .find(|c| c.name == column)
                .map(|c| c.id)
                .ok_or_else(|| {
                    SqlError::new(
                        sqlstate::UNDEFINED_COLUMN,
                        format!("column \"{column}\" of relation \"{relation}\" does not exist"),
                    )
                })?;
            (def.id, PG_CLASS, id)
        }
        CommentObject::Schema => {
            let schema = match name.0.as_slice() {
                [part] => part.as_ident().map(normalize),
                _ => None,
            }
            .ok_or_else(|| SqlError::syntax(format!("invalid schema name {name}")))?;
            let info = view.schema(&schema)?.ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_SCHEMA_NAME,
                    format!("schema \"{schema}\" does not exist"),
                )
            })?;
            (info.oid, PG_NAMESPACE, 0)
        }
        CommentObject::Type => {
            let (schema, type_name) = crate::enums::type_name_parts(name)
                .ok_or_else(|| SqlError::syntax(format!("invalid type name {name}")))?;
            let def = view.enum_type(&schema, &type_name)?.ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("type \"{type_name}\" does not exist"),
                )
            })?;
            (def.id, PG_TYPE, 0)
        }
        other => return Err(SqlError::unsupported(format!("COMMENT ON {other}"))),
    })
}

fn not_a(relation: &str, kind: &str) -> SqlError {
    SqlError::new(
        sqlstate::WRONG_OBJECT_TYPE,
        format!("\"{relation}\" is not a {kind}"),
    )
}

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
    let missing_relation = |relation: &str| SqlError::undefined_table(relation);
    Ok(match object_type {
        CommentObject::Table => {
            let (schema, relation) = table_name(name)?;
            match view.get(&schema, &relation)? {
                Some(def) => (def.id, PG_CLASS, 0),
                None if view.relation_exists(&schema, &relation)? => {
                    return Err(not_a(&relation, "table"))
                }
                None => return Err(missing_relation(&relation)),
            }
        }
        CommentObject::View => {
            let (schema, relation) = table_name(name)?;
            match view.get_view(&schema, &relation)? {
                Some(def) => (def.id, PG_CLASS, 0),
                None if view.relation_exists(&schema, &relation)? => {
                    return Err(not_a(&relation, "view"))
                }
                None => return Err(missing_relation(&relation)),
            }
        }
        CommentObject::Sequence => {
            let (schema, relation) = table_name(name)?;
            match view.get_sequence(&schema, &relation)? {
                Some(def) => (def.id, PG_CLASS, 0),
                None if view.relation_exists(&schema, &relation)? => {
                    return Err(not_a(&relation, "sequence"))
                }
                None => return Err(missing_relation(&relation)),
            }
        }
        CommentObject::Index => {
            let (schema, relation) = table_name(name)?;
            let oid = view.tables(&schema).iter().find_map(|t| {
                crate::pg_catalog::table_indexes(t)
                    .into_iter()
                    .find(|i| i.name == relation)
                    .map(|i| i.oid as u64)
            });
            match oid {
                Some(oid) => (oid, PG_CLASS, 0),
                None if view.relation_exists(&schema, &relation)? => {
                    return Err(not_a(&relation, "index"))
                }
                None => return Err(missing_relation(&relation)),
            }
        }
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
                .ok_or_else(|| missing_relation(&relation))?;
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

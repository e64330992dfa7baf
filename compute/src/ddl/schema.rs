//! CREATE SCHEMA and DROP SCHEMA.
//!
//! A schema is one catalog key, claimed by name. Creating a relation in a schema takes a shared
//! lock on that key and dropping the schema an exclusive one, so a relation is never created in
//! a schema that a concurrent transaction is dropping.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::DdlOutcome;
use crate::catalog::{
    encode_schema_def, schema_key, CatalogView, SchemaDef, BUILTIN_SCHEMAS, DEFAULT_SCHEMA,
};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::primary::Primary;
use crate::txn::Transaction;

fn txn_view<'a>(primary: &'a Primary, txn: &'a Transaction) -> CatalogView<'a> {
    CatalogView::of(&primary.catalog, txn)
}

fn missing(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_SCHEMA_NAME,
        format!("schema \"{name}\" does not exist"),
    )
}

pub async fn create_schema(
    primary: &Primary,
    txn: &mut Transaction,
    name: &str,
    if_not_exists: bool,
) -> SqlResult<DdlOutcome> {
    if name.starts_with("pg_") {
        return Err(SqlError::new(
            sqlstate::RESERVED_NAME,
            format!("unacceptable schema name \"{name}\""),
        )
        .with_detail("The prefix \"pg_\" is reserved for system schemas."));
    }
    let key = schema_key(txn.database(), name);
    txn.lock(&key).await?;
    if txn_view(primary, txn).schema_exists(name)? {
        return DdlOutcome::already_exists(
            "CREATE SCHEMA",
            "schema",
            name,
            if_not_exists,
            sqlstate::DUPLICATE_SCHEMA,
        );
    }
    let id = super::allocate_table_id(primary, txn).await?;
    let def = SchemaDef {
        id,
        database: txn.database().to_string(),
        name: name.to_string(),
    };
    txn.put(key, encode_schema_def(&def));
    tracing::info!(schema = %name, id, "created schema");
    Ok(DdlOutcome {
        tag: "CREATE SCHEMA",
        notice: None,
        detail: None,
    })
}

/// Holds `schema` for a relation being created in it (a shared lock on its key, so that a
/// concurrent DROP SCHEMA waits), and checks that it exists.
pub async fn use_schema(primary: &Primary, txn: &mut Transaction, schema: &str) -> SqlResult<()> {
    if BUILTIN_SCHEMAS.iter().any(|(name, _)| *name == schema) {
        return Ok(());
    }
    txn.lock_shared(&schema_key(txn.database(), schema)).await?;
    match txn_view(primary, txn).schema_exists(schema)? {
        true => Ok(()),
        false => Err(missing(schema)),
    }
}

pub async fn drop_schemas(
    primary: &Primary,
    txn: &mut Transaction,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<DdlOutcome> {
    let mut notices = Vec::new();
    let mut reached = Vec::new();
    for name in names {
        let schema = match name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => crate::names::normalize(ident),
            _ => return Err(SqlError::syntax(format!("invalid schema name {name}"))),
        };
        if BUILTIN_SCHEMAS.iter().any(|(n, _)| *n == schema) {
            if schema == DEFAULT_SCHEMA {
                return Err(SqlError::unsupported("dropping schema public"));
            }
            return Err(SqlError::new(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "cannot drop schema {schema} because it is required by the database system"
                ),
            ));
        }
        let key = schema_key(txn.database(), &schema);
        txn.lock(&key).await?;
        if !txn_view(primary, txn).schema_exists(&schema)? {
            if if_exists {
                notices.push(format!("schema \"{schema}\" does not exist, skipping"));
                continue;
            }
            return Err(missing(&schema));
        }
        let contents = Contents::of(&txn_view(primary, txn), &schema);
        if !contents.is_empty() {
            if !cascade {
                return Err(SqlError::new(
                    sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                    format!("cannot drop schema {schema} because other objects depend on it"),
                )
                .with_detail(contents.describe(&schema).join("\n"))
                .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
            }
            reached.extend(contents.describe(&schema));
            let qualified = |names: &[String]| -> Vec<ObjectName> {
                names
                    .iter()
                    .map(|n| {
                        ObjectName::from(vec![
                            Ident::with_quote('"', &schema),
                            Ident::with_quote('"', n),
                        ])
                    })
                    .collect()
            };
            // Views first (they read the tables), then tables (which drop the sequences they
            // own), then the sequences left. Each drop cascades to what depends on it in other
            // schemas, as PostgreSQL's does.
            super::view::drop_views(primary, txn, &qualified(&contents.views), true, true).await?;
            super::drop_tables(primary, txn, &qualified(&contents.tables), true, true).await?;
            let sequences: Vec<String> = txn_view(primary, txn)
                .sequences(&schema)
                .iter()
                .map(|q| q.name.clone())
                .collect();
            super::sequence::drop_sequences(primary, txn, &qualified(&sequences), true, true)
                .await?;
        }
        txn.delete(key);
        tracing::info!(%schema, "dropped schema");
    }
    if !reached.is_empty() {
        let (notice, detail) = cascade_notice(&reached);
        notices.push(notice);
        return Ok(DdlOutcome {
            tag: "DROP SCHEMA",
            notice: Some(notices.join("\n")),
            detail,
        });
    }
    Ok(DdlOutcome::with_notices("DROP SCHEMA", notices))
}

/// The relations of a schema, by kind.
struct Contents {
    tables: Vec<String>,
    views: Vec<String>,
    sequences: Vec<String>,
}

impl Contents {
    fn of(view: &CatalogView, schema: &str) -> Self {
        Self {
            tables: view.table_names(schema),
            views: view.views(schema).iter().map(|v| v.name.clone()).collect(),
            // A sequence a column owns goes with its table.
            sequences: view
                .sequences(schema)
                .iter()
                .filter(|q| q.owned_by.is_none())
                .map(|q| q.name.clone())
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.views.is_empty() && self.sequences.is_empty()
    }

    /// One line per relation, as PostgreSQL lists the objects a drop reaches.
    fn describe(&self, schema: &str) -> Vec<String> {
        let kinds = [
            ("table", &self.tables),
            ("view", &self.views),
            ("sequence", &self.sequences),
        ];
        kinds
            .iter()
            .flat_map(|(kind, names)| {
                names
                    .iter()
                    .map(move |n| format!("{kind} {schema}.{n} depends on schema {schema}"))
            })
            .collect()
    }
}

/// PostgreSQL's NOTICE for a cascading drop: the one object, or how many, with each in the
/// DETAIL.
fn cascade_notice(lines: &[String]) -> (String, Option<String>) {
    let reached: Vec<String> = lines
        .iter()
        .map(|l| l.split(" depends on ").next().unwrap_or(l).to_string())
        .map(|r| format!("drop cascades to {r}"))
        .collect();
    match reached.as_slice() {
        [one] => (one.clone(), None),
        many => (
            format!("drop cascades to {} other objects", many.len()),
            Some(many.join("\n")),
        ),
    }
}

//! CREATE TABLE and DROP TABLE: catalog writes committed through the WAL like any other write.

pub mod alter;
pub mod comment;
pub mod constraint;
pub mod database;
pub mod enum_type;
pub mod index;
pub mod lock;
pub mod retype;
pub mod schema;
pub mod sequence;
pub mod view;

use std::collections::HashSet;

use bytes::Bytes;
use datafusion::execution::context::SessionContext;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, DataType as SqlDataType, Expr as SqlExpr, ForeignKeyConstraint,
    GeneratedAs, GeneratedExpressionMode, ObjectName, TableConstraint,
};

use crate::catalog::CatalogView;
use crate::catalog::{
    decode_next_table_id, encode_table_def, next_table_id_key, table_def_key, table_name_key,
    ColumnDef, Identity, TableDef,
};
use crate::checks::CheckDef;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::foreign_keys::ForeignKeyDef;
use crate::names::{normalize, table_name};
use crate::primary::Primary;
use crate::txn::Transaction;
use crate::types::SqlType;

/// What a DDL statement did, for the command tag and an optional NOTICE.
pub struct DdlOutcome {
    pub tag: &'static str,
    pub notice: Option<String>,
    /// The NOTICE's DETAIL (the objects a cascading drop reached).
    pub detail: Option<String>,
}

impl DdlOutcome {
    /// The outcome with one NOTICE.
    pub fn with_notice(tag: &'static str, notice: String) -> Self {
        DdlOutcome {
            tag,
            notice: Some(notice),
            detail: None,
        }
    }

    /// A CREATE of a `kind` named `name` that exists already: with IF NOT EXISTS, a NOTICE that
    /// it is skipped; else the duplicate error `code`, both worded as PostgreSQL words them.
    pub fn already_exists(
        tag: &'static str,
        kind: &str,
        name: &str,
        if_not_exists: bool,
        code: &'static str,
    ) -> SqlResult<Self> {
        if if_not_exists {
            return Ok(Self::with_notice(
                tag,
                format!("{kind} \"{name}\" already exists, skipping"),
            ));
        }
        Err(SqlError::new(
            code,
            format!("{kind} \"{name}\" already exists"),
        ))
    }

    /// The outcome with these notices (for statements on several objects), one per line.
    pub fn with_notices(tag: &'static str, notices: Vec<String>) -> Self {
        DdlOutcome {
            tag,
            notice: (!notices.is_empty()).then(|| notices.join("\n")),
            detail: None,
        }
    }
}

/// Creates a table in `txn`: the definition is visible to `txn` at once and to everyone else when
/// `txn` commits. The name and the table-id counter are locked until then, so concurrent DDL on
/// them waits.
pub async fn create_table(
    ctx: &SessionContext,
    primary: &Primary,
    txn: &mut Transaction,
    stmt: &CreateTable,
) -> SqlResult<DdlOutcome> {
    reject_unsupported_create(stmt)?;
    let (schema, name) = table_name(&stmt.name)?;
    schema::use_schema(primary, txn, &schema).await?;
    let name_key = table_name_key(txn.database(), &schema, &name);
    txn.lock(&name_key).await?;
    let view = CatalogView::of(&primary.catalog, txn);
    if view.relation_exists(&schema, &name)? {
        return DdlOutcome::already_exists(
            "CREATE TABLE",
            "relation",
            &name,
            stmt.if_not_exists,
            sqlstate::DUPLICATE_TABLE,
        );
    }

    let mut columns = Vec::with_capacity(stmt.columns.len());
    let mut names = HashSet::new();
    let mut primary_key: Option<Vec<String>> = None;
    // Columns whose values come from a sequence of their own: (column position, sequence type,
    // sequence options).
    let mut owned_sequences = Vec::new();
    // CHECK constraints: (explicit name, expression, the column it was declared on).
    let mut checks: Vec<(Option<String>, SqlExpr, Option<String>)> = Vec::new();
    // FOREIGN KEY constraints: (the constraint, the column it was declared on).
    let mut foreign_keys: Vec<(ForeignKeyConstraint, Option<String>)> = Vec::new();
    // UNIQUE constraints, each made an index once the table exists.
    let mut uniques: Vec<index::NewIndex> = Vec::new();
    for (i, col) in stmt.columns.iter().enumerate() {
        let col_name = normalize(&col.name);
        if !names.insert(col_name.clone()) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{col_name}\" specified more than once"),
            ));
        }
        let ColumnType {
            ty,
            serial,
            enum_type,
        } = column_type(&col.data_type, &view)?;
        let mut nullable = serial.is_none();
        let mut default = None;
        let mut identity = None;
        let mut generated = None;
        let mut sequence_options = Vec::new();
        for option in &col.options {
            if let Some((kind, options)) = identity_option(&option.option) {
                identity = Some(kind);
                sequence_options = options;
                nullable = false;
                continue;
            }
            if let Some(expr) = generation_option(&option.option) {
                generated = Some(expr?);
                continue;
            }
            match &option.option {
                ColumnOption::Null => {}
                ColumnOption::NotNull => nullable = false,
                ColumnOption::PrimaryKey(_) => {
                    set_primary_key(&mut primary_key, vec![col_name.clone()], &name)?
                }
                ColumnOption::Default(expr) => default = Some(default_text(expr)),
                ColumnOption::ForeignKey(fk) => {
                    let mut fk = fk.clone();
                    if fk.name.is_none() {
                        fk.name = option.name.clone();
                    }
                    foreign_keys.push((fk, Some(col_name.clone())))
                }
                ColumnOption::Unique(unique) => {
                    let mut new =
                        index::NewIndex::from_unique(unique, option.name.as_ref().map(normalize))?;
                    new.keys = vec![index::NewKey::Column(col_name.clone())];
                    uniques.push(new);
                }
                ColumnOption::Check(check) => checks.push((
                    check.name.as_ref().or(option.name.as_ref()).map(normalize),
                    check.expr.as_ref().clone(),
                    Some(col_name.clone()),
                )),
                other => return Err(SqlError::unsupported(format!("column option {other}"))),
            }
        }
        let owns = owned_sequence(
            &col_name,
            &name,
            ty,
            serial.is_some(),
            identity.is_some(),
            &default,
        )?;
        if owns {
            owned_sequences.push((i, ty, sequence_options));
        }
        check_generated_default(&col_name, &name, &default, &generated)?;
        columns.push(ColumnDef {
            id: i as u32 + 1,
            name: col_name,
            ty,
            nullable,
            default,
            identity,
            enum_type,
            generated,
        });
    }
    for constraint in &stmt.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                set_primary_key(&mut primary_key, index::column_names(&pk.columns)?, &name)?;
            }
            TableConstraint::ForeignKey(fk) => foreign_keys.push((fk.clone(), None)),
            TableConstraint::Unique(unique) => {
                uniques.push(index::NewIndex::from_unique(unique, None)?)
            }
            TableConstraint::Check(check) => checks.push((
                check.name.as_ref().map(normalize),
                check.expr.as_ref().clone(),
                None,
            )),
            other => return Err(SqlError::unsupported(format!("table constraint {other}"))),
        }
    }
    let checks = name_checks(&name, &columns, checks)?;
    let mut pk_ids = Vec::new();
    for col_name in primary_key.unwrap_or_default() {
        let Some(col) = columns.iter_mut().find(|c| c.name == col_name) else {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!("column \"{col_name}\" named in key does not exist"),
            ));
        };
        col.ty.check_indexable(&col.name)?;
        if pk_ids.contains(&col.id) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{col_name}\" appears twice in primary key constraint"),
            ));
        }
        col.nullable = false;
        pk_ids.push(col.id);
    }

    let id = allocate_table_id(primary, txn).await?;
    for (i, ty, options) in owned_sequences {
        let view = CatalogView::of(&primary.catalog, txn);
        let seq_name = sequence::owned_sequence_name(&view, &schema, &name, &columns[i].name)?;
        let seq = sequence::add_sequence(
            primary,
            txn,
            sequence::NewSequence {
                schema: schema.clone(),
                name: seq_name,
                ty,
                options,
                owned_by: Some((id, columns[i].id)),
            },
        )
        .await?;
        columns[i].default = Some(sequence::nextval_default(&seq.schema, &seq.name));
    }
    let mut def = TableDef {
        id,
        database: txn.database().to_string(),
        next_column_id: columns.len() as u32 + 1,
        schema,
        name: name.clone(),
        columns,
        primary_key: pk_ids,
        checks,
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
    };
    for (fk, column) in foreign_keys {
        let view = CatalogView::of(&primary.catalog, txn);
        let resolved = resolve_foreign_key(&view, &def, &fk, column)?;
        def.foreign_keys.push(resolved);
    }
    txn.put(name_key, Bytes::copy_from_slice(&id.to_be_bytes()));
    txn.put(table_def_key(id), encode_table_def(&def));
    for unique in uniques {
        index::add_index(ctx, primary, txn, &def, unique, &Vec::new()).await?;
    }
    tracing::info!(table = %name, id, "created table");
    Ok(DdlOutcome {
        tag: "CREATE TABLE",
        notice: None,
        detail: None,
    })
}

/// Writes a changed definition of an existing table (same id) into `txn`.
pub(crate) async fn replace_table_def(txn: &mut Transaction, def: &TableDef) -> SqlResult<()> {
    let key = table_def_key(def.id);
    txn.lock(&key).await?;
    txn.put(key, encode_table_def(def));
    Ok(())
}

/// A new table id: the counter is locked until the transaction ends, so the latest committed
/// value (or this transaction's own, if it allocated before) is the one to bump.
pub(crate) async fn allocate_table_id(primary: &Primary, txn: &mut Transaction) -> SqlResult<u64> {
    let counter_key = next_table_id_key();
    txn.lock(&counter_key).await?;
    let id = match txn.write(&counter_key) {
        Some(own) => decode_next_table_id(own.as_deref())?,
        None => {
            let keys = vec![counter_key.clone()];
            let latest = primary.txns.last_commit_lsn();
            let counter = primary.read(keys, latest).await?;
            decode_next_table_id(counter[0].as_deref())?
        }
    };
    txn.put(counter_key, Bytes::copy_from_slice(&(id + 1).to_be_bytes()));
    Ok(id)
}

/// Replaces a table's definition by one under a new table id, in `txn`: the table's rows are
/// then those written under the new id (none, for TRUNCATE). The old rows stay in storage under
/// the old id, unreachable, as after DROP TABLE. Like PostgreSQL's TRUNCATE, this is not MVCC-safe:
/// a transaction whose snapshot predates the commit sees the table empty afterwards.
async fn rewrite_under_new_id(
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
    new: TableDef,
) -> SqlResult<TableDef> {
    let name_key = table_name_key(&def.database, &def.schema, &def.name);
    let old_def_key = table_def_key(def.id);
    txn.lock(&name_key).await?;
    txn.lock(&old_def_key).await?;
    let id = allocate_table_id(primary, txn).await?;
    let mut new = TableDef { id, ..new };
    // What names the table by id follows it: its own foreign keys to itself, other tables'
    // foreign keys to it, the views that read it, and the sequences its columns own.
    for fk in new.foreign_keys.iter_mut().filter(|fk| fk.parent == def.id) {
        fk.parent = id;
    }
    let view = CatalogView::of(&primary.catalog, txn);
    let children: Vec<_> = crate::foreign_keys::referencing(&view, def)
        .into_iter()
        .filter(|(child, _)| child.id != def.id)
        .map(|(child, _)| child)
        .collect();
    let owned: Vec<_> = view
        .sequences(&def.schema)
        .into_iter()
        .filter(|q| q.owned_by.is_some_and(|(t, _)| t == def.id))
        .collect();
    let mut seen = datafusion::common::HashSet::new();
    for child in children.into_iter().filter(|c| seen.insert(c.id)) {
        let mut changed = child.as_ref().clone();
        for fk in changed
            .foreign_keys
            .iter_mut()
            .filter(|fk| fk.parent == def.id)
        {
            fk.parent = id;
        }
        replace_table_def(txn, &changed).await?;
    }
    let dependent_views = crate::views::dependent_views(&txn_view(primary, txn), def.id);
    for view in dependent_views {
        let mut changed = view.as_ref().clone();
        for relation in changed.depends_on.iter_mut().filter(|r| **r == def.id) {
            *relation = id;
        }
        let key = crate::views::view_def_key(view.id);
        txn.lock(&key).await?;
        txn.put(key, crate::views::encode_view_def(&changed));
    }
    for seq in owned {
        let mut changed = seq.as_ref().clone();
        changed.owned_by = changed.owned_by.map(|(_, column)| (id, column));
        let key = crate::catalog::sequence_def_key(seq.id);
        txn.lock(&key).await?;
        txn.put(key, crate::catalog::encode_sequence_def(&changed));
    }
    txn.delete(old_def_key);
    txn.put(table_def_key(id), encode_table_def(&new));
    txn.put(name_key, Bytes::copy_from_slice(&id.to_be_bytes()));
    Ok(new)
}

/// `TRUNCATE`: every named table starts empty, in O(1) (see [`rewrite_under_new_id`]).
pub async fn truncate(
    primary: &Primary,
    txn: &mut Transaction,
    names: &[ObjectName],
) -> SqlResult<DdlOutcome> {
    for name in names {
        let (schema, table) = table_name(name)?;
        let view = CatalogView::of(&primary.catalog, txn);
        let Some(def) = view.get(&schema, &table)? else {
            return Err(SqlError::undefined_table(&table));
        };
        let truncated: Vec<String> = names
            .iter()
            .filter_map(|n| table_name(n).ok().map(|(_, t)| t))
            .collect();
        if let Some((child, _)) = crate::foreign_keys::referencing(&view, &def)
            .into_iter()
            .find(|(child, _)| !truncated.contains(&child.name))
        {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "cannot truncate a table referenced in a foreign key constraint",
            )
            .with_detail(format!(
                "Table \"{}\" references \"{}\".",
                child.name, def.name
            ))
            .with_hint(format!(
                "Truncate table \"{}\" at the same time, or use TRUNCATE ... CASCADE.",
                child.name
            )));
        }
        rewrite_under_new_id(primary, txn, &def, def.as_ref().clone()).await?;
    }
    Ok(DdlOutcome {
        tag: "TRUNCATE TABLE",
        notice: None,
        detail: None,
    })
}

/// `ALTER TABLE … ADD PRIMARY KEY (…)` on a table that has none: `rows` (all of them, in the
/// table's column order) are written again under their primary-key keys, in a new table id.
pub async fn add_primary_key(
    ctx: &SessionContext,
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
    columns: &[String],
    rows: &[datafusion::arrow::array::RecordBatch],
) -> SqlResult<DdlOutcome> {
    if !def.primary_key.is_empty() {
        return Err(SqlError::new(
            sqlstate::INVALID_TABLE_DEFINITION,
            format!(
                "multiple primary keys for table \"{}\" are not allowed",
                def.name
            ),
        ));
    }
    let mut new = def.clone();
    for name in columns {
        let Some(col) = new.columns.iter_mut().find(|c| &c.name == name) else {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    def.name
                ),
            ));
        };
        col.ty.check_indexable(&col.name)?;
        if new.primary_key.contains(&col.id) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{name}\" appears twice in primary key constraint"),
            ));
        }
        col.nullable = false;
        new.primary_key.push(col.id);
    }
    rewrite_rows(ctx, primary, txn, def, new, rows).await?;
    Ok(DdlOutcome {
        tag: "ALTER TABLE",
        notice: None,
        detail: None,
    })
}

/// Writes `rows` (every row of `def`, in `new`'s column order) again under a new table id as
/// `new` keys them, and builds every index of `new` again: what a change of the primary key's
/// columns or types needs. 23505 if two rows get one key; each row's constraints are checked.
pub async fn rewrite_rows(
    ctx: &SessionContext,
    primary: &Primary,
    txn: &mut Transaction,
    def: &TableDef,
    new: TableDef,
    rows: &[datafusion::arrow::array::RecordBatch],
) -> SqlResult<TableDef> {
    let new = rewrite_under_new_id(primary, txn, def, new).await?;
    let mut seen = datafusion::common::HashSet::new();
    let mut keyed_rows: index::TableRows = Vec::with_capacity(rows.len());
    for batch in rows {
        let enc = crate::row_codec::RowEncoder::try_new(&new, batch.columns())?;
        let mut keys = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            enc.check_constraints(row)?;
            let key = enc.key(row, || 0);
            if !seen.insert(key.clone()) {
                return Err(SqlError::new(
                    sqlstate::UNIQUE_VIOLATION,
                    format!(
                        "could not create unique index \"{}\"",
                        new.primary_key_name()
                    ),
                )
                .with_detail(format!("Key {} is duplicated.", enc.describe_key(row)))
                .with_table(&new.schema, &new.name)
                .with_constraint(new.primary_key_name()));
            }
            txn.put(key.clone(), enc.value(row));
            keys.push(key);
        }
        keyed_rows.push((batch.columns().to_vec(), keys));
    }
    // The rows have new keys, so every index is written again.
    for index in &new.indexes {
        crate::indexes::build(ctx, txn, &new, index, &keyed_rows)?;
    }
    Ok(new)
}

/// `GENERATED { ALWAYS | BY DEFAULT } AS IDENTITY [(options)]`: its kind and the options of
/// the sequence it owns; `None` for any other column option.
pub(super) fn identity_option(
    option: &ColumnOption,
) -> Option<(
    Identity,
    Vec<datafusion::sql::sqlparser::ast::SequenceOptions>,
)> {
    match option {
        ColumnOption::Generated {
            generated_as: generated @ (GeneratedAs::Always | GeneratedAs::ByDefault),
            sequence_options,
            generation_expr: None,
            ..
        } => {
            let kind = match generated {
                GeneratedAs::Always => Identity::Always,
                _ => Identity::ByDefault,
            };
            Some((kind, sequence_options.clone().unwrap_or_default()))
        }
        _ => None,
    }
}

/// `GENERATED ALWAYS AS (expr) STORED`: the expression as SQL text; `None` for any other column
/// option. PostgreSQL 15 has no virtual generated columns, so one is 0A000.
pub(super) fn generation_option(option: &ColumnOption) -> Option<SqlResult<String>> {
    match option {
        ColumnOption::Generated {
            generation_expr: Some(expr),
            generation_expr_mode,
            ..
        } => Some(match generation_expr_mode {
            Some(GeneratedExpressionMode::Stored) => Ok(match expr {
                SqlExpr::Nested(inner) => inner.to_string(),
                other => other.to_string(),
            }),
            _ => Err(SqlError::unsupported(
                "virtual generated columns (GENERATED ALWAYS AS … without STORED)",
            )),
        }),
        _ => None,
    }
}

/// The columns of a new table or column: a generated column may have no default of its own.
fn check_generated_default(
    column: &str,
    table: &str,
    default: &Option<String>,
    generated: &Option<String>,
) -> SqlResult<()> {
    if default.is_some() && generated.is_some() {
        return Err(SqlError::syntax(format!(
            "both default and generation expression specified for column \"{column}\" of table \"{table}\""
        )));
    }
    Ok(())
}

/// Whether a column (of `table`) owns a sequence: a serial or identity one, which then can
/// have no other default, and, for identity, must be an integer.
pub(super) fn owned_sequence(
    column: &str,
    table: &str,
    ty: SqlType,
    serial: bool,
    identity: bool,
    default: &Option<String>,
) -> SqlResult<bool> {
    if !serial && !identity {
        return Ok(false);
    }
    if default.is_some() {
        return Err(SqlError::syntax(format!(
            "multiple default values specified for column \"{column}\" of table \"{table}\""
        )));
    }
    if identity && !matches!(ty, SqlType::Int2 | SqlType::Int4 | SqlType::Int8) {
        return Err(SqlError::new(
            sqlstate::DATATYPE_MISMATCH,
            "identity column type must be smallint, integer, or bigint",
        ));
    }
    Ok(true)
}

/// A FOREIGN KEY of the table `def` being created, checked against the table it references
/// (which may be `def` itself): its columns must be that table's primary key.
pub(super) fn resolve_foreign_key(
    view: &CatalogView,
    def: &TableDef,
    fk: &ForeignKeyConstraint,
    declared_on: Option<String>,
) -> SqlResult<ForeignKeyDef> {
    use crate::foreign_keys::FkAction;
    use datafusion::sql::sqlparser::ast::{DeferrableInitial, ReferentialAction};
    let action = |action: Option<ReferentialAction>| match action {
        None | Some(ReferentialAction::NoAction) => FkAction::NoAction,
        Some(ReferentialAction::Restrict) => FkAction::Restrict,
        Some(ReferentialAction::Cascade) => FkAction::Cascade,
        Some(ReferentialAction::SetNull) => FkAction::SetNull,
        Some(ReferentialAction::SetDefault) => FkAction::SetDefault,
    };
    let on_delete = action(fk.on_delete);
    let on_update = action(fk.on_update);
    // INITIALLY DEFERRED implies DEFERRABLE, as in PostgreSQL.
    let initially_deferred = fk
        .characteristics
        .as_ref()
        .is_some_and(|c| c.initially == Some(DeferrableInitial::Deferred));
    let deferrable = fk
        .characteristics
        .as_ref()
        .and_then(|c| c.deferrable)
        .unwrap_or(initially_deferred);
    if initially_deferred && !deferrable {
        return Err(SqlError::syntax(
            "constraint declared INITIALLY DEFERRED must be DEFERRABLE",
        ));
    }
    let (parent_schema, parent_name) = table_name(&fk.foreign_table)?;
    let parent = if parent_schema == def.schema && parent_name == def.name {
        std::sync::Arc::new(def.clone())
    } else {
        view.get(&parent_schema, &parent_name)?
            .ok_or_else(|| SqlError::undefined_table(&parent_name))?
    };
    let child_columns: Vec<String> = match declared_on {
        Some(c) => vec![c],
        None => fk.columns.iter().map(normalize).collect(),
    };
    let primary_key = parent.primary_key_indexes();
    let no_key = || {
        SqlError::new(
            sqlstate::INVALID_FOREIGN_KEY,
            format!(
                "there is no unique constraint matching given keys for referenced table \"{}\"",
                parent.name
            ),
        )
    };
    let referred: Vec<String> = if fk.referred_columns.is_empty() {
        if primary_key.is_empty() {
            return Err(SqlError::new(
                sqlstate::INVALID_FOREIGN_KEY,
                format!(
                    "there is no primary key for referenced table \"{}\"",
                    parent.name
                ),
            ));
        }
        primary_key
            .iter()
            .map(|&i| parent.columns[i].name.clone())
            .collect()
    } else {
        fk.referred_columns.iter().map(normalize).collect()
    };
    if referred.len() != child_columns.len() {
        return Err(SqlError::new(
            sqlstate::INVALID_FOREIGN_KEY,
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    let undefined = |name: &str| {
        SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{name}\" referenced in foreign key constraint does not exist"),
        )
    };
    let mut referred_positions = Vec::with_capacity(referred.len());
    for r in &referred {
        match parent.columns.iter().position(|c| &c.name == r) {
            Some(p) => referred_positions.push(p),
            None => return Err(undefined(r)),
        }
    }
    // The referenced columns must be the primary key's or a unique index's, in any order.
    let same_set = |positions: &[usize]| {
        positions.len() == referred_positions.len()
            && positions.iter().all(|p| referred_positions.contains(p))
    };
    let (key, referenced_columns) = if !primary_key.is_empty() && same_set(&primary_key) {
        (primary_key, Vec::new())
    } else {
        let index = parent
            .indexes
            .iter()
            .find(|i| i.unique && i.is_plain() && same_set(&i.column_positions(&parent)))
            .ok_or_else(no_key)?;
        (index.column_positions(&parent), index.columns.clone())
    };
    if !referenced_columns.is_empty() && (on_delete.acts() || on_update.acts()) {
        return Err(SqlError::unsupported(
            "ON DELETE / ON UPDATE CASCADE or SET NULL on a foreign key referencing a UNIQUE constraint",
        ));
    }
    // The referencing columns in the order of the parent's key columns.
    let mut columns = Vec::with_capacity(key.len());
    for &k in &key {
        let parent_col = &parent.columns[k];
        let at = referred
            .iter()
            .position(|r| r == &parent_col.name)
            .ok_or_else(no_key)?;
        let child_col = def
            .columns
            .iter()
            .find(|c| c.name == child_columns[at])
            .ok_or_else(|| undefined(&child_columns[at]))?;
        if !compatible(child_col.ty, parent_col.ty) {
            return Err(SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "foreign key constraint cannot be implemented: key columns \"{}\" and \"{}\" are of incompatible types: {} and {}",
                    child_col.name,
                    parent_col.name,
                    child_col.ty.display_name(),
                    parent_col.ty.display_name()
                ),
            ));
        }
        columns.push(child_col.id);
    }
    let name = match &fk.name {
        Some(n) => normalize(n),
        None => {
            let base = format!("{}_{}_fkey", def.name, child_columns.join("_"));
            let taken = |n: &str| {
                def.foreign_keys.iter().any(|f| f.name == n)
                    || def.checks.iter().any(|c| c.name == n)
            };
            if taken(&base) {
                (1..)
                    .map(|n| format!("{base}{n}"))
                    .find(|n| !taken(n))
                    .expect("some numbered name is free")
            } else {
                base
            }
        }
    };
    Ok(ForeignKeyDef {
        name,
        columns,
        parent: parent.id,
        on_delete,
        on_update,
        deferrable,
        initially_deferred,
        not_valid: false,
        referenced_columns,
    })
}

/// Whether values of `a` can reference values of `b` (PostgreSQL needs an equality operator).
pub(super) fn compatible(a: SqlType, b: SqlType) -> bool {
    use SqlType::*;
    let family = |t: SqlType| match t {
        Int2 | Int4 | Int8 | Numeric { .. } | Float4 | Float8 => 0,
        Text | Varchar { .. } | Char { .. } => 1,
        Timestamp | Timestamptz | Date => 2,
        _ => 3,
    };
    family(a) == family(b) && (family(a) != 3 || a == b)
}

/// Names the table's checks: explicit names must differ, unnamed ones get PostgreSQL's names.
fn name_checks(
    table: &str,
    columns: &[ColumnDef],
    declared: Vec<(Option<String>, SqlExpr, Option<String>)>,
) -> SqlResult<Vec<CheckDef>> {
    let all_columns: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let mut named: Vec<CheckDef> = Vec::new();
    for (name, expr, _) in declared.iter().filter(|(n, _, _)| n.is_some()) {
        let name = name.clone().expect("filtered to named checks");
        if named.iter().any(|c| c.name == name) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_OBJECT,
                format!("constraint \"{name}\" for relation \"{table}\" already exists"),
            ));
        }
        named.push(CheckDef {
            name,
            expr: expr.to_string(),
            not_valid: false,
        });
    }
    let mut checks = Vec::new();
    for (name, expr, column) in declared {
        let name = match name {
            Some(n) => n,
            None => {
                let scope = match column {
                    Some(c) => vec![c],
                    None => all_columns.clone(),
                };
                let taken: Vec<CheckDef> = named.iter().chain(&checks).cloned().collect();
                crate::checks::default_check_name(table, &expr, &scope, &taken)
            }
        };
        checks.push(CheckDef {
            name,
            expr: expr.to_string(),
            not_valid: false,
        });
    }
    Ok(checks)
}

/// A default as stored and shown: `nextval('s')` is written `nextval('s'::regclass)`, as
/// PostgreSQL prints it, so that the sequence's dependents are found by that one spelling.
fn default_text(expr: &SqlExpr) -> String {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments, Value};
    if let SqlExpr::Function(f) = expr {
        if f.name.to_string().eq_ignore_ascii_case("nextval") {
            if let FunctionArguments::List(list) = &f.args {
                if let [FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v)))] =
                    list.args.as_slice()
                {
                    if let Value::SingleQuotedString(name) = &v.value {
                        if let Ok((schema, name)) = crate::names::relation_name_in_text(name) {
                            let schema =
                                schema.as_deref().unwrap_or(crate::catalog::DEFAULT_SCHEMA);
                            return sequence::nextval_default(schema, &name);
                        }
                    }
                }
            }
        }
    }
    expr.to_string()
}

/// A column's type as declared: a built-in type, a serial, or an enum type of the catalog.
pub(crate) struct ColumnType {
    pub ty: SqlType,
    /// For `serial`, `bigserial` and `smallserial`, the sequence type behind it.
    pub serial: Option<SqlType>,
    /// For an enum type, its definition (kept in the column, see `ColumnDef::enum_type`).
    pub enum_type: Option<Box<crate::enums::EnumTypeDef>>,
}

/// The type a column declares, looked up in `view` when it is not built in.
pub(crate) fn column_type(t: &SqlDataType, view: &CatalogView) -> SqlResult<ColumnType> {
    if let Some(def) = crate::enums::lookup(view, t)? {
        return Ok(ColumnType {
            ty: SqlType::Enum { type_id: def.id },
            serial: None,
            enum_type: Some(Box::new(def.as_ref().clone())),
        });
    }
    let (ty, serial) = builtin_column_type(t)?;
    Ok(ColumnType {
        ty,
        serial,
        enum_type: None,
    })
}

/// A built-in column type, and for `serial`, `bigserial` and `smallserial` the sequence type
/// behind it.
fn builtin_column_type(t: &SqlDataType) -> SqlResult<(SqlType, Option<SqlType>)> {
    if let SqlDataType::Custom(name, args) = t {
        if args.is_empty() {
            let serial = match name.to_string().to_ascii_lowercase().as_str() {
                "serial" | "serial4" => Some(SqlType::Int4),
                "bigserial" | "serial8" => Some(SqlType::Int8),
                "smallserial" | "serial2" => Some(SqlType::Int2),
                _ => None,
            };
            if let Some(ty) = serial {
                return Ok((ty, Some(ty)));
            }
        }
    }
    Ok((SqlType::from_sql(t)?, None))
}

fn set_primary_key(
    slot: &mut Option<Vec<String>>,
    cols: Vec<String>,
    table: &str,
) -> SqlResult<()> {
    if slot.is_some() {
        return Err(SqlError::new(
            sqlstate::INVALID_TABLE_DEFINITION,
            format!("multiple primary keys for table \"{table}\" are not allowed"),
        ));
    }
    *slot = Some(cols);
    Ok(())
}

fn reject_unsupported_create(stmt: &CreateTable) -> SqlResult<()> {
    if stmt.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE ... AS"));
    }
    if stmt.temporary {
        return Err(SqlError::unsupported("CREATE TEMPORARY TABLE"));
    }
    if stmt.like.is_some() || stmt.clone.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE ... LIKE"));
    }
    if stmt.or_replace || stmt.external {
        return Err(SqlError::syntax("syntax error in CREATE TABLE"));
    }
    Ok(())
}

/// `ALTER TABLE … DROP CONSTRAINT name`: a UNIQUE, CHECK or FOREIGN KEY constraint.
pub async fn drop_constraint(
    primary: &Primary,
    txn: &mut Transaction,
    schema: &str,
    table: &str,
    name: &str,
    if_exists: bool,
) -> SqlResult<DdlOutcome> {
    let done = |notice| DdlOutcome {
        tag: "ALTER TABLE",
        notice,
        detail: None,
    };
    let Some(def) = txn_view(primary, txn).get(schema, table)? else {
        return Err(SqlError::undefined_table(table));
    };
    txn.lock(&table_def_key(def.id)).await?;
    let Some(def) = txn_view(primary, txn).table_by_id(def.id)? else {
        return Err(SqlError::undefined_table(table));
    };
    if let Some(index) = def.indexes.iter().find(|i| i.constraint && i.name == name) {
        crate::foreign_keys::require_index_unreferenced(
            &txn_view(primary, txn),
            &def,
            index,
            &format!("constraint {name} on table {table}"),
        )?;
        index::remove_index(txn, &def, index).await?;
        return Ok(done(None));
    }
    let mut changed = def.as_ref().clone();
    changed.checks.retain(|c| c.name != name);
    changed.foreign_keys.retain(|f| f.name != name);
    if changed != *def {
        replace_table_def(txn, &changed).await?;
        return Ok(done(None));
    }
    if !def.primary_key.is_empty() && def.primary_key_name() == name {
        return Err(SqlError::unsupported("dropping a primary key"));
    }
    let missing = format!("constraint \"{name}\" of relation \"{table}\" does not exist");
    if if_exists {
        return Ok(done(Some(format!("{missing}, skipping"))));
    }
    Err(SqlError::new(sqlstate::UNDEFINED_OBJECT, missing))
}

/// Before DDL reads a table's rows to rebuild what depends on them (an index, a new primary
/// key): locks the table's definition alone, which waits for every transaction writing the table
/// and keeps new writers out until `txn` ends. Rows committed after the snapshot are then read
/// by moving the snapshot forward (READ COMMITTED) or refused (40001), so none is missed.
pub async fn lock_for_rebuild(txn: &mut Transaction, def: &TableDef) -> SqlResult<()> {
    txn.lock(&table_def_key(def.id)).await?;
    let (start, end) = crate::table::table_range(def.id);
    if txn.changed_in_range_since_snapshot(&start, &end) {
        if txn.isolation() != crate::txn::Isolation::ReadCommitted {
            return Err(SqlError::new(
                sqlstate::SERIALIZATION_FAILURE,
                "could not serialize access due to concurrent update",
            )
            .with_detail(format!(
                "Table \"{}\" was written after this transaction's snapshot.",
                def.name
            )));
        }
        txn.refresh_snapshot();
    }
    Ok(())
}

/// The catalog as `txn` sees it.
fn txn_view<'a>(primary: &'a Primary, txn: &'a Transaction) -> CatalogView<'a> {
    CatalogView::of(&primary.catalog, txn)
}

/// `DROP TABLE`: removes the definitions in `txn`. The rows stay in storage under the dropped
/// table's id, which is never reused: they are unreachable from SQL, and remain readable at past
/// LSNs.
pub async fn drop_tables(
    primary: &Primary,
    txn: &mut Transaction,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<DdlOutcome> {
    let mut notices = Vec::new();
    for name in names {
        let (schema, table) = table_name(name)?;
        let name_key = table_name_key(txn.database(), &schema, &table);
        txn.lock(&name_key).await?;
        let view = CatalogView::of(&primary.catalog, txn);
        match view.get(&schema, &table)? {
            Some(def) => {
                let dropping: Vec<String> = names
                    .iter()
                    .filter_map(|n| table_name(n).ok().map(|(_, t)| t))
                    .collect();
                let referencing: Vec<_> = crate::foreign_keys::referencing(&view, &def)
                    .into_iter()
                    .filter(|(child, _)| child.id != def.id && !dropping.contains(&child.name))
                    .collect();
                if let Some((child, fk)) = referencing.first() {
                    if !cascade {
                        return Err(SqlError::new(
                            sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "cannot drop table {} because other objects depend on it",
                                def.name
                            ),
                        )
                        .with_detail(format!(
                            "constraint {} on table {} depends on table {}",
                            fk.name, child.name, def.name
                        ))
                        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                    }
                }
                notices.extend(
                    view::drop_dependents(primary, txn, def.id, &def.name, "table", cascade)
                        .await?,
                );
                // CASCADE drops the referencing constraints.
                for (child, fk) in referencing {
                    let mut changed = child.as_ref().clone();
                    changed.foreign_keys.retain(|f| f.name != fk.name);
                    replace_table_def(txn, &changed).await?;
                }
                let view = CatalogView::of(&primary.catalog, txn);
                let owned: Vec<_> = view
                    .sequences(&schema)
                    .into_iter()
                    .filter(|s| s.owned_by.is_some_and(|(t, _)| t == def.id))
                    .collect();
                remove_table(txn, &def).await?;
                for seq in owned {
                    sequence::remove_sequence(txn, &seq).await?;
                }
            }
            None => notices.push(not_dropped(&view, &schema, &table, "table", if_exists)?),
        }
    }
    Ok(DdlOutcome::with_notices("DROP TABLE", notices))
}

/// Deletes a table's definition, its name and its indexes' names in `txn`. Its rows stay in
/// storage under its id (see [`drop_tables`]).
pub(crate) async fn remove_table(txn: &mut Transaction, def: &TableDef) -> SqlResult<()> {
    let names = std::iter::once(&def.name).chain(def.indexes.iter().map(|i| &i.name));
    let mut keys = vec![table_def_key(def.id)];
    keys.extend(names.map(|n| table_name_key(&def.database, &def.schema, n)));
    for key in keys {
        txn.lock(&key).await?;
        txn.delete(key);
    }
    tracing::info!(table = %def.name, id = def.id, "dropped table");
    Ok(())
}

/// `DROP <kind> name` of a name that is no `kind`: 42809 with a hint naming the right DROP when
/// it is another kind of relation, else 42P01, or with `IF EXISTS` the notice to send.
pub(crate) fn not_dropped(
    view: &CatalogView,
    schema: &str,
    name: &str,
    kind: &str,
    if_exists: bool,
) -> SqlResult<String> {
    let other = if view.get(schema, name)?.is_some() {
        Some("Use DROP TABLE to remove a table.")
    } else if view.get_view(schema, name)?.is_some() {
        Some("Use DROP VIEW to remove a view.")
    } else if view.get_sequence(schema, name)?.is_some() {
        Some("Use DROP SEQUENCE to remove a sequence.")
    } else if view.index(schema, name)?.is_some() {
        Some("Use DROP INDEX to remove an index.")
    } else {
        None
    };
    match other {
        Some(hint) => Err(SqlError::new(
            sqlstate::WRONG_OBJECT_TYPE,
            format!("\"{name}\" is not a {kind}"),
        )
        .with_hint(hint)),
        None if if_exists => Ok(format!("{kind} \"{name}\" does not exist, skipping")),
        None => Err(SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("{kind} \"{name}\" does not exist"),
        )),
    }
}

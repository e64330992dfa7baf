//! ALTER TABLE and CREATE INDEX: the DDL that reads a table's rows (to build an index, fill a
//! new column's default, or check for NULLs) runs those reads in the session, then writes the
//! definition in its transaction.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::physical_plan::collect;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, RenameTableNameKind, TableConstraint,
};

use super::run::ddl_output;
use super::{Output, Session};
use crate::catalog::{table_name_key, TableDef};
use crate::ddl::index::{NewIndex, NewKey};
use crate::ddl::{self, alter, DdlOutcome};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::indexes::IndexKey;
use crate::names::{normalize, table_name};
use crate::pg_catalog::quote_ident;

impl Session {
    /// `ALTER TABLE`: each operation in turn, in the statement's transaction.
    pub(super) async fn alter_table(&self, alter: &AlterTable) -> SqlResult<Output> {
        let (schema, table) = table_name(&alter.name)?;
        if self.table(&schema, &table)?.is_none() {
            if alter.if_exists {
                return Ok(ddl_output(DdlOutcome {
                    tag: "ALTER TABLE",
                    notice: Some(format!("relation \"{table}\" does not exist, skipping")),
                    detail: None,
                }));
            }
            return Err(SqlError::undefined_table(&table));
        }
        let mut notices = Vec::new();
        // A RENAME TO changes the name later operations find the table by.
        let mut table = table;
        for operation in &alter.operations {
            self.check_views_allow(&schema, &table, operation)?;
            if let AlterTableOperation::RenameTable { table_name: new } = operation {
                let (RenameTableNameKind::To(new) | RenameTableNameKind::As(new)) = new;
                let (_, new) = table_name(new)?;
                let def = self.current_table(&schema, &table)?;
                self.with_txn(async |txn| {
                    alter::rename_table(&self.primary, txn, &def, &new).await
                })
                .await?;
                table = new;
                continue;
            }
            if let Some(notice) = self.alter_operation(&schema, &table, operation).await? {
                notices.push(notice);
            }
        }
        Ok(ddl_output(DdlOutcome::with_notices("ALTER TABLE", notices)))
    }

    /// Views find their tables and columns by name when they are expanded, so renaming what a
    /// view reads, or dropping a column of it, would break the view: refused while one does.
    /// (PostgreSQL binds views by oid and allows renames; it refuses dropping a column only when
    /// a view uses that column.)
    fn check_views_allow(
        &self,
        schema: &str,
        table: &str,
        operation: &AlterTableOperation,
    ) -> SqlResult<()> {
        let what = match operation {
            AlterTableOperation::RenameTable { .. } => "rename table",
            AlterTableOperation::RenameColumn { .. } => "rename a column of table",
            AlterTableOperation::DropColumn { .. } => "drop a column of table",
            _ => return Ok(()),
        };
        let def = self.current_table(schema, table)?;
        let views = self.slot.with_catalog(&self.primary.catalog, |catalog| {
            crate::views::dependent_views(catalog, def.id)
        });
        match views.first() {
            None => Ok(()),
            Some(view) => Err(SqlError::new(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!("cannot {what} {table} because other objects depend on it"),
            )
            .with_detail(format!("view {} depends on table {table}", view.name))
            .with_hint("Drop the view first, and create it again afterwards.")),
        }
    }

    fn current_table(&self, schema: &str, table: &str) -> SqlResult<Arc<TableDef>> {
        self.table(schema, table)?
            .ok_or_else(|| SqlError::undefined_table(table))
    }

    /// One ALTER TABLE operation; returns a notice to show, if any.
    async fn alter_operation(
        &self,
        schema: &str,
        table: &str,
        operation: &AlterTableOperation,
    ) -> SqlResult<Option<String>> {
        match operation {
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::Unique(unique),
                not_valid: false,
            } => {
                let new = NewIndex::from_unique(unique, None)?;
                Ok(self.add_index(schema, table, new).await?.notice)
            }
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::PrimaryKey(pk),
                not_valid: false,
            } => {
                let columns = ddl::index::column_names(&pk.columns)?;
                self.add_primary_key(schema, table, &columns).await?;
                Ok(None)
            }
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::Check(check),
                not_valid,
            } => {
                let def = self.locked_for_rebuild(schema, table).await?;
                let (mut changed, check) = ddl::constraint::with_check(&def, check)?;
                crate::checks::validate(&self.ctx, &changed)?;
                if *not_valid {
                    changed.checks.last_mut().expect("just added").not_valid = true;
                } else {
                    self.check_rows_satisfy(&changed, &check).await?;
                }
                self.with_txn(async |txn| ddl::replace_table_def(txn, &changed).await)
                    .await?;
                Ok(None)
            }
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::ForeignKey(fk),
                not_valid,
            } => {
                let def = self.locked_for_rebuild(schema, table).await?;
                let (mut changed, fk) = self.slot.with_catalog(&self.primary.catalog, |view| {
                    ddl::constraint::with_foreign_key(view, &def, fk)
                })?;
                if *not_valid {
                    changed
                        .foreign_keys
                        .last_mut()
                        .expect("just added")
                        .not_valid = true;
                } else {
                    self.check_rows_reference(&def, &fk).await?;
                }
                self.with_txn(async |txn| ddl::replace_table_def(txn, &changed).await)
                    .await?;
                Ok(None)
            }
            AlterTableOperation::AddConstraint {
                not_valid: true, ..
            } => Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "only CHECK and FOREIGN KEY constraints can be marked NOT VALID",
            )),
            AlterTableOperation::ValidateConstraint { name } => {
                self.validate_constraint(schema, table, &normalize(name))
                    .await?;
                Ok(None)
            }
            AlterTableOperation::DropConstraint {
                if_exists, name, ..
            } => {
                let constraint = normalize(name);
                let outcome = self
                    .with_txn(async |txn| {
                        ddl::drop_constraint(
                            &self.primary,
                            txn,
                            schema,
                            table,
                            &constraint,
                            *if_exists,
                        )
                        .await
                    })
                    .await?;
                Ok(outcome.notice)
            }
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let def = self.locked_for_rebuild(schema, table).await?;
                let added = self.slot.with_catalog(&self.primary.catalog, |view| {
                    alter::add_column(view, &def, column_def, *if_not_exists)
                })?;
                let Some(added) = added else {
                    return Ok(Some(format!(
                        "column \"{}\" of relation \"{table}\" already exists, skipping",
                        normalize(&column_def.name)
                    )));
                };
                crate::generated::validate(&self.ctx, &added.def)?;
                self.with_txn(async |txn| ddl::replace_table_def(txn, &added.def).await)
                    .await?;
                let mut default = added.default.clone();
                if let Some((ty, options)) = &added.sequence {
                    default = Some(
                        self.add_owned_sequence(schema, table, &added.def, *ty, options)
                            .await?,
                    );
                }
                if let Some(default) = &default {
                    // Rows written before the column get its default, evaluated per row.
                    self.run_internal(&format!(
                        "UPDATE {}.{} SET {} = {default}",
                        quote_ident(schema),
                        quote_ident(table),
                        quote_ident(&added.name)
                    ))
                    .await?;
                }
                if added.check_not_null {
                    self.check_no_nulls(&added.def, &added.name).await?;
                }
                if added.primary_key {
                    self.add_primary_key(schema, table, std::slice::from_ref(&added.name))
                        .await?;
                }
                if added.unique {
                    let new = NewIndex {
                        name: None,
                        keys: vec![NewKey::Column(added.name.clone())],
                        include: Vec::new(),
                        predicate: None,
                        unique: true,
                        nulls_not_distinct: false,
                        constraint: true,
                        if_not_exists: false,
                    };
                    self.add_index(schema, table, new).await?;
                }
                Ok(None)
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                let mut notices = Vec::new();
                for column in column_names.iter().map(normalize) {
                    let def = self.current_table(schema, table)?;
                    let Some((changed, dropped)) = alter::drop_column(&def, &column, *if_exists)?
                    else {
                        notices.push(format!(
                            "column \"{column}\" of relation \"{table}\" does not exist, skipping"
                        ));
                        continue;
                    };
                    self.slot.with_catalog(&self.primary.catalog, |view| {
                        dropped.iter().try_for_each(|index| {
                            crate::foreign_keys::require_index_unreferenced(
                                view,
                                &def,
                                index,
                                &format!("column {column} of table {table}"),
                            )
                        })
                    })?;
                    let column_id = def.columns.iter().find(|c| c.name == column).map(|c| c.id);
                    self.with_txn(async |txn| {
                        ddl::replace_table_def(txn, &changed).await?;
                        for index in &dropped {
                            let key = table_name_key(txn.database(), schema, &index.name);
                            txn.lock(&key).await?;
                            txn.delete(key);
                        }
                        let owned: Vec<_> =
                            crate::catalog::CatalogView::of(&self.primary.catalog, txn)
                                .sequences(schema)
                                .into_iter()
                                .filter(|q| q.owned_by == column_id.map(|c| (def.id, c)))
                                .collect();
                        for seq in owned {
                            ddl::sequence::remove_sequence(txn, &seq).await?;
                        }
                        Ok(())
                    })
                    .await?;
                }
                Ok((!notices.is_empty()).then(|| notices.join("\n")))
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let def = self.current_table(schema, table)?;
                let changed = alter::rename_column(
                    &def,
                    &normalize(old_column_name),
                    &normalize(new_column_name),
                )?;
                self.with_txn(async |txn| ddl::replace_table_def(txn, &changed).await)
                    .await?;
                Ok(None)
            }
            AlterTableOperation::AlterColumn {
                column_name,
                op:
                    datafusion::sql::sqlparser::ast::AlterColumnOperation::SetDataType {
                        data_type,
                        using,
                        ..
                    },
            } => {
                let column = normalize(column_name);
                // Boxed: the retype's future is large, and inline it overflows a worker's stack.
                Box::pin(self.alter_column_type(schema, table, &column, data_type, using.as_ref()))
                    .await?;
                Ok(None)
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let column = normalize(column_name);
                let def = self.locked_for_rebuild(schema, table).await?;
                let (changed, check_not_null) = alter::alter_column(&def, &column, op)?;
                if check_not_null {
                    self.check_no_nulls(&changed, &column).await?;
                }
                self.with_txn(async |txn| ddl::replace_table_def(txn, &changed).await)
                    .await?;
                Ok(None)
            }
            AlterTableOperation::RenameConstraint { old_name, new_name } => {
                let (old, new) = (normalize(old_name), normalize(new_name));
                let def = self.current_table(schema, table)?;
                match ddl::constraint::renamed(&def, &old, &new)? {
                    Some(changed) => {
                        self.with_txn(async |txn| {
                            txn.lock(&crate::catalog::table_def_key(def.id)).await?;
                            ddl::replace_table_def(txn, &changed).await
                        })
                        .await?
                    }
                    None => {
                        self.with_txn(async |txn| {
                            ddl::index::rename_index(&self.primary, txn, schema, &old, &new).await
                        })
                        .await?
                    }
                }
                Ok(None)
            }
            // Storage parameters (`fillfactor`, autovacuum settings) tune PostgreSQL's heap,
            // which Strata does not have: accepted and ignored, as an index's `WITH (…)` is.
            AlterTableOperation::SetOptionsParens { .. } => Ok(None),
            other => Err(SqlError::unsupported(format!("ALTER TABLE … {other}"))),
        }
    }

    /// `ALTER COLUMN c TYPE t [USING e]`: every row is rewritten with the new value (see
    /// [`ddl::retype`]), then NOT NULL and CHECK constraints are checked against the new
    /// values and the column's indexes built again.
    async fn alter_column_type(
        &self,
        schema: &str,
        table: &str,
        column: &str,
        data_type: &datafusion::sql::sqlparser::ast::DataType,
        using: Option<&datafusion::sql::sqlparser::ast::Expr>,
    ) -> SqlResult<()> {
        let def = self.locked_for_rebuild(schema, table).await?;
        let views = self.slot.with_catalog(&self.primary.catalog, |catalog| {
            crate::views::dependent_views(catalog, def.id)
        });
        if let Some(view) = views.first() {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "cannot alter type of a column used by a view or rule",
            )
            .with_detail(format!(
                "rule _RETURN on view {} depends on column \"{column}\"",
                view.name
            )));
        }
        let retype = self.slot.with_catalog(&self.primary.catalog, |view| {
            ddl::retype::retype_column(view, &def, column, data_type, using)
        })?;
        let old_id = def.columns.iter().find(|c| c.name == column).map(|c| c.id);
        let referencing = self.slot.with_catalog(&self.primary.catalog, |view| {
            crate::foreign_keys::referencing(view, &def)
        });
        let referenced = referencing
            .iter()
            .any(|(_, fk)| old_id.is_some_and(|id| fk.referenced_columns.contains(&id)));
        if referenced {
            return Err(SqlError::unsupported(format!(
                "changing the type of a column a foreign key references (column \"{column}\" of relation \"{table}\")"
            )));
        }
        self.with_txn(async |txn| ddl::replace_table_def(txn, &retype.staged).await)
            .await?;
        self.run_internal(&format!(
            "UPDATE {}.{} SET {} = {}",
            quote_ident(schema),
            quote_ident(table),
            quote_ident(&retype.temporary),
            retype.value
        ))
        .await?;
        self.with_txn(async |txn| {
            ddl::replace_table_def(txn, &retype.finished).await?;
            for index in &retype.indexes {
                ddl::index::remove_index(txn, &retype.finished, index).await?;
            }
            Ok(())
        })
        .await?;
        let mut finished = retype.finished.clone();
        if retype.rekey {
            // The key's encoding changed with its type: every row moves to its new key.
            let rows = self
                .keyed_rows(&finished)
                .await?
                .into_iter()
                .map(|(columns, _)| {
                    datafusion::arrow::array::RecordBatch::try_new(finished.arrow_schema(), columns)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let current = finished.clone();
            finished = self
                .with_txn(async |txn| {
                    ddl::rewrite_rows(
                        &self.ctx,
                        &self.primary,
                        txn,
                        &current,
                        current.clone(),
                        &rows,
                    )
                    .await
                })
                .await?;
        }
        let finished = &finished;
        if !finished
            .columns
            .iter()
            .any(|c| c.name == column && c.nullable)
        {
            self.check_no_nulls(finished, column).await?;
        }
        for check in &finished.checks {
            self.check_rows_satisfy(finished, check).await?;
        }
        // Foreign keys from and to the column hold for the new values (USING may change them).
        if let Some(new_id) = finished
            .columns
            .iter()
            .find(|c| c.name == column)
            .map(|c| c.id)
        {
            for fk in finished
                .foreign_keys
                .iter()
                .filter(|fk| fk.columns.contains(&new_id))
            {
                self.check_rows_reference(finished, fk).await?;
            }
            if finished.primary_key.contains(&new_id) {
                for (child, fk) in &referencing {
                    if !fk.references_unique_index() && child.id != def.id {
                        let child = self.current_table(&child.schema, &child.name)?;
                        let fk = child.foreign_keys.iter().find(|f| f.name == fk.name);
                        if let Some(fk) = fk {
                            self.check_rows_reference(&child, fk).await?;
                        }
                    }
                }
            }
        }
        for index in &retype.indexes {
            let keys = index
                .keys(&def)
                .into_iter()
                .map(|key| match key {
                    IndexKey::Column(p) => NewKey::Column(def.columns[p].name.clone()),
                    IndexKey::Expression(e) => NewKey::Expression(e.sql.clone()),
                })
                .collect();
            let new = NewIndex {
                name: Some(index.name.clone()),
                keys,
                include: def
                    .column_positions(&index.include)
                    .into_iter()
                    .map(|p| def.columns[p].name.clone())
                    .collect(),
                predicate: index.predicate.clone(),
                unique: index.unique,
                nulls_not_distinct: index.nulls_not_distinct,
                constraint: index.constraint,
                if_not_exists: false,
            };
            Box::pin(self.add_index(schema, table, new)).await?;
        }
        Ok(())
    }

    /// ADD PRIMARY KEY (or ADD COLUMN … PRIMARY KEY): every row, read in this transaction, is
    /// written again under its key.
    async fn add_primary_key(
        &self,
        schema: &str,
        table: &str,
        columns: &[String],
    ) -> SqlResult<()> {
        let def = self.locked_for_rebuild(schema, table).await?;
        let rows = self
            .keyed_rows(&def)
            .await?
            .into_iter()
            .map(|(columns, _)| {
                datafusion::arrow::array::RecordBatch::try_new(def.arrow_schema(), columns)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.with_txn(async |txn| {
            ddl::add_primary_key(&self.ctx, &self.primary, txn, &def, columns, &rows).await
        })
        .await?;
        Ok(())
    }

    /// The sequence a serial or identity column added to `def` (its last column) owns, which
    /// becomes its default; that default (`nextval(…)`), for the older rows.
    async fn add_owned_sequence(
        &self,
        schema: &str,
        table: &str,
        def: &TableDef,
        ty: crate::types::SqlType,
        options: &[datafusion::sql::sqlparser::ast::SequenceOptions],
    ) -> SqlResult<String> {
        let column = def.columns.last().expect("the added column").clone();
        self.with_txn(async |txn| {
            let view = crate::catalog::CatalogView::of(&self.primary.catalog, txn);
            let name = ddl::sequence::owned_sequence_name(&view, schema, table, &column.name)?;
            let sequence = ddl::sequence::add_sequence(
                &self.primary,
                txn,
                ddl::sequence::NewSequence {
                    schema: schema.to_string(),
                    name,
                    ty,
                    options: options.to_vec(),
                    owned_by: Some((def.id, column.id)),
                },
            )
            .await?;
            let nextval = ddl::sequence::nextval_default(&sequence.schema, &sequence.name);
            let mut changed = def.clone();
            changed
                .columns
                .last_mut()
                .expect("the added column")
                .default = Some(nextval.clone());
            ddl::replace_table_def(txn, &changed).await?;
            Ok(nextval)
        })
        .await
    }

    /// Checks that every row of `def` the transaction sees references an existing row through
    /// `fk` (whose key stays locked until the transaction ends, as for a row inserted now),
    /// now even when the constraint is deferrable, as PostgreSQL does.
    async fn check_rows_reference(
        &self,
        def: &TableDef,
        fk: &crate::foreign_keys::ForeignKeyDef,
    ) -> SqlResult<()> {
        let mut checked = def.clone();
        checked.foreign_keys = vec![crate::foreign_keys::ForeignKeyDef {
            deferrable: false,
            ..fk.clone()
        }];
        let rows = self.keyed_rows(def).await?;
        self.with_txn(async |txn| {
            for (columns, _) in &rows {
                crate::foreign_keys::check_references(&self.primary, txn, &checked, columns)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    /// `VALIDATE CONSTRAINT name`: a CHECK or FOREIGN KEY added NOT VALID is checked against
    /// every row, and counts as valid from then on.
    async fn validate_constraint(&self, schema: &str, table: &str, name: &str) -> SqlResult<()> {
        let def = self.locked_for_rebuild(schema, table).await?;
        let mut changed = (*def).clone();
        if let Some(check) = changed.checks.iter_mut().find(|c| c.name == name) {
            if check.not_valid {
                self.check_rows_satisfy(&def, check).await?;
                check.not_valid = false;
            }
        } else if let Some(fk) = changed.foreign_keys.iter_mut().find(|f| f.name == name) {
            if fk.not_valid {
                self.check_rows_reference(&def, fk).await?;
                fk.not_valid = false;
            }
        } else if def.indexes.iter().any(|i| i.constraint && i.name == name)
            || (!def.primary_key.is_empty() && def.primary_key_name() == name)
        {
            return Err(SqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!(
                    "constraint \"{name}\" of relation \"{table}\" is not a foreign key or check constraint"
                ),
            ));
        } else {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("constraint \"{name}\" of relation \"{table}\" does not exist"),
            ));
        }
        self.with_txn(async |txn| ddl::replace_table_def(txn, &changed).await)
            .await
    }

    /// Adds an index to a table (CREATE INDEX, or a UNIQUE constraint), built over every row the
    /// transaction sees.
    pub(super) async fn add_index(
        &self,
        schema: &str,
        table: &str,
        new: NewIndex,
    ) -> SqlResult<DdlOutcome> {
        let def = self.locked_for_rebuild(schema, table).await?;
        let rows = self.keyed_rows(&def).await?;
        self.with_txn(async |txn| {
            ddl::index::add_index(&self.ctx, &self.primary, txn, &def, new, &rows).await
        })
        .await
    }

    /// A table locked for a rebuild of its rows (see [`ddl::lock_for_rebuild`]), as it is once
    /// locked.
    async fn locked_for_rebuild(&self, schema: &str, table: &str) -> SqlResult<Arc<TableDef>> {
        let def = self.current_table(schema, table)?;
        self.with_txn(async |txn| ddl::lock_for_rebuild(txn, &def).await)
            .await?;
        self.current_table(schema, table)
    }

    /// Every row of a table as the transaction sees it, with its storage key.
    async fn keyed_rows(&self, def: &TableDef) -> SqlResult<ddl::index::TableRows> {
        let plan = self.logical_plan(&crate::dml::all_rows_query(def)?).await?;
        let physical = self.ctx.state().create_physical_plan(&plan).await?;
        let batches = collect(physical, self.ctx.task_ctx()).await?;
        Ok(batches
            .iter()
            .map(|b| {
                let keys = b.column(0).as_binary::<i32>();
                let keys = (0..b.num_rows())
                    .map(|i| bytes::Bytes::copy_from_slice(keys.value(i)))
                    .collect();
                (b.columns()[1..].to_vec(), keys)
            })
            .collect())
    }

    /// Whether some row of the table, as the transaction sees it, satisfies `condition` (SQL).
    async fn any_row_where(&self, def: &TableDef, condition: &str) -> SqlResult<bool> {
        let sql = format!(
            "SELECT 1 FROM {}.{} WHERE {condition} LIMIT 1",
            quote_ident(&def.schema),
            quote_ident(&def.name),
        );
        let statement = self.parse(&sql)?.remove(0);
        let plan = self.logical_plan(&statement).await?;
        let physical = self.ctx.state().create_physical_plan(&plan).await?;
        let found = collect(physical, self.ctx.task_ctx()).await?;
        Ok(found.iter().any(|b| b.num_rows() > 0))
    }

    /// Fails with 23502 if a row of the table has NULL in `column` (SET NOT NULL, ADD COLUMN …
    /// NOT NULL).
    async fn check_no_nulls(&self, def: &TableDef, column: &str) -> SqlResult<()> {
        if self
            .any_row_where(def, &format!("{} IS NULL", quote_ident(column)))
            .await?
        {
            return Err(SqlError::new(
                sqlstate::NOT_NULL_VIOLATION,
                format!(
                    "column \"{column}\" of relation \"{}\" contains null values",
                    def.name
                ),
            )
            .with_table(&def.schema, &def.name)
            .with_column(column));
        }
        Ok(())
    }

    /// Fails with 23514 if a row of the table makes `check` false (ADD CONSTRAINT … CHECK).
    async fn check_rows_satisfy(
        &self,
        def: &TableDef,
        check: &crate::checks::CheckDef,
    ) -> SqlResult<()> {
        if self
            .any_row_where(def, &format!("NOT ({})", check.expr))
            .await?
        {
            return Err(SqlError::new(
                sqlstate::CHECK_VIOLATION,
                format!(
                    "check constraint \"{}\" of relation \"{}\" is violated by some row",
                    check.name, def.name
                ),
            )
            .with_table(&def.schema, &def.name)
            .with_constraint(&check.name));
        }
        Ok(())
    }

    /// Runs a statement Strata builds itself in the session's transaction, discarding its
    /// output.
    pub(super) async fn run_internal(&self, sql: &str) -> SqlResult<()> {
        self.run_internal_output(sql).await.map(drop)
    }

    /// Runs a statement Strata wrote, in the session's transaction; its output.
    pub(super) async fn run_internal_output(&self, sql: &str) -> SqlResult<Output> {
        let statement = self.parse(sql)?.remove(0);
        let prepared = self.plan_statement(statement).await?;
        // Boxed: `run` is what called the DDL statement that got here.
        Box::pin(self.run(&prepared, Vec::new())).await
    }
}

//! `CREATE TABLE … AS query`: the query is planned in the session, which tells the new table's
//! columns (names and PostgreSQL types, as a client would see them in its RowDescription); the
//! table is then created and filled by an `INSERT … query`, both in the statement's
//! transaction, as separate statements would.

use datafusion::sql::sqlparser::ast::{
    CreateTable, DataType, Query, SetExpr, Statement, TableFactor,
};

use super::{Notice, Output, Session};
use crate::column_names::query_column_names;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::pg_catalog::{format_type, quote_ident};
use crate::pg_encode::result_columns;
use crate::sql_rewrite::NAME_ONLY_COLUMN;

impl Session {
    pub(super) async fn create_table_as(
        &self,
        create: &CreateTable,
        query: &Query,
    ) -> SqlResult<Output> {
        if create.temporary {
            return Err(SqlError::unsupported("CREATE TEMPORARY TABLE … AS"));
        }
        // `(a, b)` before AS names the first columns (see `sql_rewrite::create_table_as_clauses`).
        let names_only = create.columns.iter().all(|c| {
            matches!(&c.data_type, DataType::Custom(name, _) if name.to_string() == NAME_ONLY_COLUMN)
        });
        if !names_only || !create.constraints.is_empty() {
            return Err(SqlError::unsupported(
                "column definitions in CREATE TABLE … AS",
            ));
        }
        let given_names: Vec<String> = create
            .columns
            .iter()
            .map(|c| crate::names::normalize(&c.name))
            .collect();
        let (schema, name) = crate::names::table_name(&create.name)?;
        if self.table(&schema, &name)?.is_some() && create.if_not_exists {
            return Ok(Output::Command {
                tag: "CREATE TABLE AS".into(),
                notice: Some(Notice::info(
                    sqlstate::DUPLICATE_TABLE,
                    format!("relation \"{name}\" already exists, skipping"),
                )),
                parameter_status: None,
            });
        }
        let statement = Statement::Query(Box::new(query.clone()));
        let mut expanded = statement.clone();
        self.slot.with_catalog(&self.primary.catalog, |view| {
            crate::views::expand_views(&mut expanded, view)
        })?;
        let plan = self.logical_plan(&expanded).await?;
        let mut result = result_columns(&self.result_schema(&plan), query_column_names(&statement))
            .as_ref()
            .clone();
        if given_names.len() > result.len() {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "too many column names were specified",
            ));
        }
        for (column, name) in result.iter_mut().zip(given_names) {
            column.name = name;
        }
        super::views::distinct_column_names(result.iter().map(|c| c.name.as_str()))?;
        let mut columns = Vec::with_capacity(result.len());
        for column in result.iter() {
            // A column of a type no table column has (unknown, void) is text, as in PostgreSQL.
            let ty = format_type(i64::from(column.pg_type.oid()), Some(column.typmod))
                .unwrap_or_else(|| "text".into());
            columns.push(format!("{} {ty}", quote_ident(&column.name)));
        }
        self.run_internal(&format!(
            "CREATE TABLE {} ({})",
            create.name,
            columns.join(", ")
        ))
        .await?;
        let inserted = self
            .run_internal_output(&format!("INSERT INTO {} {query}", create.name))
            .await?;
        let rows = match inserted {
            Output::Command { tag, .. } => tag.rsplit(' ').next().unwrap_or("0").to_string(),
            _ => "0".into(),
        };
        if without_data(query) {
            return Ok(Output::command("CREATE TABLE AS".to_string()));
        }
        Ok(Output::command(format!("SELECT {rows}")))
    }
}

/// Whether the query is the `WITH NO DATA` form `sql_rewrite::create_table_as_clauses` made.
fn without_data(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    matches!(
        select.from.first().map(|f| &f.relation),
        Some(TableFactor::Derived { alias: Some(alias), .. }) if alias.name.value == "strata_no_data"
    )
}

//! `CREATE TABLE … AS query`: the query is planned in the session, which tells the new table's
//! columns (names and PostgreSQL types, as a client would see them in its RowDescription); the
//! table is then created and filled by an `INSERT … query`, both in the statement's
//! transaction, as separate statements would.

use datafusion::sql::sqlparser::ast::{CreateTable, Query, Statement};

use super::{Notice, Output, Session};
use crate::column_names::query_column_names;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::pg_catalog::{format_type, quote_ident};
use crate::pg_encode::result_columns;

impl Session {
    pub(super) async fn create_table_as(
        &self,
        create: &CreateTable,
        query: &Query,
    ) -> SqlResult<Output> {
        if create.temporary {
            return Err(SqlError::unsupported("CREATE TEMPORARY TABLE … AS"));
        }
        if !create.columns.is_empty() || !create.constraints.is_empty() {
            return Err(SqlError::unsupported(
                "column definitions in CREATE TABLE … AS",
            ));
        }
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
        let result = result_columns(&self.result_schema(&plan), query_column_names(&statement));
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
        Ok(Output::command(format!("SELECT {rows}")))
    }
}

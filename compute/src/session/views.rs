//! CREATE VIEW: the query is planned in the session, which tells the view's columns and the
//! relations it reads; the definition is then written in the statement's transaction.

use std::collections::BTreeSet;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{CreateView, Statement};

use super::run::ddl_output;
use super::{Output, Session};
use crate::column_names::query_column_names;
use crate::ddl::{self, view::NewView};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::{normalize, table_name};
use crate::pg_encode::result_columns;
use crate::views::ViewColumn;

/// 42701 unless the names of a relation's columns are distinct.
pub(super) fn distinct_column_names<'a>(names: impl Iterator<Item = &'a str>) -> SqlResult<()> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{name}\" specified more than once"),
            ));
        }
    }
    Ok(())
}

impl Session {
    pub(super) async fn create_view(&self, create: &CreateView) -> SqlResult<Output> {
        if create.materialized {
            return Err(SqlError::unsupported("CREATE MATERIALIZED VIEW"));
        }
        if create.temporary {
            return Err(SqlError::unsupported("CREATE TEMPORARY VIEW"));
        }
        let (schema, name) = table_name(&create.name)?;
        let query = Statement::Query(create.query.clone());
        let mut expanded = query.clone();
        let views_read = self.slot.with_catalog(&self.primary.catalog, |view| {
            crate::views::expand_views(&mut expanded, view)
        })?;
        let plan = self.logical_plan(&expanded).await?;
        if !super::prepare::param_types(&plan)?.is_empty() {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_PARAMETER,
                "there is no parameter $1",
            ));
        }
        let result = result_columns(&self.result_schema(&plan), query_column_names(&query));
        let mut columns: Vec<ViewColumn> = result
            .iter()
            .map(|c| ViewColumn {
                name: c.name.clone(),
                pg_type: c.pg_type.oid(),
                typmod: c.typmod,
            })
            .collect();
        if create.columns.len() > columns.len() {
            return Err(SqlError::syntax(
                "CREATE VIEW specifies more column names than columns",
            ));
        }
        for (column, named) in columns.iter_mut().zip(&create.columns) {
            column.name = normalize(&named.name);
        }
        distinct_column_names(columns.iter().map(|c| c.name.as_str()))?;
        let mut depends_on = self.tables_read(&plan)?;
        depends_on.extend(views_read);
        depends_on.sort_unstable();
        depends_on.dedup();
        let new = NewView {
            schema,
            name,
            query: create.query.to_string(),
            columns,
            depends_on,
            or_replace: create.or_replace,
        };
        let outcome = self
            .with_txn(async |txn| ddl::view::create_view(&self.primary, txn, new).await)
            .await?;
        Ok(ddl_output(outcome))
    }

    /// Ids of the tables a plan scans, subqueries included.
    fn tables_read(&self, plan: &LogicalPlan) -> SqlResult<Vec<u64>> {
        let mut names = BTreeSet::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                names.insert(scan.table_name.table().to_string());
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let mut ids = Vec::new();
        for name in names {
            let base = name
                .strip_suffix(crate::table::KEYED_SUFFIX)
                .unwrap_or(&name);
            if let Some(def) = self.table(crate::catalog::DEFAULT_SCHEMA, base)? {
                ids.push(def.id);
            }
        }
        Ok(ids)
    }
}

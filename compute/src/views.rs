//! Views: a stored query, expanded into every statement that names it before planning, as
//! PostgreSQL's rewriter does. A view has no rows of its own, so it reads the tables under it
//! with the statement's snapshot, and it is read-only (`INSERT INTO v` is refused).
//!
//! A view records the relations its query reads (`depends_on`): dropping one of them is refused
//! (2BP01) unless `CASCADE` drops the view too, as in PostgreSQL. The query is kept as SQL text
//! and resolved by name each time it is expanded, so a table it reads cannot be renamed while
//! the view exists (PostgreSQL, which binds views by oid, allows that).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::sql::sqlparser::ast::{
    FromTable, Ident, ObjectName, Query, Statement, TableAlias, TableAliasColumnDef, TableFactor,
    TableObject, Visit, VisitMut, Visitor, VisitorMut,
};
use serde::{Deserialize, Serialize};
use strata_core::key::CATALOG_PREFIX;

use crate::catalog::CatalogView;
use crate::error::{sqlstate, SqlError, SqlResult};

/// A view as `CREATE VIEW` defined it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    pub id: u64,
    pub database: String,
    pub schema: String,
    pub name: String,
    /// The defining query, as SQL text.
    pub query: String,
    /// The view's columns: the query's result columns, renamed by an explicit column list.
    pub columns: Vec<ViewColumn>,
    /// Ids of the tables and views the query reads.
    pub depends_on: Vec<u64>,
}

/// One column of a view, with the PostgreSQL type the query gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewColumn {
    pub name: String,
    pub pg_type: u32,
    pub typmod: i32,
}

/// Key of a view's definition.
pub fn view_def_key(id: u64) -> Bytes {
    let mut k = vec![CATALOG_PREFIX, b'W'];
    k.extend_from_slice(&id.to_be_bytes());
    Bytes::from(k)
}

pub fn encode_view_def(def: &ViewDef) -> Bytes {
    crate::catalog::encode_def(def)
}

pub fn decode_view_def(value: &[u8]) -> SqlResult<ViewDef> {
    crate::catalog::decode_def("view", value)
}

/// Views nest at most this deep; deeper is taken for a cycle.
const MAX_DEPTH: usize = 64;

/// Replaces every view `statement` reads by its query, as a derived table under the view's name
/// (or the alias given), with the view's column names. Returns the ids of the views expanded.
/// Names a `WITH` clause defines are left alone: they shadow views.
pub fn expand_views(statement: &mut Statement, catalog: &CatalogView) -> SqlResult<Vec<u64>> {
    if !catalog.may_have_views() {
        return Ok(Vec::new());
    }
    let mut expander = Expander {
        catalog,
        shadowed: cte_names(statement),
        used: Vec::new(),
        error: None,
        depth: 0,
    };
    let _ = VisitMut::visit(statement, &mut expander);
    match expander.error {
        Some(e) => Err(e),
        None => Ok(expander.used),
    }
}

struct Expander<'a, 'b> {
    catalog: &'a CatalogView<'b>,
    /// Names of the CTEs of the query being expanded (the statement, or a view's query): a CTE
    /// named like a view shadows it. (Coarse: throughout that query, not only in the CTE's
    /// scope.)
    shadowed: HashSet<String>,
    used: Vec<u64>,
    error: Option<SqlError>,
    depth: usize,
}

impl Expander<'_, '_> {
    fn expand(&mut self, factor: &mut TableFactor) -> SqlResult<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return Ok(());
        };
        let Some((schema, view_name)) = view_name(name) else {
            return Ok(());
        };
        if name.0.len() == 1 && self.shadowed.contains(&view_name) {
            return Ok(());
        }
        let Some(view) = self.catalog.get_view(&schema, &view_name)? else {
            return Ok(());
        };
        if self.depth >= MAX_DEPTH {
            return Err(SqlError::new(
                sqlstate::INVALID_OBJECT_DEFINITION,
                format!("infinite recursion detected in rules for relation \"{view_name}\""),
            ));
        }
        let mut query = parse_query(&view.query)?;
        // Views the view reads are expanded in turn, shadowed by the view's own CTEs only.
        let outer = std::mem::replace(&mut self.shadowed, cte_names(&query));
        self.depth += 1;
        let _ = VisitMut::visit(&mut query, self);
        self.depth -= 1;
        self.shadowed = outer;
        let mut alias = alias.clone().unwrap_or_else(|| TableAlias {
            explicit: true,
            name: Ident::new(&view.name),
            columns: Vec::new(),
            at: None,
        });
        if alias.columns.is_empty() {
            alias.columns = view
                .columns
                .iter()
                .map(|c| TableAliasColumnDef {
                    name: Ident::with_quote('"', &c.name),
                    data_type: None,
                })
                .collect();
        }
        self.used.push(view.id);
        *factor = TableFactor::Derived {
            lateral: false,
            subquery: Box::new(query),
            alias: Some(alias),
            sample: None,
        };
        Ok(())
    }
}

impl VisitorMut for Expander<'_, '_> {
    type Break = ();

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if self.error.is_some() {
            return ControlFlow::Break(());
        }
        if let Err(e) = self.expand(factor) {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// The names every `WITH` clause of `node` (a statement or a view's query) defines.
pub fn cte_names(node: &impl Visit) -> HashSet<String> {
    struct Names(HashSet<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                self.0.extend(
                    with.cte_tables
                        .iter()
                        .map(|cte| crate::names::normalize(&cte.alias.name)),
                );
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(HashSet::new());
    let _ = node.visit(&mut names);
    names.0
}

/// `(schema, name)` of a relation name that may be a view.
fn view_name(name: &ObjectName) -> Option<(String, String)> {
    crate::names::table_name(name).ok()
}

fn parse_query(sql: &str) -> SqlResult<Query> {
    match crate::sql_rewrite::parse_sql(sql) {
        Ok(mut statements) if statements.len() == 1 => match statements.remove(0) {
            Statement::Query(q) => Ok(*q),
            _ => Err(SqlError::internal("a view's definition is not a query")),
        },
        Ok(_) => Err(SqlError::internal("a view's definition is not one query")),
        Err(e) => Err(SqlError::internal(format!(
            "a view's definition does not parse: {e}"
        ))),
    }
}

/// `INSERT`, `UPDATE`, `DELETE` or `TRUNCATE` of a view: refused, since Strata's views are
/// read-only (PostgreSQL would write through a simple view to its table).
pub fn reject_writes_to_views(statement: &Statement, catalog: &CatalogView) -> SqlResult<()> {
    if !catalog.may_have_views() {
        return Ok(());
    }
    let targets: Vec<&ObjectName> = match statement {
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) => vec![name],
            _ => vec![],
        },
        Statement::Update(update) => match &update.table.relation {
            TableFactor::Table { name, .. } => vec![name],
            _ => vec![],
        },
        Statement::Delete(delete) => match &delete.from {
            FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from
                .iter()
                .filter_map(|t| match &t.relation {
                    TableFactor::Table { name, .. } => Some(name),
                    _ => None,
                })
                .collect(),
        },
        Statement::Truncate(truncate) => truncate.table_names.iter().map(|t| &t.name).collect(),
        _ => vec![],
    };
    for name in targets {
        let Some((schema, view)) = view_name(name) else {
            continue;
        };
        if catalog.get_view(&schema, &view)?.is_some() {
            let verb = match statement {
                Statement::Insert(_) => "insert into",
                Statement::Update(_) => "update",
                Statement::Delete(_) => "delete from",
                _ => "truncate",
            };
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("cannot {verb} view \"{view}\""),
            )
            .with_detail("Views are read-only in Strata.")
            .with_hint("Write to the tables the view reads."));
        }
    }
    Ok(())
}

/// The views (of every schema) that read relation `id`.
pub fn dependent_views(catalog: &CatalogView, id: u64) -> Vec<Arc<ViewDef>> {
    catalog
        .schemas()
        .iter()
        .flat_map(|s| catalog.views(&s.name))
        .filter(|v| v.depends_on.contains(&id))
        .collect()
}

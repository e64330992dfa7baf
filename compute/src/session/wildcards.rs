//! `SELECT *, id FROM t`, `SELECT t.*, t.*`: PostgreSQL allows a column twice in a result,
//! DataFusion needs unique names, and the duplicates come out of a `*` where the names that would
//! be renamed (`sql_rewrite::alias_duplicate_expressions`) cannot be seen. So a SELECT list with
//! a wildcard and anything else has its wildcards replaced by the columns they stand for, which
//! the FROM clause planned alone tells; the usual renaming then applies, and the names clients
//! see are worked out from the expanded list.

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
};

use super::Session;

impl Session {
    /// The statement with its top-level SELECT list's wildcards written out, when the list has a
    /// wildcard next to other items; `None` when it has not (or the FROM clause alone does not
    /// plan, in which case the statement's own planning reports why).
    pub(super) async fn expand_wildcards(&self, statement: &Statement) -> Option<Statement> {
        let Statement::Query(query) = statement else {
            return None;
        };
        let SetExpr::Select(select) = query.body.as_ref() else {
            return None;
        };
        let is_wildcard = |i: &SelectItem| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        };
        if select.projection.len() < 2 || !select.projection.iter().any(is_wildcard) {
            return None;
        }
        let mut items = Vec::with_capacity(select.projection.len());
        for item in &select.projection {
            if !is_wildcard(item) {
                items.push(item.clone());
                continue;
            }
            let columns = self.wildcard_columns(query, item).await?;
            items.extend(columns.into_iter().map(SelectItem::UnnamedExpr));
        }
        let mut expanded = query.clone();
        if let SetExpr::Select(select) = expanded.body.as_mut() {
            select.projection = items;
        }
        Some(Statement::Query(expanded))
    }

    /// The qualified columns `wildcard` stands for in `query`: the query planned with that
    /// wildcard as its only item (and without ORDER BY and LIMIT, which may name other items).
    pub(super) async fn wildcard_columns(
        &self,
        query: &Query,
        wildcard: &SelectItem,
    ) -> Option<Vec<Expr>> {
        if let SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(_), _) = wildcard
        {
            return None;
        }
        let mut probe = query.clone();
        probe.order_by = None;
        probe.limit_clause = None;
        probe.fetch = None;
        if let SetExpr::Select(select) = probe.body.as_mut() {
            select.projection = vec![wildcard.clone()];
        }
        let plan = self
            .logical_plan(&Statement::Query(Box::new(probe)))
            .await
            .ok()?;
        let schema = plan.schema();
        Some(
            (0..schema.fields().len())
                .map(|i| {
                    let (qualifier, field) = schema.qualified_field(i);
                    let mut parts: Vec<Ident> = qualifier
                        .map(|q| {
                            q.to_vec()
                                .into_iter()
                                .map(|p| Ident::with_quote('"', p))
                                .collect()
                        })
                        .unwrap_or_default();
                    parts.push(Ident::with_quote('"', field.name().as_str()));
                    if parts.len() == 1 {
                        Expr::Identifier(parts.remove(0))
                    } else {
                        Expr::CompoundIdentifier(parts)
                    }
                })
                .collect(),
        )
    }
}

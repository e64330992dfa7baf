//! A parameter cast where it appears (`$1::int8`, `ANY($1::oid[])`) has the type it is cast to,
//! as PostgreSQL infers it: ParameterDescription announces that type, and a binary value is read
//! as that type. DataFusion infers a parameter's type from what it is compared with or assigned
//! to, not from a cast around it.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::expr::{Cast, Placeholder, TryCast};
use datafusion::logical_expr::{Expr, LogicalPlan};

/// `plan` with every untyped parameter under a cast typed as the cast's target.
pub fn type_cast_parameters(plan: LogicalPlan) -> DFResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| e.transform_up(|e| Ok(type_parameter(e))))
    })
    .map(|t| t.data)
}

fn type_parameter(expr: Expr) -> Transformed<Expr> {
    let typed = |inner: Box<Expr>, field: &datafusion::arrow::datatypes::FieldRef| match *inner {
        Expr::Placeholder(Placeholder { id, field: None }) => (
            Box::new(Expr::Placeholder(Placeholder {
                id,
                field: Some(field.clone()),
            })),
            true,
        ),
        other => (Box::new(other), false),
    };
    match expr {
        Expr::Cast(Cast { expr, field }) => {
            let (expr, changed) = typed(expr, &field);
            Transformed::new_transformed(Expr::Cast(Cast { expr, field }), changed)
        }
        Expr::TryCast(TryCast { expr, field }) => {
            let (expr, changed) = typed(expr, &field);
            Transformed::new_transformed(Expr::TryCast(TryCast { expr, field }), changed)
        }
        other => Transformed::no(other),
    }
}

/// Plans the SQL types `oid` and `oid[]` as int8 (Strata's oids) fields that carry the oid type,
/// so that a parameter cast to them is announced as PostgreSQL announces it. asyncpg needs this:
/// its type introspection binds `$1::oid[]`, and the only array types it can encode before it
/// has introspected any are `oid[]` and `text[]`. Other casts to oid never reach DataFusion as
/// `oid`: the catalog syntax rewrite makes them `bigint`.
#[derive(Debug, Default)]
pub struct OidTypePlanner;

impl datafusion::logical_expr::planner::TypePlanner for OidTypePlanner {
    fn plan_type_field(
        &self,
        sql_type: &datafusion::sql::sqlparser::ast::DataType,
    ) -> DFResult<Option<datafusion::arrow::datatypes::FieldRef>> {
        use datafusion::arrow::datatypes::DataType;
        use datafusion::sql::sqlparser::ast::{ArrayElemTypeDef, DataType as SqlType};
        use pgwire::api::Type;
        // `oid` or `pg_catalog.oid`.
        let is_oid = |t: &SqlType| {
            matches!(t, SqlType::Custom(name, args)
                if args.is_empty()
                    && name.0.len() <= 2
                    && name.0.last().is_some_and(|p| p.to_string().eq_ignore_ascii_case("oid")))
        };
        let field = |data_type: DataType, pg: Type| {
            Some(std::sync::Arc::new(crate::types::pg_typed_field(
                "", data_type, &pg,
            )))
        };
        Ok(match sql_type {
            t if is_oid(t) => field(DataType::Int64, Type::OID),
            SqlType::Array(ArrayElemTypeDef::SquareBracket(inner, None)) if is_oid(inner) => {
                field(crate::types::list_of(DataType::Int64), Type::OID_ARRAY)
            }
            _ => None,
        })
    }
}

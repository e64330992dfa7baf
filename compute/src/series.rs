//! `generate_series` in `FROM`, including over columns of an enclosing query.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{plan_err, Result as DFResult};
use datafusion::datasource::{TableProvider, ViewTable};
use datafusion::functions_nested::expr_fn::gen_series;
use datafusion::logical_expr::{lit, LogicalPlanBuilder};

/// DataFusion's `generate_series` table function evaluates its bounds while planning, so they
/// must be constants. PostgreSQL also lets them name columns of an enclosing query (psql's `\d`
/// does, in `generate_series(0, array_upper(pr.prattrs, 1))`). Such a call becomes a plan of its
/// own: one row holding the series as an array, unnested. The built-in function serves every
/// call with constant bounds.
#[derive(Debug)]
pub struct GenerateSeries {
    builtin: Arc<dyn TableFunctionImpl>,
}

pub const NAME: &str = "generate_series";

impl GenerateSeries {
    pub fn new() -> Self {
        Self {
            builtin: datafusion::functions_table::generate_series()
                .function()
                .clone(),
        }
    }
}

impl TableFunctionImpl for GenerateSeries {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !exprs.iter().any(|e| e.contains_outer()) {
            // The built-in takes only int64 integer bounds; a bound computed by a function
            // returning int4 (`array_upper(…, 1)`, folded while planning) is widened.
            let widened: Vec<datafusion::logical_expr::Expr> = exprs
                .iter()
                .map(|e| match e {
                    datafusion::logical_expr::Expr::Literal(v, meta)
                        if v.data_type().is_integer() && !v.is_null() =>
                    {
                        v.cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                            .map(|v| datafusion::logical_expr::Expr::Literal(v, meta.clone()))
                            .unwrap_or_else(|_| e.clone())
                    }
                    other => other.clone(),
                })
                .collect();
            return self
                .builtin
                .call_with_args(TableFunctionArgs::new(&widened, args.session()));
        }
        let (start, stop, step) = match exprs {
            [start, stop] => (start, stop, lit(1i64)),
            [start, stop, step] => (start, stop, step.clone()),
            _ => return plan_err!("generate_series takes two or three arguments"),
        };
        let series = gen_series(start.clone(), stop.clone(), step).alias(NAME);
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![series])?
            .unnest_column(NAME)?
            .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

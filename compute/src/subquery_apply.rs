//! Correlated scalar subqueries that DataFusion cannot turn into joins, run once per row.
//!
//! DataFusion decorrelates a scalar subquery into a join when its correlation is a set of
//! equalities under an aggregate. Others, which PostgreSQL runs as it finds them, are left in
//! the plan and the physical planner refuses them: an outer column in the subquery's select
//! list, under `ORDER BY … LIMIT 1`, inside a recursive CTE (asyncpg's type introspection), in
//! a non-equality condition. This optimizer rule, run after DataFusion's own, takes each such
//! subquery out of its Projection or Filter into an [`Apply`] node below it, which adds the
//! subquery's value as a column; the expression reads that column instead. An analyzer rule
//! does the same earlier for a subquery that may return more than one row, which DataFusion's
//! analyzer would refuse outright.
//!
//! [`ApplyExec`] evaluates the subquery for every distinct tuple of the outer values it
//! references: the values replace the outer references as literals, and the now uncorrelated
//! subquery is planned and run like any query. No rows give NULL; more than one is PostgreSQL's
//! 21000. It is evaluated for every row of its input, even where a CASE around it would not
//! look at it (DataFusion's joins do the same).

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, Result as DFResult, ScalarValue};
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, Filter, LogicalPlan, Projection, Subquery, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{AnalyzerRule, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;

use crate::error::{sqlstate, SqlError};

/// Names the columns Apply nodes add (unique in a process, so in any plan).
static NEXT_COLUMN: AtomicU64 = AtomicU64::new(0);

/// The optimizer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct CorrelatedSubqueryApply;

impl OptimizerRule for CorrelatedSubqueryApply {
    fn name(&self) -> &str {
        "strata_correlated_subquery_apply"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DFResult<Transformed<LogicalPlan>> {
        apply_subqueries(plan, &|_| true)
    }
}

/// The analyzer's half: a correlated subquery that may return more than one row (no aggregate,
/// no `LIMIT 1`) becomes an Apply before DataFusion's invariant check refuses it, so that, as
/// in PostgreSQL, only a row for which it does return more is an error (21000).
#[derive(Debug, Default)]
pub struct UnboundedSubqueryApply;

impl AnalyzerRule for UnboundedSubqueryApply {
    fn name(&self) -> &str {
        "strata_unbounded_subquery_apply"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DFResult<LogicalPlan> {
        let unbounded = |sq: &Subquery| sq.subquery.max_rows().is_none_or(|n| n > 1);
        plan.transform_up_with_subqueries(|node| apply_subqueries(node, &unbounded))
            .map(|t| t.data)
    }
}

/// Moves the correlated scalar subqueries of a Projection or Filter that `wanted` picks (and an
/// Apply can evaluate) into Apply nodes under it.
fn apply_subqueries(
    plan: LogicalPlan,
    wanted: &dyn Fn(&Subquery) -> bool,
) -> DFResult<Transformed<LogicalPlan>> {
    let pick = |sq: &Subquery, input: &DFSchemaRef| applicable(sq, input) && wanted(sq);
    match plan {
        LogicalPlan::Projection(p)
            if p.expr.iter().any(|e| has_apply(e, p.input.schema(), &pick)) =>
        {
            let names = NamePreserver::new_for_projection();
            let mut input = Arc::unwrap_or_clone(p.input);
            let mut exprs = Vec::with_capacity(p.expr.len());
            for expr in p.expr {
                let saved = names.save(&expr);
                let (expr, applied) = take_subqueries(expr, input, &pick)?;
                input = applied;
                exprs.push(saved.restore(expr));
            }
            let projection = Projection::try_new(exprs, Arc::new(input))?;
            Ok(Transformed::yes(LogicalPlan::Projection(projection)))
        }
        LogicalPlan::Filter(f) if has_apply(&f.predicate, f.input.schema(), &pick) => {
            let columns: Vec<Expr> = f
                .input
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            let input = Arc::unwrap_or_clone(f.input);
            let (predicate, applied) = take_subqueries(f.predicate, input, &pick)?;
            let filter = Filter::try_new(predicate, Arc::new(applied))?;
            // The filter's rows keep only the columns they had.
            let projection = Projection::try_new(columns, Arc::new(LogicalPlan::Filter(filter)))?;
            Ok(Transformed::yes(LogicalPlan::Projection(projection)))
        }
        other => Ok(Transformed::no(other)),
    }
}

type Pick<'a> = dyn Fn(&Subquery, &DFSchemaRef) -> bool + 'a;

/// Whether `expr` holds a subquery `pick` takes, given the node's `input`.
fn has_apply(expr: &Expr, input: &DFSchemaRef, pick: &Pick) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        if let Expr::ScalarSubquery(sq) = e {
            if pick(sq, input) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// A correlated scalar subquery of one column whose outer references all name columns of
/// `input` (the ones an Apply over `input` can evaluate).
fn applicable(sq: &Subquery, input: &DFSchemaRef) -> bool {
    !sq.outer_ref_columns.is_empty()
        && sq.subquery.schema().fields().len() == 1
        && sq.outer_ref_columns.iter().all(|e| match e {
            Expr::OuterReferenceColumn(_, c) => input.has_column(c),
            _ => false,
        })
}

/// Replaces each subquery of `expr` that `pick` takes by the column of an Apply node stacked on
/// `input`; returns the new expression and input.
/// A subquery that is a branch of a `CASE WHEN cond THEN (subquery)` is evaluated only for the
/// rows where `cond` holds (when `cond` has no subquery of its own).
fn take_subqueries(expr: Expr, input: LogicalPlan, pick: &Pick) -> DFResult<(Expr, LogicalPlan)> {
    let mut input = input;
    let stack = |sq: Subquery, guard: Option<Expr>, input: &mut LogicalPlan| -> DFResult<Expr> {
        let apply = Apply::try_new(std::mem::replace(input, empty()), sq, guard)?;
        let column = Column::from_name(apply.column.clone());
        *input = LogicalPlan::Extension(Extension {
            node: Arc::new(apply),
        });
        Ok(Expr::Column(column))
    };
    let expr = expr
        .transform_down(|e| match e {
            Expr::Case(mut case) if case.expr.is_none() => {
                let mut changed = false;
                for (when, then) in case.when_then_expr.iter_mut() {
                    if let Expr::ScalarSubquery(sq) = then.as_ref() {
                        if pick(sq, input.schema()) && !has_subquery(when) {
                            **then = stack(sq.clone(), Some(when.as_ref().clone()), &mut input)?;
                            changed = true;
                        }
                    }
                }
                Ok(Transformed::new_transformed(Expr::Case(case), changed))
            }
            Expr::ScalarSubquery(sq) if pick(&sq, input.schema()) => {
                Ok(Transformed::yes(stack(sq, None, &mut input)?))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    Ok((expr, input))
}

fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
        ))
    })
    .unwrap_or(true)
}

fn empty() -> LogicalPlan {
    LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(DFSchema::empty()),
    })
}

/// Its input's rows, each with the value of `subquery` for that row in a column named `column`
/// (NULL where `guard` does not hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    input: Arc<LogicalPlan>,
    subquery: Subquery,
    guard: Option<Expr>,
    column: String,
    schema: DFSchemaRef,
}

impl PartialOrd for Apply {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (&self.input, &self.subquery, &self.guard, &self.column).partial_cmp(&(
            &other.input,
            &other.subquery,
            &other.guard,
            &other.column,
        ))
    }
}

impl Hash for Apply {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.subquery.hash(state);
        self.guard.hash(state);
        self.column.hash(state);
    }
}

impl Apply {
    fn try_new(input: LogicalPlan, subquery: Subquery, guard: Option<Expr>) -> DFResult<Self> {
        let column = format!(
            "__strata_apply_{}",
            NEXT_COLUMN.fetch_add(1, Ordering::Relaxed)
        );
        let value = subquery.subquery.schema().field(0);
        let field = Field::new(&column, value.data_type().clone(), true)
            .with_metadata(value.metadata().clone());
        let mut fields: Vec<_> = input
            .schema()
            .iter()
            .map(|(q, f)| (q.cloned(), f.clone()))
            .collect();
        fields.push((None, Arc::new(field)));
        let schema = DFSchema::new_with_metadata(fields, input.schema().metadata().clone())?;
        Ok(Apply {
            input: Arc::new(input),
            subquery,
            guard,
            column,
            schema: Arc::new(schema),
        })
    }
}

impl UserDefinedLogicalNodeCore for Apply {
    fn name(&self) -> &str {
        "StrataApply"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.guard.iter().cloned().collect()
    }

    fn prevent_predicate_push_down_columns(&self) -> std::collections::HashSet<String> {
        std::iter::once(self.column.clone()).collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let outer: Vec<String> = self
            .subquery
            .outer_ref_columns
            .iter()
            .map(|e| e.to_string())
            .collect();
        write!(
            f,
            "StrataApply: {} per row of [{}]",
            self.column,
            outer.join(", ")
        )
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DFResult<Self> {
        let input = inputs.into_iter().next().expect("Apply has one input");
        let guard = exprs.into_iter().next();
        let mut apply = Apply::try_new(input, self.subquery.clone(), guard)?;
        // Keep the column's name: the expressions above read it.
        apply.column = self.column.clone();
        let mut fields: Vec<_> = apply
            .schema
            .iter()
            .map(|(q, f)| (q.cloned(), f.clone()))
            .collect();
        let last = fields.pop().expect("the applied column").1;
        fields.push((
            None,
            Arc::new(last.as_ref().clone().with_name(&self.column)),
        ));
        apply.schema = Arc::new(DFSchema::new_with_metadata(
            fields,
            apply.input.schema().metadata().clone(),
        )?);
        Ok(apply)
    }
}

/// Plans queries as DataFusion does, and [`Apply`] nodes as [`ApplyExec`].
#[derive(Debug, Default)]
pub struct StrataQueryPlanner;

#[async_trait]
impl QueryPlanner for StrataQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(ApplyPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

struct ApplyPlanner;

#[async_trait]
impl ExtensionPlanner for ApplyPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(apply) = node.as_any().downcast_ref::<Apply>() else {
            return Ok(None);
        };
        let Some(session_state) = session.as_any().downcast_ref::<SessionState>() else {
            return Err(
                SqlError::internal("planning a subquery outside a session").into_datafusion()
            );
        };
        let input = physical_inputs[0].clone();
        let input_schema = input.schema();
        let outer = apply
            .subquery
            .outer_ref_columns
            .iter()
            .filter_map(|e| match e {
                Expr::OuterReferenceColumn(field, column) => Some((field, column)),
                _ => None,
            })
            .map(|(field, column)| {
                let index = apply.input.schema().index_of_column(column)?;
                Ok((column.clone(), field.data_type().clone(), index))
            })
            .collect::<DFResult<Vec<_>>>()?;
        let schema = Arc::new(Schema::new(
            input_schema
                .fields()
                .iter()
                .cloned()
                .chain(std::iter::once(
                    apply.schema.field(apply.schema.fields().len() - 1).clone(),
                ))
                .collect::<Vec<_>>(),
        ));
        // The subquery is planned as rows arrive, which may be after the statement's
        // transaction has left the session (a streamed result): it reads what the statement
        // sees now.
        let mut state = session_state.clone();
        let view = crate::txn_slot::txn_slot(state.config())?.read_view();
        state.config_mut().set_extension(Arc::new(view));
        let guard = match &apply.guard {
            Some(guard) => Some(planner.create_physical_expr(
                guard,
                apply.input.schema(),
                session,
                planning_ctx,
            )?),
            None => None,
        };
        let subplan = Arc::new(Subplan {
            subquery: apply.subquery.subquery.clone(),
            outer,
            guard,
            state: Arc::new(state),
        });
        Ok(Some(Arc::new(ApplyExec::new(input, subplan, schema))))
    }
}

/// What an [`ApplyExec`] evaluates per row.
#[derive(Debug)]
struct Subplan {
    subquery: Arc<LogicalPlan>,
    /// The outer columns the subquery references: the column, its type, its input position.
    outer: Vec<(Column, DataType, usize)>,
    /// Rows for which it is not true get NULL without running the subquery.
    guard: Option<Arc<dyn PhysicalExpr>>,
    state: Arc<SessionState>,
}

/// Runs an [`Apply`]: see the module documentation.
#[derive(Debug)]
pub struct ApplyExec {
    input: Arc<dyn ExecutionPlan>,
    subplan: Arc<Subplan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl ApplyExec {
    fn new(input: Arc<dyn ExecutionPlan>, subplan: Arc<Subplan>, schema: SchemaRef) -> Self {
        // One output partition per input partition, as the input has them now: the physical
        // optimizer may give it others (`with_new_children` comes here again).
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        ApplyExec {
            input,
            subplan,
            schema,
            properties,
        }
    }
}

impl DisplayAs for ApplyExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let outer: Vec<String> = self
            .subplan
            .outer
            .iter()
            .map(|(c, ..)| c.to_string())
            .collect();
        write!(
            f,
            "StrataApplyExec: subquery per row of [{}]",
            outer.join(", ")
        )?;
        if let Some(guard) = &self.subplan.guard {
            write!(f, " where {guard}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ApplyExec {
    fn name(&self) -> &str {
        "StrataApplyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        match &self.subplan.guard {
            Some(guard) => f(guard),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .into_iter()
            .next()
            .expect("ApplyExec has one child");
        Ok(Arc::new(ApplyExec::new(
            input,
            self.subplan.clone(),
            self.schema.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let evaluator = Arc::new(Evaluator {
            subplan: self.subplan.clone(),
            context,
            values: Mutex::new(HashMap::new()),
        });
        let schema = self.schema.clone();
        let batches = input.and_then(move |batch| {
            let evaluator = evaluator.clone();
            let schema = schema.clone();
            async move { evaluator.apply(batch, schema).await }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches.boxed(),
        )))
    }
}

/// Evaluates one Apply's subquery, once per distinct tuple of outer values.
struct Evaluator {
    subplan: Arc<Subplan>,
    context: Arc<TaskContext>,
    values: Mutex<HashMap<Vec<ScalarValue>, ScalarValue>>,
}

impl Evaluator {
    /// `batch` with the subquery's value for each row added (as the last column of `schema`).
    async fn apply(&self, batch: RecordBatch, schema: SchemaRef) -> DFResult<RecordBatch> {
        let value_type = schema.field(schema.fields().len() - 1).data_type().clone();
        let wanted = match &self.subplan.guard {
            Some(guard) => {
                let holds = guard.evaluate(&batch)?.into_array(batch.num_rows())?;
                Some(holds.as_boolean().clone())
            }
            None => None,
        };
        let mut values = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let skip = wanted
                .as_ref()
                .is_some_and(|w| w.is_null(row) || !w.value(row));
            values.push(if skip {
                ScalarValue::try_from(&value_type)?
            } else {
                self.value(&batch, row).await?
            });
        }
        let column: ArrayRef = if values.is_empty() {
            datafusion::arrow::array::new_empty_array(&value_type)
        } else {
            cast(&ScalarValue::iter_to_array(values)?, &value_type)?
        };
        let mut columns = batch.columns().to_vec();
        columns.push(column);
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    async fn value(&self, batch: &RecordBatch, row: usize) -> DFResult<ScalarValue> {
        let outer = self
            .subplan
            .outer
            .iter()
            .map(|(_, ty, index)| {
                ScalarValue::try_from_array(batch.column(*index), row)?.cast_to(ty)
            })
            .collect::<DFResult<Vec<_>>>()?;
        let mut values = self.values.lock().await;
        if let Some(value) = values.get(&outer) {
            return Ok(value.clone());
        }
        let value = self.run(&outer).await?;
        values.insert(outer, value.clone());
        Ok(value)
    }

    /// The subquery with `outer` in place of its outer references, run.
    async fn run(&self, outer: &[ScalarValue]) -> DFResult<ScalarValue> {
        let bound: HashMap<&Column, &ScalarValue> = self
            .subplan
            .outer
            .iter()
            .map(|(c, ..)| c)
            .zip(outer)
            .collect();
        let plan = self
            .subplan
            .subquery
            .as_ref()
            .clone()
            .transform_up_with_subqueries(|node| {
                node.map_expressions(|e| e.transform_up(|e| bind_outer(e, &bound)))
            })?
            .data;
        let physical = self.subplan.state.create_physical_plan(&plan).await?;
        let batches: Vec<RecordBatch> =
            datafusion::physical_plan::collect(physical, self.context.clone()).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        match batches.iter().find(|b| b.num_rows() > 0) {
            _ if rows > 1 => Err(SqlError::new(
                sqlstate::CARDINALITY_VIOLATION,
                "more than one row returned by a subquery used as an expression",
            )
            .into_datafusion()),
            Some(batch) => ScalarValue::try_from_array(batch.column(0), 0),
            None => ScalarValue::try_from(plan.schema().field(0).data_type()),
        }
    }
}

/// An outer reference bound to a value becomes that value; nested subqueries stop listing it.
fn bind_outer(expr: Expr, bound: &HashMap<&Column, &ScalarValue>) -> DFResult<Transformed<Expr>> {
    let unbind = |sq: &mut Subquery| {
        sq.outer_ref_columns
            .retain(|e| !matches!(e, Expr::OuterReferenceColumn(_, c) if bound.contains_key(c)));
    };
    Ok(match expr {
        Expr::OuterReferenceColumn(field, column) => match bound.get(&column) {
            Some(value) => Transformed::yes(Expr::Literal(value.cast_to(field.data_type())?, None)),
            None => Transformed::no(Expr::OuterReferenceColumn(field, column)),
        },
        Expr::ScalarSubquery(mut sq) => {
            unbind(&mut sq);
            Transformed::yes(Expr::ScalarSubquery(sq))
        }
        Expr::Exists(Exists {
            mut subquery,
            negated,
        }) => {
            unbind(&mut subquery);
            Transformed::yes(Expr::Exists(Exists { subquery, negated }))
        }
        Expr::InSubquery(InSubquery {
            expr,
            mut subquery,
            negated,
        }) => {
            unbind(&mut subquery);
            Transformed::yes(Expr::InSubquery(InSubquery {
                expr,
                subquery,
                negated,
            }))
        }
        other => Transformed::no(other),
    })
}

//! `StrataTable`: a Strata table as DataFusion sees it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{not_impl_err, Result as DFResult};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::TableDef;
use crate::insert::InsertSink;
use crate::key_range::{plan_access, Access};
use crate::primary::Primary;
use crate::scan::StrataScanExec;
use crate::txn_slot::txn_slot;

#[derive(Debug)]
pub struct StrataTable {
    def: Arc<TableDef>,
    schema: SchemaRef,
    primary: Arc<Primary>,
}

impl StrataTable {
    pub fn new(def: Arc<TableDef>, primary: Arc<Primary>) -> Self {
        Self {
            schema: def.arrow_schema(),
            def,
            primary,
        }
    }
}

#[async_trait]
impl TableProvider for StrataTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter is offered to the scan, which uses the ones on the primary key to narrow what
    /// it reads; DataFusion still applies them all afterwards.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let projection = projection
            .cloned()
            .unwrap_or_else(|| (0..self.def.columns.len()).collect());
        let access = plan_access(&self.def, filters);
        let snapshot = txn_slot(state.config())?.snapshot()?;
        let last_written = self.primary.txns.last_written();
        let not_modified_since = match &access {
            Access::Points(keys) => last_written.for_keys(keys),
            Access::Range { start, end, .. } => last_written.for_range(start, end),
        };
        Ok(Arc::new(StrataScanExec::new(
            self.def.clone(),
            projection,
            access,
            limit,
            snapshot,
            not_modified_since,
            self.primary.pageserver.clone(),
        )))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!("{insert_op} is not supported");
        }
        let sink = InsertSink::new(self.def.clone(), self.primary.clone());
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

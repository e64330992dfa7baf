//! `StrataTable`: a Strata table as DataFusion sees it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{Constraint, Constraints, Result as DFResult};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use strata_core::Lsn;

use crate::catalog::TableDef;
use crate::key_range::{plan_access, Access};
use crate::primary::Primary;
use crate::scan::{ScanSpec, StrataScanExec};
use crate::txn_slot::txn_slot;

/// Suffix of the internal name under which a table is also visible with its storage key as an
/// extra column. SQL text cannot spell it (it holds a NUL); only statements Strata builds itself
/// (UPDATE and DELETE) name it.
pub const KEYED_SUFFIX: &str = "\u{0}keyed";
/// Name of that extra column.
pub const KEY_COLUMN: &str = "\u{0}key";

#[derive(Debug)]
pub struct StrataTable {
    def: Arc<TableDef>,
    schema: SchemaRef,
    keyed: bool,
    primary: Arc<Primary>,
    /// Read at this LSN, as it was then, instead of at the transaction's snapshot.
    as_of: Option<Lsn>,
    /// The primary key, which lets a query grouped by it select the table's other columns (they
    /// depend on it), as PostgreSQL allows and ORMs rely on.
    constraints: Constraints,
}

/// The constraints DataFusion derives functional dependencies from: the primary key.
fn constraints(def: &TableDef) -> Constraints {
    let pk = def.primary_key_indexes();
    match pk.is_empty() {
        true => Constraints::default(),
        false => Constraints::new_unverified(vec![Constraint::PrimaryKey(pk)]),
    }
}

impl StrataTable {
    pub fn new(def: Arc<TableDef>, primary: Arc<Primary>) -> Self {
        Self {
            schema: def.arrow_schema(),
            constraints: constraints(&def),
            def,
            keyed: false,
            primary,
            as_of: None,
        }
    }

    /// The table as it was at `lsn` (`def` is its definition then), read at `lsn`.
    pub fn as_of(def: Arc<TableDef>, primary: Arc<Primary>, lsn: Lsn) -> Self {
        Self {
            as_of: Some(lsn),
            ..Self::new(def, primary)
        }
    }

    /// The table with its storage key as a last column named [`KEY_COLUMN`].
    pub fn keyed(def: Arc<TableDef>, primary: Arc<Primary>) -> Self {
        let mut fields: Vec<Field> = def
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
        Self {
            schema: Arc::new(Schema::new(fields)),
            constraints: constraints(&def),
            def,
            keyed: true,
            primary,
            as_of: None,
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

    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.constraints)
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
            .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let key_index = self.def.columns.len();
        let key_position = if self.keyed {
            projection.iter().position(|&i| i == key_index)
        } else {
            None
        };
        let table_projection: Vec<usize> = projection
            .iter()
            .copied()
            .filter(|&i| i < key_index)
            .collect();
        let access = plan_access(&self.def, filters);

        // The statement's snapshot, and the transaction's own writes among the keys read.
        // A read in the past sees neither: only what was committed at its LSN.
        let (snapshot, overlay) = match self.as_of {
            Some(lsn) => (lsn, Vec::new()),
            None => self.snapshot_and_overlay(state, &access)?,
        };
        let last_written = self.primary.txns.last_written();
        let not_modified_since = match &access {
            Access::Points(keys) => last_written.for_keys(keys),
            Access::Range { start, end, .. } => last_written.for_range(start, end),
            Access::Index { .. } => {
                let (start, end) = table_range(self.def.id);
                last_written.for_range(&start, &end)
            }
        };
        let spec = ScanSpec {
            table: self.def.clone(),
            projection: table_projection,
            key_position,
            access,
            limit,
            snapshot,
            not_modified_since: not_modified_since.min(snapshot),
            overlay,
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        Ok(Arc::new(StrataScanExec::new(
            spec,
            schema,
            self.primary.clone(),
        )))
    }
}

impl StrataTable {
    /// The snapshot of the statement being planned, and its transaction's own writes among
    /// the keys `access` reads.
    fn snapshot_and_overlay(
        &self,
        state: &dyn Session,
        access: &Access,
    ) -> DFResult<(Lsn, Vec<(bytes::Bytes, crate::txn::Write)>)> {
        txn_slot(state.config())?.with(|txn| {
            let overlay = match &access {
                Access::Points(keys) => keys
                    .iter()
                    .filter_map(|k| txn.write(k).map(|w| (k.clone(), w.clone())))
                    .collect(),
                // A full scan of an indexed table may be turned into an ordered index scan
                // (`ordered_scan`), which needs the own writes to the index too.
                Access::Range { full: true, .. } if !self.def.indexes.is_empty() => {
                    let (start, end) = table_range(self.def.id);
                    txn.writes_in(&start, &end)
                }
                Access::Range { start, end, .. } => txn.writes_in(start, end),
                // Own writes to the index and to the rows it points to: the whole table's.
                Access::Index { .. } => {
                    let (start, end) = table_range(self.def.id);
                    txn.writes_in(&start, &end)
                }
            };
            (txn.snapshot(), overlay)
        })
    }
}

/// Every key of a table: its rows and its index entries.
pub fn table_range(table_id: u64) -> (Vec<u8>, Vec<u8>) {
    let start = strata_core::key::table_prefix(table_id);
    let end = strata_core::key::prefix_end(&start).expect("table prefix is not all 0xff");
    (start, end)
}

//! `StrataScanExec`: reads a table's rows from the pageserver into Arrow batches.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Result as DFResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{stream, StreamExt};
use strata_core::Lsn;

use crate::catalog::{ColumnDef, TableDef};
use crate::error::SqlError;
use crate::key_range::Access;
use crate::row_codec::RowDecoder;
use crate::storage::{PageserverClient, ScanStream};

/// Keys asked for in one Get request.
const GET_BATCH_KEYS: usize = 8192;

#[derive(Debug)]
pub struct StrataScanExec {
    table: Arc<TableDef>,
    /// Positions in `table.columns` of the columns produced, in output order.
    projection: Vec<usize>,
    access: Access,
    limit: Option<usize>,
    /// The LSN this scan reads at: the snapshot of the transaction it was planned in.
    snapshot: Lsn,
    /// The last write to anything this scan reads (see `LastWritten`).
    not_modified_since: Lsn,
    pageserver: PageserverClient,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl StrataScanExec {
    pub fn new(
        table: Arc<TableDef>,
        projection: Vec<usize>,
        access: Access,
        limit: Option<usize>,
        snapshot: Lsn,
        not_modified_since: Lsn,
        pageserver: PageserverClient,
    ) -> Self {
        let full = table.arrow_schema();
        let schema = Arc::new(
            full.project(&projection)
                .expect("projection within the table"),
        );
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            table,
            projection,
            access,
            limit,
            snapshot,
            not_modified_since,
            pageserver,
            schema,
            properties,
        }
    }
}

impl DisplayAs for StrataScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self
            .projection
            .iter()
            .map(|&i| self.table.columns[i].name.as_str())
            .collect();
        write!(
            f,
            "StrataScanExec: table={}, access={}, projection=[{}]",
            self.table.name,
            self.access,
            names.join(", ")
        )?;
        if matches!(t, DisplayFormatType::Verbose) {
            write!(f, ", lsn={}", self.snapshot)?;
        }
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for StrataScanExec {
    fn name(&self) -> &str {
        "StrataScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let (snapshot, not_modified_since) = (self.snapshot, self.not_modified_since);
        let batch_size = context.session_config().batch_size();
        let columns: Vec<ColumnDef> = self
            .projection
            .iter()
            .map(|&i| self.table.columns[i].clone())
            .collect();
        let reader = Reader {
            pageserver: self.pageserver.clone(),
            snapshot,
            not_modified_since,
            schema: self.schema.clone(),
            decoder: RowDecoder::new(&columns.iter().collect::<Vec<_>>()),
            batch_size,
            remaining: self.limit,
        };
        let batches = match &self.access {
            Access::Points(keys) => reader.points(keys.clone()).boxed(),
            Access::Range { start, end, .. } => reader.range(start.clone(), end.clone()).boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches,
        )))
    }
}

struct Reader {
    pageserver: PageserverClient,
    snapshot: Lsn,
    not_modified_since: Lsn,
    schema: SchemaRef,
    decoder: RowDecoder,
    batch_size: usize,
    remaining: Option<usize>,
}

impl Reader {
    fn batch(&mut self) -> DFResult<RecordBatch> {
        let rows = self.decoder.rows();
        let columns = self.decoder.finish();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    fn wants_more(&self) -> bool {
        self.remaining.is_none_or(|r| r > 0)
    }

    fn append(&mut self, value: &[u8]) -> DFResult<()> {
        self.decoder
            .append(value)
            .map_err(SqlError::into_datafusion)?;
        if let Some(r) = self.remaining.as_mut() {
            *r -= 1;
        }
        Ok(())
    }

    fn points(self, keys: Vec<Bytes>) -> impl futures::Stream<Item = DFResult<RecordBatch>> + Send {
        let chunks: Vec<Vec<Bytes>> = keys.chunks(GET_BATCH_KEYS).map(|c| c.to_vec()).collect();
        stream::try_unfold(
            (self, chunks.into_iter()),
            |(mut reader, mut chunks)| async move {
                loop {
                    let Some(chunk) = chunks.next().filter(|_| reader.wants_more()) else {
                        return Ok(None);
                    };
                    let values = reader
                        .pageserver
                        .get(chunk, reader.snapshot, reader.not_modified_since)
                        .await
                        .map_err(|e| SqlError::from(e).into_datafusion())?;
                    for value in values.into_iter().flatten() {
                        if !reader.wants_more() {
                            break;
                        }
                        reader.append(&value)?;
                    }
                    if reader.decoder.rows() > 0 {
                        let batch = reader.batch()?;
                        return Ok(Some((batch, (reader, chunks))));
                    }
                }
            },
        )
    }

    fn range(
        self,
        start: Bytes,
        end: Bytes,
    ) -> impl futures::Stream<Item = DFResult<RecordBatch>> + Send {
        enum State {
            Start(Bytes, Bytes),
            Streaming(Box<ScanStream>),
            Done,
        }
        stream::try_unfold(
            (self, State::Start(start, end)),
            |(mut reader, mut state)| async move {
                loop {
                    match state {
                        State::Done => return Ok(None),
                        State::Start(start, end) => {
                            let scan = reader
                                .pageserver
                                .scan(
                                    start,
                                    Some(end),
                                    reader.snapshot,
                                    reader.not_modified_since,
                                    reader.remaining,
                                )
                                .await
                                .map_err(|e| SqlError::from(e).into_datafusion())?;
                            state = State::Streaming(Box::new(scan));
                        }
                        State::Streaming(mut scan) => {
                            let chunk = if reader.wants_more() {
                                scan.next().await
                            } else {
                                None
                            };
                            match chunk {
                                Some(chunk) => {
                                    let chunk =
                                        chunk.map_err(|e| SqlError::from(e).into_datafusion())?;
                                    for value in &chunk.values {
                                        if !reader.wants_more() {
                                            break;
                                        }
                                        reader.append(value)?;
                                    }
                                    if reader.decoder.rows() >= reader.batch_size {
                                        let batch = reader.batch()?;
                                        return Ok(Some((batch, (reader, State::Streaming(scan)))));
                                    }
                                    state = State::Streaming(scan);
                                }
                                None => {
                                    if reader.decoder.rows() > 0 {
                                        let batch = reader.batch()?;
                                        return Ok(Some((batch, (reader, State::Done))));
                                    }
                                    return Ok(None);
                                }
                            }
                        }
                    }
                }
            },
        )
    }
}

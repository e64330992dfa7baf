//! `StrataScanExec`: reads a table's rows from the pageserver into Arrow batches.
//!
//! A scan reads at the snapshot of the transaction it was planned in, and sees that
//! transaction's own uncommitted writes on top (the *overlay*, captured when the scan was
//! planned): a written value replaces what the pageserver has, a delete hides it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, BinaryBuilder, RecordBatch};
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
use crate::txn::Write;

/// Keys asked for in one Get request.
const GET_BATCH_KEYS: usize = 8192;

/// What a scan reads, fixed when it is planned.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    pub table: Arc<TableDef>,
    /// Positions in `table.columns` of the columns produced, in output order.
    pub projection: Vec<usize>,
    /// Where in the output each row's storage key goes, if it is asked for (UPDATE and DELETE
    /// read it to know which keys to write).
    pub key_position: Option<usize>,
    pub access: Access,
    pub limit: Option<usize>,
    /// The LSN the scan reads at: the snapshot of the statement it was planned in.
    pub snapshot: Lsn,
    /// The last write to anything this scan reads (see `LastWritten`).
    pub not_modified_since: Lsn,
    /// The planning transaction's own writes among the keys read, sorted by key.
    pub overlay: Vec<(Bytes, Write)>,
}

#[derive(Debug)]
pub struct StrataScanExec {
    spec: ScanSpec,
    pageserver: PageserverClient,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl StrataScanExec {
    /// `schema` is the scan's output: the projected columns, with the key column at
    /// `spec.key_position` if any.
    pub fn new(spec: ScanSpec, schema: SchemaRef, pageserver: PageserverClient) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            spec,
            pageserver,
            schema,
            properties,
        }
    }
}

impl DisplayAs for StrataScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let spec = &self.spec;
        let names: Vec<&str> = spec
            .projection
            .iter()
            .map(|&i| spec.table.columns[i].name.as_str())
            .collect();
        write!(
            f,
            "StrataScanExec: table={}, access={}, projection=[{}]",
            spec.table.name,
            spec.access,
            names.join(", ")
        )?;
        if let Some(limit) = spec.limit {
            write!(f, ", limit={limit}")?;
        }
        if matches!(t, DisplayFormatType::Verbose) {
            write!(
                f,
                ", lsn={}, own writes={}",
                spec.snapshot,
                spec.overlay.len()
            )?;
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
        let spec = &self.spec;
        let columns: Vec<ColumnDef> = spec
            .projection
            .iter()
            .map(|&i| spec.table.columns[i].clone())
            .collect();
        let reader = Reader {
            pageserver: self.pageserver.clone(),
            snapshot: spec.snapshot,
            not_modified_since: spec.not_modified_since,
            schema: self.schema.clone(),
            decoder: RowDecoder::new(&columns.iter().collect::<Vec<_>>()),
            keys: spec.key_position.map(|p| (p, BinaryBuilder::new())),
            batch_size: context.session_config().batch_size(),
            remaining: spec.limit,
        };
        let overlay = spec.overlay.clone();
        let batches = match &spec.access {
            Access::Points(keys) => reader.points(keys.clone(), overlay).boxed(),
            Access::Range { start, end, .. } => {
                reader.range(start.clone(), end.clone(), overlay).boxed()
            }
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
    keys: Option<(usize, BinaryBuilder)>,
    batch_size: usize,
    remaining: Option<usize>,
}

fn storage_error(e: crate::storage::StorageError) -> datafusion::common::DataFusionError {
    SqlError::from(e).into_datafusion()
}

impl Reader {
    fn rows(&self) -> usize {
        self.decoder.rows()
    }

    fn batch(&mut self) -> DFResult<RecordBatch> {
        let rows = self.decoder.rows();
        let mut columns: Vec<ArrayRef> = self.decoder.finish();
        if let Some((position, keys)) = self.keys.as_mut() {
            columns.insert(*position, Arc::new(keys.finish()));
        }
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

    fn append(&mut self, key: &[u8], value: &[u8]) -> DFResult<()> {
        self.decoder
            .append(value)
            .map_err(SqlError::into_datafusion)?;
        if let Some((_, keys)) = self.keys.as_mut() {
            keys.append_value(key);
        }
        if let Some(r) = self.remaining.as_mut() {
            *r -= 1;
        }
        Ok(())
    }

    /// Point reads, in key order. Keys the transaction wrote are answered from the overlay.
    fn points(
        self,
        keys: Vec<Bytes>,
        overlay: Vec<(Bytes, Write)>,
    ) -> impl futures::Stream<Item = DFResult<RecordBatch>> + Send {
        let chunks: Vec<Vec<Bytes>> = keys.chunks(GET_BATCH_KEYS).map(|c| c.to_vec()).collect();
        let overlay: std::collections::HashMap<Bytes, Write> = overlay.into_iter().collect();
        stream::try_unfold(
            (self, chunks.into_iter(), overlay),
            |(mut reader, mut chunks, overlay)| async move {
                loop {
                    let Some(chunk) = chunks.next().filter(|_| reader.wants_more()) else {
                        return Ok(None);
                    };
                    let remote: Vec<Bytes> = chunk
                        .iter()
                        .filter(|k| !overlay.contains_key(*k))
                        .cloned()
                        .collect();
                    let mut values = if remote.is_empty() {
                        Vec::new()
                    } else {
                        reader
                            .pageserver
                            .get(remote, reader.snapshot, reader.not_modified_since)
                            .await
                            .map_err(storage_error)?
                    }
                    .into_iter();
                    for key in &chunk {
                        if !reader.wants_more() {
                            break;
                        }
                        let value = match overlay.get(key) {
                            Some(own) => own.clone(),
                            None => values.next().flatten(),
                        };
                        if let Some(value) = value {
                            reader.append(key, &value)?;
                        }
                    }
                    if reader.rows() > 0 {
                        let batch = reader.batch()?;
                        return Ok(Some((batch, (reader, chunks, overlay))));
                    }
                }
            },
        )
    }

    /// A key range, merged with the transaction's own writes in that range.
    fn range(
        self,
        start: Bytes,
        end: Bytes,
        overlay: Vec<(Bytes, Write)>,
    ) -> impl futures::Stream<Item = DFResult<RecordBatch>> + Send {
        enum Source {
            Start(Bytes, Bytes),
            Streaming(Box<ScanStream>),
            Done,
        }
        struct State {
            reader: Reader,
            source: Source,
            /// Entries from the pageserver not merged yet.
            pending: VecDeque<(Bytes, Bytes)>,
            overlay: VecDeque<(Bytes, Write)>,
        }
        let state = State {
            reader: self,
            source: Source::Start(start, end),
            pending: VecDeque::new(),
            overlay: overlay.into(),
        };
        stream::try_unfold(state, |mut st| async move {
            loop {
                // Refill from the pageserver when nothing of it is pending.
                if st.pending.is_empty() {
                    match std::mem::replace(&mut st.source, Source::Done) {
                        Source::Start(start, end) => {
                            // The overlay may delete rows, so a limit is applied here, not there.
                            let limit = if st.overlay.is_empty() {
                                st.reader.remaining
                            } else {
                                None
                            };
                            let scan = st
                                .reader
                                .pageserver
                                .scan(
                                    start,
                                    Some(end),
                                    st.reader.snapshot,
                                    st.reader.not_modified_since,
                                    limit,
                                )
                                .await
                                .map_err(storage_error)?;
                            st.source = Source::Streaming(Box::new(scan));
                            continue;
                        }
                        Source::Streaming(mut scan) => {
                            if st.reader.wants_more() {
                                if let Some(chunk) = scan.next().await {
                                    let chunk = chunk.map_err(storage_error)?;
                                    st.pending.extend(chunk.keys.into_iter().zip(chunk.values));
                                    st.source = Source::Streaming(scan);
                                    continue;
                                }
                            }
                        }
                        Source::Done => {}
                    }
                }
                let exhausted = st.pending.is_empty() && matches!(st.source, Source::Done);
                // Merge: up to the next pageserver key (or everything, once it is exhausted).
                while st.reader.wants_more() && st.reader.rows() < st.reader.batch_size {
                    let next_remote = st.pending.front().map(|(k, _)| k.clone());
                    let take_own = match (st.overlay.front(), &next_remote) {
                        (Some((own, _)), Some(remote)) => own <= remote,
                        (Some(_), None) => exhausted,
                        (None, _) => false,
                    };
                    if take_own {
                        let (key, write) = st.overlay.pop_front().expect("checked");
                        if next_remote.as_ref() == Some(&key) {
                            st.pending.pop_front();
                        }
                        if let Some(value) = write {
                            st.reader.append(&key, &value)?;
                        }
                    } else if let Some((key, value)) = st.pending.pop_front() {
                        st.reader.append(&key, &value)?;
                    } else {
                        break;
                    }
                }
                let finished = !st.reader.wants_more()
                    || (exhausted && st.overlay.is_empty() && st.pending.is_empty());
                if st.reader.rows() >= st.reader.batch_size || (finished && st.reader.rows() > 0) {
                    let batch = st.reader.batch()?;
                    if finished {
                        st.source = Source::Done;
                        st.pending.clear();
                        st.overlay.clear();
                    }
                    return Ok(Some((batch, st)));
                }
                if finished {
                    return Ok(None);
                }
            }
        })
    }
}

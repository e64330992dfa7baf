//! `StrataScanExec`: reads a table's rows from the pageserver into Arrow batches.
//!
//! A scan reads at the snapshot of the transaction it was planned in, and sees that
//! transaction's own uncommitted writes on top (the *overlay*, captured when the scan was
//! planned): a written value replaces what the pageserver has, a delete hides it.

use std::collections::{HashMap, VecDeque};
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
use crate::primary::Primary;
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
    primary: Arc<Primary>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl StrataScanExec {
    /// `schema` is the scan's output: the projected columns, with the key column at
    /// `spec.key_position` if any.
    pub fn new(spec: ScanSpec, schema: SchemaRef, primary: Arc<Primary>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            spec,
            primary,
            schema,
            properties,
        }
    }
}

impl StrataScanExec {
    /// This scan made to produce its rows ordered by the table columns at `columns` (ascending,
    /// NULLs last), if the primary key or an index gives that order: a scan already reading in
    /// that order is returned as it is, a full scan becomes a scan of the whole index.
    pub fn in_order(&self, columns: &[usize]) -> Option<StrataScanExec> {
        let def = &self.spec.table;
        let leads = |of: &[usize], skip: usize| of.get(skip..skip + columns.len()) == Some(columns);
        let access = match &self.spec.access {
            Access::Range { .. } if leads(&def.primary_key_indexes(), 0) => {
                return Some(self.clone())
            }
            Access::Range { full: true, .. } => {
                let index = def
                    .indexes
                    .iter()
                    .find(|i| i.is_plain() && leads(&i.column_positions(def), 0))?;
                let start = strata_core::key::index_prefix(def.id, index.id);
                let end =
                    strata_core::key::prefix_end(&start).expect("index prefix is not all 0xff");
                Access::Index {
                    name: index.name.clone(),
                    ranges: vec![(Bytes::from(start), Bytes::from(end))],
                    pinned: 0,
                }
            }
            // One range: its pinned leading columns are constant, so the order may start after
            // any of them.
            Access::Index {
                name,
                ranges,
                pinned,
            } if ranges.len() == 1 => {
                let index = def
                    .indexes
                    .iter()
                    .find(|i| &i.name == name && i.is_plain())?;
                let positions = index.column_positions(def);
                return (0..=*pinned)
                    .any(|skip| leads(&positions, skip))
                    .then(|| self.clone());
            }
            _ => return None,
        };
        let spec = ScanSpec {
            access,
            ..self.spec.clone()
        };
        Some(StrataScanExec::new(
            spec,
            self.schema.clone(),
            self.primary.clone(),
        ))
    }

    /// Positions in the table of the scan's output columns (`None` for the storage key).
    pub fn output_columns(&self) -> Vec<Option<usize>> {
        let mut out: Vec<Option<usize>> = self.spec.projection.iter().map(|&p| Some(p)).collect();
        if let Some(k) = self.spec.key_position {
            out.insert(k, None);
        }
        out
    }

    pub fn table(&self) -> &TableDef {
        &self.spec.table
    }
}

impl Clone for StrataScanExec {
    fn clone(&self) -> Self {
        StrataScanExec::new(self.spec.clone(), self.schema.clone(), self.primary.clone())
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
            primary: self.primary.clone(),
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
            Access::Index { ranges, .. } => reader.index(ranges.clone(), overlay).boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches,
        )))
    }
}

struct Reader {
    primary: Arc<Primary>,
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

    /// Reads the rows of `keys` (answered from `overlay` where the transaction wrote them) and
    /// appends those that exist, in the order of `keys`.
    async fn read_rows(&mut self, keys: &[Bytes], overlay: &HashMap<Bytes, Write>) -> DFResult<()> {
        let remote: Vec<Bytes> = keys
            .iter()
            .filter(|k| !overlay.contains_key(*k))
            .cloned()
            .collect();
        let mut values = if remote.is_empty() {
            Vec::new()
        } else {
            self.primary
                .read(remote, self.snapshot)
                .await
                .map_err(SqlError::into_datafusion)?
        }
        .into_iter();
        for key in keys {
            if !self.wants_more() {
                break;
            }
            let value = match overlay.get(key) {
                Some(own) => own.clone(),
                None => values.next().flatten(),
            };
            if let Some(value) = value {
                self.append(key, &value)?;
            }
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
        let overlay: HashMap<Bytes, Write> = overlay.into_iter().collect();
        stream::try_unfold(
            (self, chunks.into_iter(), overlay),
            |(mut reader, mut chunks, overlay)| async move {
                loop {
                    let Some(chunk) = chunks.next().filter(|_| reader.wants_more()) else {
                        return Ok(None);
                    };
                    reader.read_rows(&chunk, &overlay).await?;
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
        let overlay: Vec<(Bytes, Write)> = overlay
            .into_iter()
            .filter(|(k, _)| *k >= start && *k < end)
            .collect();
        // The overlay may delete rows, so a limit is applied here, not by the pageserver.
        let limit = if overlay.is_empty() {
            self.remaining
        } else {
            None
        };
        let entries = merged_entries(
            self.primary.pageserver.clone(),
            (start, end),
            self.snapshot,
            self.not_modified_since,
            limit,
            overlay,
        );
        stream::try_unfold((self, entries), |(mut reader, mut entries)| async move {
            while reader.wants_more() {
                let Some(chunk) = entries.next().await.transpose()? else {
                    break;
                };
                for (key, value) in &chunk {
                    if !reader.wants_more() {
                        break;
                    }
                    reader.append(key, value)?;
                }
                if reader.rows() >= reader.batch_size {
                    let batch = reader.batch()?;
                    return Ok(Some((batch, (reader, entries))));
                }
            }
            if reader.rows() > 0 {
                let batch = reader.batch()?;
                // Nothing more is wanted or there: the next call ends the stream.
                let done: EntryStream = Box::pin(stream::empty());
                return Ok(Some((batch, (reader, done))));
            }
            Ok(None)
        })
    }

    /// The rows a secondary index's entries in `ranges` point to, in index order. `overlay`
    /// holds the transaction's own writes to both the index and the table.
    ///
    /// Entries are read in pages (small first, so `ORDER BY … LIMIT` stops early), each page's
    /// pageserver scan read to its end before the rows it names are fetched: a scan stream left
    /// half-read while other requests share its HTTP/2 connection could hold the connection's
    /// flow-control window and stall them.
    fn index(
        self,
        ranges: Vec<(Bytes, Bytes)>,
        overlay: Vec<(Bytes, Write)>,
    ) -> impl futures::Stream<Item = DFResult<RecordBatch>> + Send {
        const FIRST_PAGE: usize = 32;
        let rows_overlay: HashMap<Bytes, Write> = overlay.iter().cloned().collect();
        let state = (self, ranges.into_iter(), None::<(Bytes, Bytes)>, FIRST_PAGE);
        stream::try_unfold(
            (state, overlay, rows_overlay),
            |((mut reader, mut ranges, mut current, mut page), overlay, rows_overlay)| async move {
                while reader.wants_more() {
                    let (cursor, end) = match current.take() {
                        Some(c) => c,
                        None => match ranges.next() {
                            Some(r) => {
                                page = FIRST_PAGE;
                                r
                            }
                            None => break,
                        },
                    };
                    let mut remote = Vec::new();
                    let mut scan = reader
                        .primary
                        .pageserver
                        .scan(
                            cursor.clone(),
                            Some(end.clone()),
                            reader.snapshot,
                            reader.not_modified_since,
                            Some(page),
                        )
                        .await
                        .map_err(storage_error)?;
                    while let Some(chunk) = scan.next().await {
                        let chunk = chunk.map_err(storage_error)?;
                        remote.extend(chunk.keys.into_iter().zip(chunk.values));
                    }
                    // A full page covers up to its last key; the next page starts after it.
                    let covered = match remote.last() {
                        Some((last, _)) if remote.len() >= page => {
                            Bytes::from([last.as_ref(), &[0]].concat())
                        }
                        _ => end.clone(),
                    };
                    let own: Vec<(Bytes, Write)> = overlay
                        .iter()
                        .filter(|(k, _)| *k >= cursor && *k < covered)
                        .cloned()
                        .collect();
                    let row_keys: Vec<Bytes> = merge_own(remote, own)
                        .into_iter()
                        .map(|(_, row)| row)
                        .collect();
                    if covered < end {
                        current = Some((covered, end));
                        page = (page * 4).min(GET_BATCH_KEYS);
                    }
                    for keys in row_keys.chunks(GET_BATCH_KEYS) {
                        reader.read_rows(keys, &rows_overlay).await?;
                    }
                    if reader.rows() > 0 {
                        let batch = reader.batch()?;
                        return Ok(Some((
                            batch,
                            ((reader, ranges, current, page), overlay, rows_overlay),
                        )));
                    }
                }
                Ok(None)
            },
        )
    }
}

/// Entries read from the pageserver (in key order) merged with a transaction's own writes in
/// the same key span: a written value replaces or adds an entry, a delete hides one.
fn merge_own(remote: Vec<(Bytes, Bytes)>, own: Vec<(Bytes, Write)>) -> Vec<(Bytes, Bytes)> {
    if own.is_empty() {
        return remote;
    }
    let mut merged: std::collections::BTreeMap<Bytes, Bytes> = remote.into_iter().collect();
    for (key, write) in own {
        match write {
            Some(value) => merged.insert(key, value),
            None => merged.remove(&key),
        };
    }
    merged.into_iter().collect()
}

type EntryStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = DFResult<Vec<(Bytes, Bytes)>>> + Send>>;

/// The live entries of `[start, end)` at `snapshot`, merged with a transaction's own writes in
/// that range (`overlay`, in key order: a value replaces or adds an entry, a delete hides one), as
/// chunks of `(key, value)` in key order.
fn merged_entries(
    pageserver: PageserverClient,
    (start, end): (Bytes, Bytes),
    snapshot: Lsn,
    not_modified_since: Lsn,
    limit: Option<usize>,
    overlay: Vec<(Bytes, Write)>,
) -> EntryStream {
    enum Source {
        Start(Bytes, Bytes),
        Streaming(Box<ScanStream>),
        Done,
    }
    struct State {
        pageserver: PageserverClient,
        source: Source,
        overlay: VecDeque<(Bytes, Write)>,
    }
    let state = State {
        pageserver,
        source: Source::Start(start, end),
        overlay: overlay.into(),
    };
    Box::pin(stream::try_unfold(state, move |mut st| async move {
        loop {
            // The next chunk from the pageserver; none once it is exhausted.
            let mut pending: VecDeque<(Bytes, Bytes)> = VecDeque::new();
            match std::mem::replace(&mut st.source, Source::Done) {
                Source::Start(start, end) => {
                    let scan = st
                        .pageserver
                        .scan(start, Some(end), snapshot, not_modified_since, limit)
                        .await
                        .map_err(storage_error)?;
                    st.source = Source::Streaming(Box::new(scan));
                    continue;
                }
                Source::Streaming(mut scan) => {
                    if let Some(chunk) = scan.next().await {
                        let chunk = chunk.map_err(storage_error)?;
                        pending.extend(chunk.keys.into_iter().zip(chunk.values));
                        st.source = Source::Streaming(scan);
                    }
                }
                Source::Done => {}
            }
            let exhausted = matches!(st.source, Source::Done);
            // Own writes up to the chunk's last key (all of them once the pageserver is done)
            // merge into it.
            let last = pending.back().map(|(k, _)| k.clone());
            let mut out = Vec::with_capacity(pending.len());
            loop {
                let take_own = match (st.overlay.front(), pending.front()) {
                    (Some((own, _)), Some((remote, _))) => own <= remote,
                    (Some((own, _)), None) => exhausted || last.as_ref().is_some_and(|l| own <= l),
                    (None, _) => false,
                };
                if take_own {
                    let (key, write) = st.overlay.pop_front().expect("checked");
                    if pending.front().is_some_and(|(k, _)| *k == key) {
                        pending.pop_front();
                    }
                    if let Some(value) = write {
                        out.push((key, value));
                    }
                } else if let Some(entry) = pending.pop_front() {
                    out.push(entry);
                } else {
                    break;
                }
            }
            if !out.is_empty() {
                return Ok(Some((out, st)));
            }
            if exhausted {
                return Ok(None);
            }
        }
    }))
}

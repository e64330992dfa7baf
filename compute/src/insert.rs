//! `InsertSink`: adds the rows of an INSERT to the statement's transaction.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::Result as DFResult;
use datafusion::datasource::sink::DataSink;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

use crate::catalog::TableDef;
use crate::error::{sqlstate, SqlError};
use crate::primary::Primary;
use crate::row_codec::RowEncoder;
use crate::txn::WriteKind;
use crate::txn_slot::txn_slot;

pub struct InsertSink {
    def: Arc<TableDef>,
    primary: Arc<Primary>,
    /// The table's columns (all nullable: NOT NULL is checked here, with PostgreSQL's error).
    schema: SchemaRef,
}

impl InsertSink {
    pub fn new(def: Arc<TableDef>, primary: Arc<Primary>) -> Self {
        let fields: Vec<Field> = def
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Self {
            schema: Arc::new(Schema::new(fields)),
            def,
            primary,
        }
    }

    fn duplicate(&self, key_description: String) -> SqlError {
        SqlError::new(
            sqlstate::UNIQUE_VIOLATION,
            format!(
                "duplicate key value violates unique constraint \"{}\"",
                self.def.primary_key_name()
            ),
        )
        .with_detail(format!("Key {key_description} already exists."))
    }
}

impl fmt::Debug for InsertSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InsertSink({})", self.def.name)
    }
}

impl DisplayAs for InsertSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StrataInsert: table={}", self.def.name)
    }
}

#[async_trait]
impl DataSink for InsertSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> DFResult<u64> {
        let slot = txn_slot(context.session_config())?;
        let snapshot = slot.snapshot()?;
        let has_pk = !self.def.primary_key.is_empty();
        let mut count = 0u64;
        let mut seen: HashSet<Bytes> = HashSet::new();
        while let Some(batch) = data.next().await {
            let batch = batch?;
            let enc = RowEncoder::try_new(&self.def, batch.columns())
                .map_err(SqlError::into_datafusion)?;
            let rows = batch.num_rows();
            let mut keys = Vec::with_capacity(rows);
            for row in 0..rows {
                enc.check_constraints(row)
                    .map_err(SqlError::into_datafusion)?;
                let key = enc.key(row, || self.primary.txns.next_row_id());
                if has_pk && !seen.insert(key.clone()) {
                    return Err(self.duplicate(enc.describe_key(row)).into_datafusion());
                }
                keys.push(key);
            }
            if has_pk {
                // Rows this transaction wrote earlier, then rows committed before its snapshot.
                let earlier = slot.with(|txn| {
                    keys.iter()
                        .position(|k| txn.write(k).is_some_and(|w| w.value.is_some()))
                })?;
                if let Some(row) = earlier {
                    return Err(self.duplicate(enc.describe_key(row)).into_datafusion());
                }
                let existing = self
                    .primary
                    .pageserver
                    .get(
                        keys.clone(),
                        snapshot,
                        self.primary.txns.last_written().for_keys(&keys),
                    )
                    .await
                    .map_err(|e| SqlError::from(e).into_datafusion())?;
                for (row, value) in existing.iter().enumerate() {
                    if value.is_none() {
                        continue;
                    }
                    // A row deleted earlier in this transaction may be inserted again.
                    let deleted_here =
                        slot.with(|txn| txn.write(&keys[row]).is_some_and(|w| w.value.is_none()))?;
                    if !deleted_here {
                        return Err(self.duplicate(enc.describe_key(row)).into_datafusion());
                    }
                }
            }
            slot.with(|txn| {
                for (row, key) in keys.into_iter().enumerate() {
                    let kind = if has_pk {
                        WriteKind::Insert {
                            constraint: self.def.primary_key_name(),
                            key_description: enc.describe_key(row),
                        }
                    } else {
                        WriteKind::Update
                    };
                    txn.put(key, enc.value(row), kind);
                }
            })?;
            count += rows as u64;
        }
        Ok(count)
    }
}

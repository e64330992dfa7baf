//! The catalog as DataFusion sees it: the schemas, and a `StrataTable` for every table the
//! session's current transaction can see (committed tables, plus its own uncommitted DDL).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{exec_err, Result as DFResult};
use datafusion::datasource::TableProvider;

use strata_core::Lsn;

use crate::as_of::parse_as_of_name;
use crate::catalog::{TableDef, DEFAULT_SCHEMA};
use crate::pg_catalog::{
    is_pg_catalog_table, CatalogHandle, SystemSchema, INFORMATION_SCHEMA, PG_CATALOG,
};
use crate::primary::Primary;
use crate::table::{StrataTable, KEYED_SUFFIX};
use crate::txn_slot::TxnSlot;

#[derive(Debug)]
pub struct StrataCatalogProvider {
    handle: CatalogHandle,
}

impl StrataCatalogProvider {
    pub fn new(handle: CatalogHandle) -> Self {
        Self { handle }
    }
}

impl CatalogProvider for StrataCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        self.handle
            .slot
            .with_catalog(&self.handle.primary.catalog, |view| view.schemas())
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            PG_CATALOG => Some(Arc::new(SystemSchema::pg_catalog(self.handle.clone()))),
            INFORMATION_SCHEMA => Some(Arc::new(SystemSchema::information_schema(
                self.handle.clone(),
            ))),
            _ => {
                let exists = name == DEFAULT_SCHEMA
                    || self
                        .handle
                        .slot
                        .with_catalog(&self.handle.primary.catalog, |view| {
                            view.schema_exists(name)
                        })
                        .unwrap_or(false);
                exists.then(|| {
                    Arc::new(StrataSchemaProvider {
                        primary: self.handle.primary.clone(),
                        slot: self.handle.slot.clone(),
                        schema: name.to_string(),
                        system: SystemSchema::pg_catalog(self.handle.clone()),
                    }) as Arc<dyn SchemaProvider>
                })
            }
        }
    }
}

#[derive(Debug)]
pub struct StrataSchemaProvider {
    primary: Arc<Primary>,
    slot: Arc<TxnSlot>,
    schema: String,
    /// Unqualified `pg_class` and friends: PostgreSQL searches `pg_catalog` first.
    system: SystemSchema,
}

impl StrataSchemaProvider {
    /// `name` as the catalog had it at `lsn`, read at `lsn`.
    async fn past_table(&self, name: &str, lsn: Lsn) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let catalog = self
            .primary
            .catalog_at(lsn)
            .await
            .map_err(|e| e.into_datafusion())?;
        let database = self.slot.database_name();
        Ok(catalog.get(database, &self.schema, name).map(|def| {
            Arc::new(StrataTable::as_of(def, self.primary.clone(), lsn)) as Arc<dyn TableProvider>
        }))
    }

    fn lookup(&self, name: &str) -> DFResult<Option<Arc<TableDef>>> {
        self.slot
            .with_catalog(&self.primary.catalog, |view| view.get(&self.schema, name))
            .map_err(|e| e.into_datafusion())
    }
}

#[async_trait]
impl SchemaProvider for StrataSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        self.slot
            .with_catalog(&self.primary.catalog, |view| view.table_names(&self.schema))
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some((base, lsn)) = parse_as_of_name(name) {
            return self.past_table(base, lsn).await;
        }
        if is_pg_catalog_table(name) {
            return self.system.table(name).await;
        }
        if let Some(lsn) = self.slot.as_of() {
            if !name.ends_with(KEYED_SUFFIX) {
                return self.past_table(name, lsn).await;
            }
        }
        if let Some(base) = name.strip_suffix(KEYED_SUFFIX) {
            return Ok(self.lookup(base)?.map(|def| {
                Arc::new(StrataTable::keyed(def, self.primary.clone())) as Arc<dyn TableProvider>
            }));
        }
        Ok(self.lookup(name)?.map(|def| {
            Arc::new(StrataTable::new(def, self.primary.clone())) as Arc<dyn TableProvider>
        }))
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        exec_err!("tables are created with CREATE TABLE, not registered ({name})")
    }

    fn table_exist(&self, name: &str) -> bool {
        is_pg_catalog_table(name) || self.lookup(name).ok().flatten().is_some()
    }
}

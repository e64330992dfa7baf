//! The catalog as DataFusion sees it: one catalog per database, schemas, and a `StrataTable`
//! for every table in the primary's in-memory catalog.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{exec_err, Result as DFResult};
use datafusion::datasource::TableProvider;

use crate::catalog::DEFAULT_SCHEMA;
use crate::primary::Primary;
use crate::table::StrataTable;

#[derive(Debug)]
pub struct StrataCatalogProvider {
    primary: Arc<Primary>,
}

impl StrataCatalogProvider {
    pub fn new(primary: Arc<Primary>) -> Self {
        Self { primary }
    }
}

impl CatalogProvider for StrataCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        vec![DEFAULT_SCHEMA.to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == DEFAULT_SCHEMA).then(|| {
            Arc::new(StrataSchemaProvider {
                primary: self.primary.clone(),
                schema: name.to_string(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
pub struct StrataSchemaProvider {
    primary: Arc<Primary>,
    schema: String,
}

#[async_trait]
impl SchemaProvider for StrataSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        self.primary.catalog.table_names(&self.schema)
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.primary.catalog.get(&self.schema, name).map(|def| {
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
        self.primary.catalog.get(&self.schema, name).is_some()
    }
}

//! The system catalogs clients query: `pg_catalog` and `information_schema`, computed from the
//! catalog the session sees whenever a query reads them, and the system information functions.
//!
//! They answer what psql's `\d` family, JDBC's `DatabaseMetaData`, SQLAlchemy's inspector and
//! the drivers' connect-time queries ask, with PostgreSQL's table and column names. Oids follow
//! PostgreSQL where it fixes them (namespaces, types, the bootstrap role); a table's oid is its
//! table id, and its primary-key index and constraint have oids of their own (see `snapshot`).

pub(crate) mod functions;
mod information_schema;
mod rewrite;
mod snapshot;
mod tables;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::common::{exec_err, DFSchema, Result as DFResult};
use datafusion::datasource::{MemTable, TableProvider, ViewTable};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};

pub use functions::all as functions;
pub use rewrite::rewrite_catalog_syntax;
pub use snapshot::{quote_ident, table_indexes, CatalogHandle};
pub use types::{builtin_array_element, builtin_array_oid, format_type, type_oid_by_name};

pub const PG_CATALOG: &str = "pg_catalog";
pub const INFORMATION_SCHEMA: &str = "information_schema";

/// `pg_catalog` or `information_schema` as a DataFusion schema.
#[derive(Debug)]
pub struct SystemSchema {
    handle: CatalogHandle,
    information_schema: bool,
}

impl SystemSchema {
    pub fn pg_catalog(handle: CatalogHandle) -> Self {
        Self {
            handle,
            information_schema: false,
        }
    }

    pub fn information_schema(handle: CatalogHandle) -> Self {
        Self {
            handle,
            information_schema: true,
        }
    }

    fn columns(&self, name: &str) -> Option<&'static [(&'static str, tables::Ty)]> {
        if self.information_schema {
            information_schema::columns_of(name)
        } else {
            tables::columns_of(name)
        }
    }
}

/// Whether `name` is a `pg_catalog` table (unqualified names find these first, as PostgreSQL's
/// search path puts `pg_catalog` before everything).
pub fn is_pg_catalog_table(name: &str) -> bool {
    tables::columns_of(name).is_some()
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        if self.information_schema {
            information_schema::INFORMATION_SCHEMA_TABLES
                .iter()
                .map(|(n, _)| n.to_string())
                .collect()
        } else {
            tables::TABLES.iter().map(|(n, _)| n.to_string()).collect()
        }
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let Some(columns) = self.columns(name) else {
            return Ok(None);
        };
        let snap = self.handle.snapshot();
        let rows = if self.information_schema {
            information_schema::rows(name, &snap)
        } else {
            tables::rows(name, &snap)
        };
        let batch = tables::batch(columns, rows)?;
        if batch.num_rows() == 0 {
            // Planned as an empty relation, so the optimizer drops whatever reads it, including
            // correlated subqueries DataFusion could not run (psql's `\d` asks `pg_policy` for
            // role names with `oid = ANY(pol.polroles)`).
            let schema = DFSchema::try_from(batch.schema().as_ref().clone())?;
            let empty = LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(schema),
            });
            return Ok(Some(Arc::new(ViewTable::new(empty, None))));
        }
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        exec_err!("system catalog tables cannot be created ({name})")
    }

    fn table_exist(&self, name: &str) -> bool {
        self.columns(name).is_some()
    }
}

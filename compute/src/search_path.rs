//! Unqualified relation names, resolved as PostgreSQL resolves them: through the session's
//! `search_path`.
//!
//! Before a statement is planned, every unqualified relation name in it that resolves to a
//! schema other than `public` is qualified with that schema, and a relation being created gets
//! the first schema of the path that exists. After that pass a name is `schema.name` or a name in
//! `public` (DataFusion's default schema), so the planner, the DDL code and the fast path never
//! consult the path themselves. A statement planned under one path is planned again when the path
//! changes (see [`crate::txn_slot::TxnSlot::search_path`]).

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_relations_mut, AlterColumnOperation, AlterTableOperation, ColumnOption, CommentObject,
    CopySource, DataType, Ident, ObjectName, ObjectNamePart, ObjectType, Statement,
    TableConstraint,
};

use crate::catalog::{CatalogView, DEFAULT_SCHEMA};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::names::normalize;

/// The schemas of `search_path`, in order, as written (a schema need not exist to be named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    schemas: Vec<String>,
}

impl Default for SearchPath {
    fn default() -> Self {
        Self {
            schemas: vec![DEFAULT_SCHEMA.to_string()],
        }
    }
}

impl SearchPath {
    /// From the `search_path` setting: comma-separated names, quoted or not, where `$user` is
    /// the session user.
    pub fn parse(setting: &str, user: &str) -> Self {
        let schemas = setting
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Some("$user") => user.to_string(),
                    Some(quoted) => quoted.replace("\"\"", "\""),
                    None if s == "$user" => user.to_string(),
                    None => s.to_lowercase(),
                },
            )
            .collect();
        Self { schemas }
    }

    /// The path a session's settings give.
    pub fn from_settings(settings: &crate::settings::Settings) -> Self {
        let value = |name| settings.get(name).map(|(_, v)| v).unwrap_or_default();
        Self::parse(&value("search_path"), &value("session_authorization"))
    }

    /// The schemas of the path that exist, in order (`current_schemas(false)`).
    pub fn existing(&self, view: &CatalogView) -> Vec<String> {
        let mut seen = HashSet::new();
        self.schemas
            .iter()
            .filter(|s| view.schema_exists(s).unwrap_or(false) && seen.insert(s.as_str()))
            .cloned()
            .collect()
    }

    /// The schema a relation created under an unqualified name goes to.
    pub fn creation_schema(&self, view: &CatalogView) -> SqlResult<String> {
        self.existing(view)
            .into_iter()
            .find(|s| s != "pg_catalog" && s != "information_schema")
            .ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_SCHEMA_NAME,
                    "no schema has been selected to create in",
                )
            })
    }

    /// The schema of the first relation (table, view, sequence or index) named `name` along
    /// the path.
    pub fn lookup(&self, view: &CatalogView, name: &str) -> SqlResult<Option<String>> {
        for schema in self.existing(view) {
            if view.relation_exists(&schema, name)? {
                return Ok(Some(schema));
            }
        }
        Ok(None)
    }

    /// The schema of the first enum type named `name` along the path.
    pub fn lookup_type(&self, view: &CatalogView, name: &str) -> SqlResult<Option<String>> {
        for schema in self.existing(view) {
            if view.enum_type(&schema, name)?.is_some() {
                return Ok(Some(schema));
            }
        }
        Ok(None)
    }

    /// `(schema, name)` of a relation named in a string (`nextval('s')`, `'t'::regclass`):
    /// a qualified name as written, an unqualified one along the path (`public` when no schema
    /// has it, so that the caller reports the missing relation).
    pub fn resolve_text(&self, view: &CatalogView, text: &str) -> SqlResult<(String, String)> {
        let (schema, name) = crate::names::relation_name_in_text(text)?;
        let schema = match schema {
            Some(schema) => schema,
            None => self
                .lookup(view, &name)?
                .unwrap_or_else(|| DEFAULT_SCHEMA.to_string()),
        };
        Ok((schema, name))
    }

    /// `statement` with its relation names qualified (see the module documentation), or
    /// `None` when that changes nothing.
    pub fn qualified(
        &self,
        statement: &Statement,
        view: &CatalogView,
    ) -> SqlResult<Option<Statement>> {
        if !view.has_user_schemas() && self.schemas.iter().any(|s| s == DEFAULT_SCHEMA) {
            // Without schemas of its own every relation is in `public`, already where it goes.
            return Ok(None);
        }
        let qualifier = Qualifier {
            path: self,
            view,
            ctes: crate::views::cte_names(statement),
        };
        let mut qualified = statement.clone();
        qualifier.statement(&mut qualified)?;
        Ok((qualified != *statement).then_some(qualified))
    }
}

struct Qualifier<'a, 'b> {
    path: &'a SearchPath,
    view: &'a CatalogView<'b>,
    /// Names of common table expressions: a CTE shadows a relation of the same name.
    ctes: HashSet<String>,
}

impl Qualifier<'_, '_> {
    fn statement(&self, statement: &mut Statement) -> SqlResult<()> {
        match statement {
            Statement::CreateTable(ct) => {
                self.new_relation(&mut ct.name)?;
                for column in &mut ct.columns {
                    self.existing_type(&mut column.data_type)?;
                    for option in &mut column.options {
                        if let ColumnOption::ForeignKey(fk) = &mut option.option {
                            self.existing(&mut fk.foreign_table)?;
                        }
                    }
                }
                for constraint in &mut ct.constraints {
                    if let TableConstraint::ForeignKey(fk) = constraint {
                        self.existing(&mut fk.foreign_table)?;
                    }
                }
            }
            Statement::CreateView(cv) => self.new_relation(&mut cv.name)?,
            Statement::CreateSequence { name, .. } => self.new_relation(name)?,
            Statement::CreateType { name, .. } => self.new_relation(name)?,
            Statement::AlterType(alter) => self.existing_type_name(&mut alter.name)?,
            Statement::Comment {
                object_type,
                object_name,
                ..
            } => match object_type {
                CommentObject::Table
                | CommentObject::View
                | CommentObject::Sequence
                | CommentObject::Index => self.existing(object_name)?,
                CommentObject::Type => self.existing_type_name(object_name)?,
                CommentObject::Column if object_name.0.len() == 2 => {
                    let mut table = ObjectName(object_name.0[..1].to_vec());
                    self.existing(&mut table)?;
                    table.0.push(object_name.0[1].clone());
                    *object_name = table;
                }
                _ => {}
            },
            Statement::Drop {
                object_type: ObjectType::Type,
                names,
                ..
            } => {
                for name in names {
                    self.existing_type_name(name)?;
                }
            }
            Statement::AlterTable(alter) => {
                for op in &mut alter.operations {
                    match op {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            self.existing_type(&mut column_def.data_type)?
                        }
                        AlterTableOperation::AlterColumn {
                            op: AlterColumnOperation::SetDataType { data_type, .. },
                            ..
                        } => self.existing_type(data_type)?,
                        _ => {}
                    }
                    if let AlterTableOperation::AddConstraint {
                        constraint: TableConstraint::ForeignKey(fk),
                        ..
                    } = op
                    {
                        self.existing(&mut fk.foreign_table)?;
                    }
                }
            }
            Statement::Drop {
                object_type:
                    ObjectType::Table | ObjectType::View | ObjectType::Sequence | ObjectType::Index,
                names,
                ..
            } => {
                for name in names {
                    self.existing(name)?;
                }
            }
            Statement::Copy {
                source: CopySource::Table { table_name, .. },
                ..
            } => self.existing(table_name)?,
            _ => {}
        }
        let mut result = Ok(());
        let _ = visit_relations_mut(statement, |name| match self.existing(name) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                result = Err(e);
                ControlFlow::Break(())
            }
        });
        result
    }

    /// The name of a relation being created: an unqualified one goes to the creation schema; a
    /// qualified one's schema must exist.
    fn new_relation(&self, name: &mut ObjectName) -> SqlResult<()> {
        match unqualified(name) {
            Some(_) => {
                let schema = self.path.creation_schema(self.view)?;
                if schema != DEFAULT_SCHEMA {
                    qualify_with(name, &schema);
                }
            }
            None => {
                if let Some(schema) = schema_part(name) {
                    if !self.view.schema_exists(&schema)? {
                        return Err(SqlError::new(
                            sqlstate::INVALID_SCHEMA_NAME,
                            format!("schema \"{schema}\" does not exist"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// An enum type named without a schema: qualified with the schema that has it along the
    /// path, unless that is `public`.
    fn existing_type(&self, data_type: &mut DataType) -> SqlResult<()> {
        match data_type {
            DataType::Custom(name, args) if args.is_empty() => self.existing_type_name(name),
            _ => Ok(()),
        }
    }

    fn existing_type_name(&self, name: &mut ObjectName) -> SqlResult<()> {
        let Some(type_name) = unqualified(name) else {
            return Ok(());
        };
        match self.path.lookup_type(self.view, &type_name)? {
            Some(schema) if schema != DEFAULT_SCHEMA => qualify_with(name, &schema),
            _ => {}
        }
        Ok(())
    }

    /// The name of a relation that should exist: qualified with the schema that has it along
    /// the path, unless that is `public` (or no schema has it, left for the planner to report).
    fn existing(&self, name: &mut ObjectName) -> SqlResult<()> {
        let Some(relation) = unqualified(name) else {
            return Ok(());
        };
        if self.ctes.contains(&relation) {
            return Ok(());
        }
        match self.path.lookup(self.view, &relation)? {
            Some(schema) if schema != DEFAULT_SCHEMA => qualify_with(name, &schema),
            _ => {}
        }
        Ok(())
    }
}

/// The relation name of a one-part name.
fn unqualified(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Some(normalize(ident)),
        _ => None,
    }
}

/// The schema of a `schema.name` or `database.schema.name`.
fn schema_part(name: &ObjectName) -> Option<String> {
    let parts = &name.0;
    parts
        .len()
        .checked_sub(2)
        .and_then(|i| parts[i].as_ident())
        .map(normalize)
}

fn qualify_with(name: &mut ObjectName, schema: &str) {
    name.0.insert(
        0,
        ObjectNamePart::Identifier(Ident::with_quote('"', schema)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_setting_as_postgres_does() {
        let path = SearchPath::parse("\"$user\", public", "alice");
        assert_eq!(path.schemas, ["alice", "public"]);
        let path = SearchPath::parse("App, \"Mixed\"\"Case\", $user", "bob");
        assert_eq!(path.schemas, ["app", "Mixed\"Case", "bob"]);
        assert_eq!(SearchPath::parse("", "x").schemas, Vec::<String>::new());
    }
}

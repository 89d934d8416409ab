//! The ClickHouse schema of the data sources: what `SELECT *` expands to and the type of
//! every column, so results are typed as ClickHouse types them.
//!
//! A Tinybird project declares its data sources in `.datasource` files; a plain SQLite file
//! (`--data`) has only SQLite declarations, mapped here to the nearest ClickHouse type.

use std::collections::HashMap;

use rusqlite::Connection;

use super::types::ChType;

/// One column of a data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumn {
    /// Column name as declared.
    pub name: String,
    /// Its ClickHouse type.
    pub ty: ChType,
}

/// Data sources by name (matched case-insensitively, as SQLite resolves them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    tables: HashMap<String, Vec<CatalogColumn>>,
    /// Tables whose engine merges rows (`ReplacingMergeTree`, ...): those `FINAL` may read.
    merging: std::collections::HashSet<String>,
}

impl Catalog {
    /// Adds (or replaces) a data source.
    pub fn insert(&mut self, table: &str, columns: Vec<CatalogColumn>) {
        self.tables.insert(table.to_ascii_lowercase(), columns);
    }

    /// Marks a data source's engine as one that merges rows, so `FINAL` may read it.
    pub fn set_merging(&mut self, table: &str) {
        self.merging.insert(table.to_ascii_lowercase());
    }

    /// Whether `FINAL` may read the table (ClickHouse refuses it on a plain `MergeTree`).
    pub fn is_merging(&self, table: &str) -> bool {
        self.merging.contains(&table.to_ascii_lowercase())
    }

    /// The columns of a data source, if it is known.
    pub fn table(&self, name: &str) -> Option<&[CatalogColumn]> {
        self.tables
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    /// Names of the known data sources.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// Reads the tables of an SQLite database, typing columns from their declarations:
    /// `INTEGER` is `Int64`, `REAL` `Float64`, `DATE` `Date`, `DATETIME` `DateTime`, a
    /// ClickHouse type name itself, else `String`. Nullable columns are `Nullable(...)`.
    pub fn from_sqlite(conn: &Connection) -> rusqlite::Result<Self> {
        let mut catalog = Catalog::default();
        let tables: Vec<String> = conn
            .prepare(
                "SELECT name FROM main.sqlite_schema WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite_%'",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for table in tables {
            let mut stmt = conn.prepare(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
            )?;
            let columns = stmt
                .query_map([&table], |r| {
                    let name: String = r.get(0)?;
                    let decl: String = r.get(1)?;
                    let not_null: bool = r.get(2)?;
                    let pk: i64 = r.get(3)?;
                    let ty = sqlite_decl_type(&decl);
                    let ty = if not_null || pk > 0 {
                        ty
                    } else {
                        ty.nullable()
                    };
                    Ok(CatalogColumn { name, ty })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            catalog.insert(&table, columns);
        }
        Ok(catalog)
    }
}

/// The ClickHouse type for an SQLite column declaration.
pub fn sqlite_decl_type(decl: &str) -> ChType {
    if let Some(ty) = ChType::parse(decl) {
        return ty;
    }
    let upper = decl.to_ascii_uppercase();
    match upper.as_str() {
        "DATE" => ChType::Date,
        "DATETIME" | "TIMESTAMP" => ChType::DateTime,
        d if d.contains("INT") => ChType::Int(64),
        d if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") => ChType::Float(64),
        d if d.contains("BOOL") => ChType::Bool,
        _ => ChType::String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sqlite_declarations() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, d DATE NOT NULL, ts DATETIME, x REAL NOT NULL, s TEXT NOT NULL)",
        )
        .unwrap();
        let catalog = Catalog::from_sqlite(&conn).unwrap();
        let types: Vec<String> = catalog
            .table("T")
            .unwrap()
            .iter()
            .map(|c| c.ty.to_string())
            .collect();
        assert_eq!(
            types,
            ["Int64", "Date", "Nullable(DateTime)", "Float64", "String"]
        );
        assert!(catalog.table("missing").is_none());
    }
}

//! Error types: RFC 7047 error objects and the database's own errors.

use serde_json::{Value, json};

/// An RFC 7047 error object: `{"error": <tag>, "details": <text>}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {details}")]
pub struct OvsdbError {
    /// The RFC 7047 error tag, e.g. "constraint violation".
    pub error: String,
    pub details: String,
}

impl OvsdbError {
    pub fn new(error: &str, details: impl Into<String>) -> Self {
        Self {
            error: error.to_owned(),
            details: details.into(),
        }
    }
    pub fn syntax(details: impl Into<String>) -> Self {
        Self::new("syntax error", details)
    }
    pub fn constraint(details: impl Into<String>) -> Self {
        Self::new("constraint violation", details)
    }
    pub fn integrity(details: impl Into<String>) -> Self {
        Self::new("referential integrity violation", details)
    }
    pub fn unknown_column(table: &str, column: &str) -> Self {
        Self::new(
            "unknown column",
            format!("No column {column} in table {table}."),
        )
    }
    pub fn unknown_table(table: &str) -> Self {
        Self::new("unknown table", format!("No table named {table}."))
    }
    pub fn not_allowed(details: impl Into<String>) -> Self {
        Self::new("not allowed", details)
    }

    /// The JSON form used in transaction results.
    pub fn to_json(&self) -> Value {
        json!({"error": self.error, "details": self.details})
    }
}

/// Errors of the database handle (storage, schema).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("storage error: {0}")]
    Storage(String),
    #[error("database file {path} is corrupt: {details}")]
    Corrupt { path: String, details: String },
    #[error("database file {path} is empty (0 bytes)")]
    Empty { path: String },
    #[error("{0}")]
    Ovsdb(#[from] OvsdbError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(feature = "server")]
macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Storage(e.to_string())
            }
        }
    )*};
}
#[cfg(feature = "server")]
storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

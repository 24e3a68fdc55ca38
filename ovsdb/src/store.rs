//! Durable storage in redb: one key per row, `"<table>\0<uuid>"`, value the row's JSON.
//!
//! Each OVSDB transaction's changed rows go into one redb write transaction committed with
//! immediate durability, so an acknowledged transaction survives `kill -9` and a crash never
//! leaves part of a transaction behind.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use uuid::Uuid;

use crate::data::{ChangeSet, Data, Row};
use crate::error::DbError;
use crate::schema::Schema;

const ROWS: TableDefinition<&str, &[u8]> = TableDefinition::new("rows");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

fn row_key(table: &str, uuid: &Uuid) -> String {
    format!("{table}\0{uuid}")
}

/// Creates `path` empty with mode 0600, so the DB never exists with wider
/// permissions.
fn create_private(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// The redb file holding the database.
pub struct Store {
    db: Database,
    path: String,
}

impl Store {
    /// Open (or create, mode 0600 whatever the umask) the file; returns the
    /// store and whether it was just created. An existing empty file is an
    /// error: it is not a database, and starting from an empty
    /// configuration must be asked for by removing it.
    pub fn open(path: &Path) -> Result<(Self, bool), DbError> {
        let existed = match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.len() == 0 => {
                return Err(DbError::Empty {
                    path: path.display().to_string(),
                });
            }
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_private(path)?;
                false
            }
            Err(e) => return Err(e.into()),
        };
        let db = Database::create(path)?;
        let store = Self {
            db,
            path: path.display().to_string(),
        };
        let txn = store.db.begin_write()?;
        let fresh = {
            let mut meta = txn.open_table(META)?;
            let fresh = meta.get("schema_name")?.is_none();
            if fresh {
                meta.insert("schema_name", "Open_vSwitch")?;
            }
            txn.open_table(ROWS)?;
            fresh
        };
        txn.commit()?;
        Ok((store, fresh || !existed))
    }

    /// Load every row.
    pub fn load(&self, schema: &Schema) -> Result<Data, DbError> {
        let mut data = Data::empty(schema);
        let txn = self.db.begin_read()?;
        let rows = txn.open_table(ROWS)?;
        for item in rows.iter()? {
            let (k, v) = item?;
            let key = k.value();
            let corrupt = |details: String| DbError::Corrupt {
                path: self.path.clone(),
                details,
            };
            let (table, uuid) = key
                .split_once('\0')
                .ok_or_else(|| corrupt(format!("bad row key {key:?}")))?;
            let uuid =
                Uuid::parse_str(uuid).map_err(|_| corrupt(format!("bad row key {key:?}")))?;
            let Some(ts) = schema.table(table) else {
                tracing::warn!(table, "dropping rows of a table no longer in the schema");
                continue;
            };
            let json: serde_json::Value = serde_json::from_slice(v.value())
                .map_err(|e| corrupt(format!("row {key:?}: {e}")))?;
            let row = Row::from_stored_json(ts, &json)
                .map_err(|e| corrupt(format!("row {key:?}: {e}")))?;
            data.table_mut(table).insert(uuid, std::sync::Arc::new(row));
        }
        Ok(data)
    }

    /// Write one transaction's changes durably.
    pub fn commit(&self, changes: &ChangeSet) -> Result<(), DbError> {
        self.commit_batch(std::iter::once(changes))
    }

    /// Write several transactions' changes, in order, in one durable redb transaction.
    pub fn commit_batch<'c>(
        &self,
        batch: impl IntoIterator<Item = &'c ChangeSet>,
    ) -> Result<(), DbError> {
        let txn = self.db.begin_write()?;
        {
            let mut rows = txn.open_table(ROWS)?;
            for c in batch.into_iter().flat_map(|cs| &cs.changes) {
                let key = row_key(&c.table, &c.uuid);
                match &c.new {
                    Some(r) => {
                        let mut obj = r.to_json(c.uuid, None);
                        if let Some(o) = obj.as_object_mut() {
                            o.remove("_uuid");
                        }
                        let bytes = serde_json::to_vec(&obj)
                            .map_err(|e| DbError::Storage(e.to_string()))?;
                        rows.insert(key.as_str(), bytes.as_slice())?;
                    }
                    None => {
                        rows.remove(key.as_str())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_new_db_file_is_private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.db");
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0) };
        let r = Store::open(&path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        let (_store, fresh) = r.unwrap();
        assert!(fresh);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_empty_existing_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.db");
        std::fs::write(&path, b"").unwrap();
        let Err(e) = Store::open(&path) else {
            panic!("an empty file was accepted");
        };
        assert!(matches!(e, DbError::Empty { .. }), "{e}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}

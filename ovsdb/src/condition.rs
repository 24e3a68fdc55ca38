//! `where` clauses (RFC 7047 section 5.1, "condition").

use serde_json::Value;
use uuid::Uuid;

use crate::data::Row;
use crate::datum::{Atom, Datum, NamedUuids};
use crate::error::OvsdbError;
use crate::schema::{ColumnType, TableSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Includes,
    Excludes,
}

/// One parsed clause `[column, function, value]`.
#[derive(Debug, Clone)]
struct Clause {
    column: String,
    function: Function,
    arg: Datum,
}

/// A parsed `where`: a conjunction of clauses.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    clauses: Vec<Clause>,
}

/// The value of a column, including the implicit `_uuid` and `_version`.
pub fn column_value(row: &Row, uuid: Uuid, column: &str) -> Option<Datum> {
    match column {
        "_uuid" => Some(Datum::scalar(Atom::Uuid(uuid))),
        "_version" => Some(Datum::scalar(Atom::Uuid(row.version))),
        c => row.get(c).cloned(),
    }
}

/// The type of a column, including the implicit ones.
pub fn column_type(ts: &TableSchema, column: &str) -> Result<ColumnType, OvsdbError> {
    match column {
        "_uuid" | "_version" => Ok(ColumnType::uuid_scalar()),
        c => ts
            .columns
            .get(c)
            .map(|cs| cs.ty.clone())
            .ok_or_else(|| OvsdbError::unknown_column(&ts.name, c)),
    }
}

impl Condition {
    /// Parse a `where` array against a table.
    pub fn parse(
        ts: &TableSchema,
        v: Option<&Value>,
        named: &NamedUuids,
    ) -> Result<Self, OvsdbError> {
        let Some(v) = v else {
            return Ok(Self::default());
        };
        let arr = v
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("\"where\" must be an array"))?;
        let mut clauses = Vec::new();
        for c in arr {
            let parts = c.as_array().filter(|p| p.len() == 3).ok_or_else(|| {
                OvsdbError::syntax(format!(
                    "condition must be [column, function, value], got {c}"
                ))
            })?;
            let column = parts[0]
                .as_str()
                .ok_or_else(|| OvsdbError::syntax("condition column must be a string"))?;
            let ty = column_type(ts, column)?;
            let function = match parts[1].as_str() {
                Some("<") => Function::Lt,
                Some("<=") => Function::Le,
                Some("==") => Function::Eq,
                Some("!=") => Function::Ne,
                Some(">=") => Function::Ge,
                Some(">") => Function::Gt,
                Some("includes") => Function::Includes,
                Some("excludes") => Function::Excludes,
                _ => return Err(OvsdbError::syntax(format!("unknown function {}", parts[1]))),
            };
            let ordered = matches!(
                function,
                Function::Lt | Function::Le | Function::Ge | Function::Gt
            );
            if ordered
                && !(ty.is_scalar()
                    && matches!(
                        ty.key.atomic,
                        crate::schema::AtomicType::Integer | crate::schema::AtomicType::Real
                    ))
            {
                return Err(OvsdbError::syntax(format!(
                    "Type mismatch: \"{}\" operator may not be applied to column {column}",
                    parts[1].as_str().unwrap_or("")
                )));
            }
            let arg = Datum::from_json_unchecked(&parts[2], &ty, named)?;
            clauses.push(Clause {
                column: column.to_owned(),
                function,
                arg,
            });
        }
        Ok(Self { clauses })
    }

    /// A condition matching one row by uuid.
    pub fn by_uuid(uuid: Uuid) -> Self {
        Self {
            clauses: vec![Clause {
                column: "_uuid".into(),
                function: Function::Eq,
                arg: Datum::scalar(Atom::Uuid(uuid)),
            }],
        }
    }

    /// The uuid this condition pins, if it has a `_uuid == X` clause (fast path).
    pub fn pinned_uuid(&self) -> Option<Uuid> {
        self.clauses
            .iter()
            .find(|c| c.column == "_uuid" && c.function == Function::Eq)
            .and_then(|c| c.arg.first())
            .and_then(Atom::as_uuid)
    }

    /// Whether a row satisfies every clause.
    pub fn matches(&self, row: &Row, uuid: Uuid) -> bool {
        self.clauses.iter().all(|c| {
            let Some(v) = column_value(row, uuid, &c.column) else {
                return false;
            };
            match c.function {
                Function::Eq => v == c.arg,
                Function::Ne => v != c.arg,
                Function::Includes => v.includes(&c.arg),
                Function::Excludes => v.excludes(&c.arg),
                f => {
                    let (Some(a), Some(b)) = (v.first(), c.arg.first()) else {
                        return false;
                    };
                    let ord = match (a, b) {
                        (Atom::Integer(x), Atom::Integer(y)) => x.partial_cmp(y),
                        (Atom::Real(x), Atom::Real(y)) => x.partial_cmp(y),
                        _ => None,
                    };
                    let Some(ord) = ord else { return false };
                    match f {
                        Function::Lt => ord.is_lt(),
                        Function::Le => ord.is_le(),
                        Function::Ge => ord.is_ge(),
                        Function::Gt => ord.is_gt(),
                        _ => false,
                    }
                }
            }
        })
    }
}

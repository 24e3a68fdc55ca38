//! ovs-vsctl value syntax: parsing `tag=10`, `trunks=10,20`, `{a=b}`, `[1,2]`, `@name`, and
//! printing datums the way ovs-vsctl does.

use std::collections::{BTreeMap, BTreeSet};

use ovsdb::datum::{Atom, Datum};
use ovsdb::schema::{AtomicType, BaseType, ColumnType};
use uuid::Uuid;

use super::VsctlError;

/// `--id=@name` symbols: name to uuid, and whether the row was created.
pub type Symbols = BTreeMap<String, (Uuid, bool)>;

/// Whether a string must be quoted when printed (ovs-vsctl rules).
pub fn needs_quotes(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        None => return true,
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => return true,
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        return true;
    }
    s == "true" || s == "false"
}

/// Print one atom as ovs-vsctl does.
pub fn atom_to_string(a: &Atom) -> String {
    match a {
        Atom::String(s) if needs_quotes(s) => serde_json::Value::String(s.clone()).to_string(),
        other => other.to_display(),
    }
}

/// Print a datum as ovs-vsctl does: maps `{k=v, ...}`, sets `[a, b]`, single values bare.
pub fn datum_to_string(d: &Datum, ty: &ColumnType) -> String {
    match d {
        Datum::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}={}", atom_to_string(k), atom_to_string(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Datum::Set(s) if ty.max == 1 && s.len() == 1 => {
            s.iter().next().map(atom_to_string).unwrap_or_default()
        }
        Datum::Set(s) => format!(
            "[{}]",
            s.iter().map(atom_to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Split a datum string into tokens: atoms, `=`, `,`, braces and brackets.
fn tokenize(s: &str) -> Result<Vec<String>, VsctlError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if "{}[]=,".contains(c) {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' {
            let mut lit = String::from('"');
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                lit.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        lit.push(n);
                    }
                } else if c == '"' {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(VsctlError::msg(format!(
                    "{s}: missing quote at end of quoted string"
                )));
            }
            out.push(lit);
        } else {
            let mut tok = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || "{}[]=,".contains(c) {
                    break;
                }
                tok.push(c);
                chars.next();
            }
            out.push(tok);
        }
    }
    Ok(out)
}

fn unquote(s: &str) -> Result<String, VsctlError> {
    if s.starts_with('"') {
        serde_json::from_str::<String>(s)
            .map_err(|_| VsctlError::msg(format!("{s}: invalid quoted string")))
    } else {
        Ok(s.to_owned())
    }
}

/// Parse one atom of type `bt` from its string form.
pub fn parse_atom(s: &str, bt: &BaseType, symbols: &Symbols) -> Result<Atom, VsctlError> {
    let text = unquote(s.trim())?;
    let atom = match bt.atomic {
        AtomicType::Integer => Atom::Integer(
            text.parse()
                .map_err(|_| VsctlError::msg(format!("\"{text}\" is not a valid integer")))?,
        ),
        AtomicType::Real => Atom::Real(
            text.parse()
                .map_err(|_| VsctlError::msg(format!("\"{text}\" is not a valid real number")))?,
        ),
        AtomicType::Boolean => Atom::Boolean(match text.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(VsctlError::msg(format!(
                    "\"{text}\" is not a valid boolean (use \"true\" or \"false\")"
                )));
            }
        }),
        AtomicType::String => Atom::String(text),
        AtomicType::Uuid => {
            if let Some(sym) = text.strip_prefix('@') {
                let _ = sym;
                Atom::Uuid(
                    symbols
                        .get(&text)
                        .map(|(u, _)| *u)
                        .ok_or_else(|| VsctlError::msg(format!("row id \"{text}\" is referenced but never created (e.g. with \"-- --id={text} create ...\")")))?,
                )
            } else {
                Atom::Uuid(
                    Uuid::parse_str(&text)
                        .map_err(|_| VsctlError::msg(format!("\"{text}\" is not a valid UUID")))?,
                )
            }
        }
    };
    bt.check(&atom).map_err(|e| VsctlError::msg(e.details))?;
    Ok(atom)
}

/// Parse a whole-column value (`10`, `10,20`, `[1,2]`, `{a=b,c=d}`, `a=b`).
pub fn parse_datum(s: &str, ty: &ColumnType, symbols: &Symbols) -> Result<Datum, VsctlError> {
    let trimmed = s.trim();
    let bracketed = trimmed.starts_with('[') || trimmed.starts_with('{');
    if !bracketed && ty.value.is_none() && ty.max == 1 {
        let mut set = BTreeSet::new();
        set.insert(parse_atom(trimmed, &ty.key, symbols)?);
        return Ok(Datum::Set(set));
    }
    let mut toks = tokenize(trimmed)?;
    if bracketed {
        let open = toks.remove(0);
        let close = if open == "[" { "]" } else { "}" };
        if toks.last().map(String::as_str) != Some(close) {
            return Err(VsctlError::msg(format!(
                "{s}: missing \"{close}\" at end of value"
            )));
        }
        toks.pop();
    }
    let elems: Vec<Vec<String>> = toks
        .split(|t| t == ",")
        .filter(|e| !e.is_empty())
        .map(|e| e.to_vec())
        .collect();
    let d = if let Some(vt) = &ty.value {
        let mut m = BTreeMap::new();
        for e in elems {
            let [k, eq, v] = e.as_slice() else {
                return Err(VsctlError::msg(format!(
                    "{s}: syntax error in map value (expected key=value)"
                )));
            };
            if eq != "=" {
                return Err(VsctlError::msg(format!(
                    "{s}: syntax error in map value (expected key=value)"
                )));
            }
            m.insert(
                parse_atom(k, &ty.key, symbols)?,
                parse_atom(v, vt, symbols)?,
            );
        }
        Datum::Map(m)
    } else {
        let mut set = BTreeSet::new();
        for e in elems {
            for atom in e {
                set.insert(parse_atom(&atom, &ty.key, symbols)?);
            }
        }
        Datum::Set(set)
    };
    if d.len() < ty.min.min(1) && !bracketed {
        return Err(VsctlError::msg(format!(
            "{s}: value requires at least {} element(s)",
            ty.min
        )));
    }
    if d.len() > ty.max {
        return Err(VsctlError::msg(format!(
            "\"{s}\" has {} elements but the column allows at most {}",
            d.len(),
            ty.max
        )));
    }
    Ok(d)
}

/// Split `COL[:KEY]` from the rest of an argument at the first of `stops`.
pub fn split_column_key(arg: &str, stops: &[char]) -> (String, Option<String>, String) {
    let end = arg.find(|c| stops.contains(&c)).unwrap_or(arg.len());
    let (head, rest) = arg.split_at(end);
    match head.split_once(':') {
        Some((c, k)) => (c.to_owned(), Some(k.to_owned()), rest.to_owned()),
        None => (head.to_owned(), None, rest.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovsdb::Schema;

    fn col(table: &str, c: &str) -> ColumnType {
        Schema::vswitch().table(table).unwrap().columns[c]
            .ty
            .clone()
    }

    #[test]
    fn parses_scalars_sets_and_maps_in_vsctl_syntax() {
        let syms = Symbols::new();
        let tag = parse_datum("10", &col("Port", "tag"), &syms).unwrap();
        assert_eq!(tag.first().and_then(Atom::as_i64), Some(10));
        let trunks = parse_datum("10,20", &col("Port", "trunks"), &syms).unwrap();
        assert_eq!(trunks.len(), 2);
        let trunks = parse_datum("[1, 2, 3]", &col("Port", "trunks"), &syms).unwrap();
        assert_eq!(trunks.len(), 3);
        let m = parse_datum("{a=b, c=\"d e\"}", &col("Port", "other_config"), &syms).unwrap();
        assert_eq!(
            datum_to_string(&m, &col("Port", "other_config")),
            "{a=b, c=\"d e\"}"
        );
        let empty = parse_datum("[]", &col("Port", "tag"), &syms).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn rejects_out_of_range_and_bad_integers() {
        let syms = Symbols::new();
        assert!(parse_datum("5000", &col("Port", "tag"), &syms).is_err());
        assert!(parse_datum("ten", &col("Port", "tag"), &syms).is_err());
        assert!(parse_datum("bogus", &col("Bridge", "fail_mode"), &syms).is_err());
    }

    #[test]
    fn prints_strings_quoted_only_when_needed() {
        assert_eq!(atom_to_string(&Atom::String("br0".into())), "br0");
        assert_eq!(atom_to_string(&Atom::String("".into())), "\"\"");
        assert_eq!(atom_to_string(&Atom::String("/tmp/x".into())), "\"/tmp/x\"");
        assert_eq!(atom_to_string(&Atom::String("true".into())), "\"true\"");
    }

    #[test]
    fn column_key_split_handles_keys_and_operators() {
        assert_eq!(
            split_column_key("options:vhost-server-path=/x", &['=']),
            (
                "options".into(),
                Some("vhost-server-path".into()),
                "=/x".into()
            )
        );
        assert_eq!(
            split_column_key("tag=10", &['=']),
            ("tag".into(), None, "=10".into())
        );
    }
}

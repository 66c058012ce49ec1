//! Rows as comparable values, and a readable diff of two tables.
//!
//! Invariant: two [`Table`]s are equal when they hold the same multiset of
//! rows (order never matters: views have no ORDER BY), and the diff names the
//! first rows missing on each side, so a mismatch reads without a debugger.

use std::cmp::Ordering;
use std::fmt;

/// One value. Money is in cents (`Int`) and times in Unix seconds (`Int`) on
/// both sides, so equality is exact; floats compare bit-for-bit because both
/// sides compute them with the same IEEE division.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    fn rank(&self) -> u8 {
        match self {
            Cell::Null => 0,
            Cell::Bool(_) => 1,
            Cell::Int(_) => 2,
            Cell::Float(_) => 3,
            Cell::Text(_) => 4,
        }
    }
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Cell {}

impl PartialOrd for Cell {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cell {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
            (Cell::Int(a), Cell::Int(b)) => a.cmp(b),
            (Cell::Float(a), Cell::Float(b)) => a.total_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Bool(b) => write!(f, "{b}"),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Float(x) => write!(f, "{x}"),
            Cell::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}

impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell::Bool(v)
    }
}

impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::Float(v)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_owned())
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

pub type Row = Vec<Cell>;

/// A named result: one output of analytics, or its ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<&'static str>,
    /// Sorted, so equal tables compare equal.
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(name: &'static str, columns: &[&'static str], mut rows: Vec<Row>) -> Self {
        for row in &rows {
            assert_eq!(
                row.len(),
                columns.len(),
                "{name}: a row has {} values for {} columns",
                row.len(),
                columns.len()
            );
        }
        rows.sort();
        Table {
            name,
            columns: columns.to_vec(),
            rows,
        }
    }

    /// `None` when equal; otherwise the first rows that differ, each side.
    pub fn diff(&self, actual: &Table, limit: usize) -> Option<String> {
        if self.rows == actual.rows && self.columns == actual.columns {
            return None;
        }
        let (missing, unexpected) = multiset_difference(&self.rows, &actual.rows);
        let mut out = format!(
            "{} ({}): ground truth has {} rows, analytics {}; {} missing, {} unexpected",
            self.name,
            self.columns.join(", "),
            self.rows.len(),
            actual.rows.len(),
            missing.len(),
            unexpected.len()
        );
        if self.columns != actual.columns {
            out.push_str(&format!(
                "\n  columns differ: ground truth {:?}, analytics {:?}",
                self.columns, actual.columns
            ));
        }
        for (label, rows) in [
            ("in ground truth, not in analytics", &missing),
            ("in analytics, not in ground truth", &unexpected),
        ] {
            if rows.is_empty() {
                continue;
            }
            out.push_str(&format!("\n  {label}:"));
            for row in rows.iter().take(limit) {
                out.push_str(&format!("\n    {}", show(row)));
            }
            if rows.len() > limit {
                out.push_str(&format!("\n    ... and {} more", rows.len() - limit));
            }
        }
        Some(out)
    }
}

fn show(row: &Row) -> String {
    let cells: Vec<String> = row.iter().map(ToString::to_string).collect();
    format!("({})", cells.join(", "))
}

/// Rows of `a` not in `b` and rows of `b` not in `a`, counting duplicates;
/// both inputs sorted.
fn multiset_difference<'r>(a: &'r [Row], b: &'r [Row]) -> (Vec<&'r Row>, Vec<&'r Row>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
                Ordering::Less => {
                    only_a.push(x);
                    i += 1;
                }
                Ordering::Greater => {
                    only_b.push(y);
                    j += 1;
                }
            },
            (Some(x), None) => {
                only_a.push(x);
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_and_the_diff_shows_both_sides() {
        let a = Table::new(
            "t",
            &["k", "v"],
            vec![vec![1.into(), "x".into()], vec![2.into(), "y".into()]],
        );
        let b = Table::new(
            "t",
            &["k", "v"],
            vec![vec![2.into(), "y".into()], vec![1.into(), "x".into()]],
        );
        assert_eq!(a.diff(&b, 5), None);
        let c = Table::new(
            "t",
            &["k", "v"],
            vec![
                vec![1.into(), "x".into()],
                vec![2.into(), "z".into()],
                vec![2.into(), "z".into()],
            ],
        );
        let diff = a.diff(&c, 5).expect("differs");
        assert!(diff.contains("1 missing, 2 unexpected"), "{diff}");
        assert!(diff.contains("(2, \"y\")"), "{diff}");
        assert!(diff.contains("(2, \"z\")"), "{diff}");
    }

    #[test]
    fn nulls_and_floats_compare_exactly() {
        let none: Option<i64> = None;
        assert_eq!(Cell::from(none), Cell::Null);
        assert_ne!(Cell::Float(0.1 + 0.2), Cell::Float(0.3));
        assert_eq!(Cell::Float(2.0 / 3.0), Cell::Float(2.0 / 3.0));
    }
}

//! Grid: a result as rows of typed cells, the one shape every renderer takes.
//!
//! Owns: `Cell` and `Grid` (plain data). Must not: import anything of the crate but `money`
//! (a money cell is exact `Money`); rendering is `present`, building one from polars is `query`.

/// One value of a result, typed enough to render it right.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i128),
    /// Fixed point: value and scale.
    Dec(i128, usize),
    Text(String),
}

impl Cell {
    pub fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(v) => v.to_string(),
            Cell::Dec(v, s) => crate::money::fixed_text(*v, *s),
            Cell::Text(s) => s.clone(),
        }
    }
}

/// A result ready to render: column names and typed cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grid {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Table format only: a last row set apart (totals).
    pub footer: Option<Vec<Cell>>,
}

impl Grid {
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

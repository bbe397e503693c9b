//! A small text table: left-aligned columns, two spaces apart, no trailing blanks.

use std::fmt;

/// Rows of cells rendered as aligned columns, with an optional header row.
///
/// Widths count `char`s, which is right for the ASCII and most of the Latin text that app names,
/// states and numbers consist of.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table { header: Some(header.into_iter().map(Into::into).collect()), rows: Vec::new() }
    }

    /// A table without a header row.
    pub fn headless() -> Self {
        Table::default()
    }

    /// Appends a row. Rows may have different lengths; missing cells are blank.
    pub fn push<I, S>(&mut self, row: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(row.into_iter().map(Into::into).collect());
    }

    fn all_rows(&self) -> impl Iterator<Item = &Vec<String>> {
        self.header.iter().chain(&self.rows)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.all_rows().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in self.all_rows() {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in self.all_rows() {
            // Trailing blank cells are dropped so that no line ends in spaces.
            let used = row.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
            for (i, cell) in row[..used].iter().enumerate() {
                if i + 1 == used {
                    f.write_str(cell)?;
                } else {
                    write!(f, "{cell:<width$}  ", width = widths[i])?;
                }
            }
            f.write_str("\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_and_lines_have_no_trailing_blanks() {
        let mut t = Table::new(["A", "LONG HEADER", "C"]);
        t.push(["wide cell", "x", ""]);
        t.push(["y"]);
        assert_eq!(t.to_string(), "A          LONG HEADER  C\nwide cell  x\ny\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut t = Table::headless();
        t.push(["café", "1"]);
        t.push(["cafe!", "2"]);
        assert_eq!(t.to_string(), "café   1\ncafe!  2\n");
    }

    #[test]
    fn an_empty_table_renders_its_header_only() {
        let t = Table::new(["NAME"]);
        assert_eq!(t.to_string(), "NAME\n");
        assert_eq!(Table::headless().to_string(), "");
    }

    #[test]
    fn table_columns_are_aligned_two_spaces_apart() {
        let mut table = Table::new(["NAME", "STATE"]);
        table.push(["web", "running"]);
        table.push(["worker-1", "stopped"]);
        assert_eq!(table.to_string(), "NAME      STATE\nweb       running\nworker-1  stopped\n");
    }
}

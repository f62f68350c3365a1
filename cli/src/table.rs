//! Plain-text tables for the terminal.

/// Renders rows under headers with columns padded to their widest cell (in chars).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(c.chars().count());
                format!("{c}{}", " ".repeat(pad))
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.push(line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// `1234` -> `1.23 s`, `87` -> `87 ms`.
pub fn duration(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms >= 1000 => format!("{:.2} s", ms as f64 / 1000.0),
        Some(ms) => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_pads_columns_by_chars() {
        let t = render(
            &["a", "bb"],
            &[
                vec!["ü1".into(), "x".into()],
                vec!["long".into(), "".into()],
            ],
        );
        assert_eq!(t, "a     bb\n----  --\nü1    x\nlong");
    }

    #[test]
    fn duration_table() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(87)), "87 ms");
        assert_eq!(duration(Some(1234)), "1.23 s");
    }
}

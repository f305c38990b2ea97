//! Result formats: table (fitted to the terminal's width), line, csv, json, ndjson, markdown.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{JsonArray, JsonFormat, LineDelimited, Writer};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use unicode_width::UnicodeWidthStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    /// One `column = value` line per field, rows separated by a blank line.
    Line,
    Csv,
    Json,
    Ndjson,
    Markdown,
}

fn format_options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("")
}

/// Renders batches in `format`; `schema` names the columns when there are no rows.
pub fn render(format: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, ArrowError> {
    match format {
        Format::Table => render_table(schema, batches, None),
        Format::Line => render_lines(schema, batches),
        Format::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
                if batches.is_empty() {
                    w.write(&RecordBatch::new_empty(schema.clone()))?;
                }
                for b in batches {
                    w.write(b)?;
                }
            }
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        Format::Json => {
            let s = json_text::<JsonArray>(batches)?;
            Ok(if s.is_empty() { "[]\n".into() } else { s + "\n" })
        }
        Format::Ndjson => json_text::<LineDelimited>(batches),
        Format::Markdown => markdown(schema, batches),
    }
}

fn json_text<F: JsonFormat>(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = Writer::<_, F>::new(&mut buf);
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        w.write_batches(&refs)?;
        w.finish()?;
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn markdown(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let escape = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let names: Vec<String> = schema.fields().iter().map(|f| escape(f.name())).collect();
    let mut out =
        format!("| {} |\n|{}|\n", names.join(" | "), names.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in cells(batches, "")? {
        let row: Vec<String> = row.iter().map(|c| escape(c)).collect();
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    Ok(out)
}

/// Formatted cells of every row, NULL shown as the text given in `null`.
fn cells(batches: &[RecordBatch], null: &str) -> Result<Vec<Vec<String>>, ArrowError> {
    let opts = format_options().with_null(null);
    let mut rows = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref() as &dyn Array, &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            rows.push(fmts.iter().map(|f| f.value(row).to_string()).collect());
        }
    }
    Ok(rows)
}

/// Cells for table and line output: NULL as `NULL`, line breaks shown as `\n`.
fn display_cells(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, ArrowError> {
    Ok(cells(batches, "NULL")?
        .into_iter()
        .map(|row| row.into_iter().map(|c| c.replace('\n', "\\n")).collect())
        .collect())
}

/// Cuts `s` to `width` display columns, ending in `…` when something was cut.
fn fit(s: &str, width: usize) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// A boxed table. With `max_width`, the widest columns are narrowed (JSON text first, being
/// the widest) and their cells end in `…`, so each row stays on one terminal line.
pub fn render_table(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_width: Option<usize>,
) -> Result<String, ArrowError> {
    let headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let rows = display_cells(batches)?;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.width());
        }
    }
    if let Some(max) = max_width {
        let floor: Vec<usize> = headers.iter().map(|h| h.width().clamp(4, 12)).collect();
        let total = |w: &[usize]| w.iter().sum::<usize>() + 3 * w.len() + 1;
        while total(&widths) > max {
            let Some((i, _)) = widths.iter().enumerate().filter(|(i, w)| **w > floor[*i]).max_by_key(|(_, w)| **w)
            else {
                break;
            };
            widths[i] -= 1;
        }
    }
    let rule = format!("+{}+\n", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
    let line = |values: &[String]| {
        let parts: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| {
                let v = fit(v, *w);
                format!(" {v}{} ", " ".repeat(w.saturating_sub(v.width())))
            })
            .collect();
        format!("|{}|\n", parts.join("|"))
    };
    let mut out = rule.clone();
    out.push_str(&line(&headers));
    out.push_str(&rule);
    for r in &rows {
        out.push_str(&line(r));
    }
    if !rows.is_empty() {
        out.push_str(&rule);
    }
    Ok(out)
}

fn render_lines(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    let pad = names.iter().map(|n| n.width()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, r) in display_cells(batches)?.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (n, v) in names.iter().zip(r) {
            out.push_str(&format!("{n:>pad$} = {v}\n"));
        }
    }
    Ok(out)
}

/// The width of the terminal on stdout, when stdout is one.
pub fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    if !term.is_term() {
        return None;
    }
    term.size_checked().map(|(_, cols)| cols as usize)
}

//! Result formats: table (fitted to the terminal's width), line, csv, json, ndjson, markdown.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{JsonArray, JsonFormat, LineDelimited, Writer, WriterBuilder};
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

/// Renders batches in `format`; `schema` names the columns when there are no rows. Structs,
/// lists and maps are JSON text in text formats, and JSON in json/ndjson.
pub fn render(format: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let (schema, batches) = match format {
        Format::Json | Format::Ndjson => (schema.clone(), batches.to_vec()),
        _ => nested_as_json(schema, batches)?,
    };
    let (schema, batches) = (&schema, batches.as_slice());
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
    let (schema, batches) = nested_as_json(schema, batches)?;
    let (schema, batches) = (&schema, batches.as_slice());
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

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Struct(_)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Map(..)
            | DataType::Union(..)
    )
}

/// Struct, list and map columns as JSON text (what CSV can hold and people can read); other
/// columns untouched.
pub fn nested_as_json(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    if !schema.fields().iter().any(|f| is_nested(f.data_type())) {
        return Ok((schema.clone(), batches.to_vec()));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| if is_nested(f.data_type()) { Field::new(f.name(), DataType::Utf8, true) } else { f.as_ref().clone() })
        .collect();
    let text_schema = Arc::new(Schema::new(fields));
    let converted = batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .map(|c| if is_nested(c.data_type()) { json_text_column(c) } else { Ok(c.clone()) })
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(text_schema.clone(), columns)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((text_schema, converted))
}

/// One nested column as JSON text per row (NULL stays NULL).
fn json_text_column(col: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let field = Field::new("v", col.data_type().clone(), true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![col.clone()])?;
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut buf);
        w.write(&batch)?;
        w.finish()?;
    }
    let text = String::from_utf8_lossy(&buf);
    let values: Vec<Option<String>> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            match v.get("v") {
                None | Some(serde_json::Value::Null) => None,
                Some(x) => Some(x.to_string()),
            }
        })
        .collect();
    Ok(Arc::new(StringArray::from(values)))
}

/// The width of the terminal on stdout, when stdout is one.
pub fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    if !term.is_term() {
        return None;
    }
    term.size_checked().map(|(_, cols)| cols as usize)
}

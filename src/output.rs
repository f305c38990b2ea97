//! Result formats: table, csv, json, ndjson, markdown.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_options;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
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
        Format::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let empty = RecordBatch::new_empty(schema.clone());
                return Ok(
                    pretty_format_batches_with_options(&[empty], &format_options().with_null("NULL"))?.to_string()
                );
            }
            Ok(pretty_format_batches_with_options(batches, &format_options().with_null("NULL"))?.to_string())
        }
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
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                w.write_batches(&refs)?;
                w.finish()?;
            }
            let s = String::from_utf8_lossy(&buf).into_owned();
            Ok(if s.is_empty() { "[]\n".into() } else { s + "\n" })
        }
        Format::Ndjson => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                w.write_batches(&refs)?;
                w.finish()?;
            }
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        Format::Markdown => markdown(schema, batches),
    }
}

fn markdown(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let escape = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let names: Vec<String> = schema.fields().iter().map(|f| escape(f.name())).collect();
    let mut out =
        format!("| {} |\n|{}|\n", names.join(" | "), names.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    let opts = format_options();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref() as &dyn Array, &opts))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            let cells: Vec<String> = fmts.iter().map(|f| escape(&f.value(row).to_string())).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    Ok(out)
}

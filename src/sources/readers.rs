//! Other tools' exports as they really come. CSV is sniffed (delimiter, quoting, header) from a
//! sample the way DuckDB's reader does and stays streamed from disk; repeated or empty header
//! names are made unique. JSON and NDJSON are loaded into memory (up to a bound), widening a
//! field whose values disagree in type to text and flattening one-level objects by the column
//! rule (`user.email` → `user_email`). Excel and OpenDocument workbooks are read with calamine:
//! a sheet is a table, dates become timestamps and numbers numbers.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use serde_json::Value;

use crate::error::{SourceError, user_message};

/// What reading one file gave: its tables (one, or one per sheet of a workbook) and what the
/// user should know about it (renamed or widened columns, the size loaded).
pub struct FileTables {
    /// `None` names the file's only table; `Some(sheet)` one table of a workbook.
    pub tables: Vec<(Option<String>, Arc<dyn TableProvider>)>,
    pub notes: Vec<String>,
}

/// JSON is loaded whole; past this many bytes it is refused with a way out.
pub const DEFAULT_MAX_JSON_BYTES: u64 = 256 << 20;

pub fn is_data_file(p: &Path) -> bool {
    matches!(
        extension(p).as_str(),
        "csv" | "tsv" | "txt" | "json" | "ndjson" | "jsonl" | "parquet" | "xlsx" | "xlsm" | "xls" | "xlsb" | "ods"
    )
}

fn extension(p: &Path) -> String {
    p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default()
}

pub async fn read_file(ctx: &SessionContext, path: &Path, max_json_bytes: u64) -> Result<FileTables, SourceError> {
    let shown = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| SourceError::Unreadable { path: shown.clone(), reason: e.to_string() })?
        .len();
    let is_blank =
        size == 0 || (size < 4096 && std::fs::read(path).is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace)));
    if is_blank {
        return Err(SourceError::Empty { path: shown });
    }
    let one =
        |provider: Arc<dyn TableProvider>, notes: Vec<String>| FileTables { tables: vec![(None, provider)], notes };
    match extension(path).as_str() {
        "csv" | "tsv" | "txt" => {
            let (provider, notes) = read_csv(ctx, path).await?;
            Ok(one(provider, notes))
        }
        "parquet" => {
            let ext = format!(".{}", path.extension().and_then(|e| e.to_str()).unwrap_or("parquet"));
            let df = ctx
                .read_parquet(path.to_string_lossy().as_ref(), ParquetReadOptions::default().file_extension(&ext))
                .await
                .map_err(|e| SourceError::Read { path: shown, reason: user_message(&e) })?;
            Ok(one(df.into_view(), Vec::new()))
        }
        "json" | "ndjson" | "jsonl" => {
            if size > max_json_bytes {
                return Err(SourceError::TooLarge { path: shown, mib: size >> 20, max_mib: max_json_bytes >> 20 });
            }
            let (provider, mut notes) = read_json(path)?;
            notes.push(format!("{shown}: {} of JSON loaded into memory", human_bytes(size)));
            Ok(one(provider, notes))
        }
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => read_workbook(path),
        _ => Err(SourceError::UnknownFormat { path: shown }),
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} bytes"),
        1024..1_048_576 => format!("{:.0} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// Header names as SQL can use them: empty ones become `column_N`, a repeated one gets `_2`,
/// `_3` (case-insensitively, as SQL compares them). Returns the names and a note per rename.
pub fn unique_names(raw: &[String], file: &str) -> (Vec<String>, Vec<String>) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut names = Vec::with_capacity(raw.len());
    let mut notes = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let base = if r.trim().is_empty() { format!("column_{}", i + 1) } else { r.trim().to_string() };
        let mut name = base.clone();
        let mut n = 2;
        while !seen.insert(name.to_lowercase()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        if name != base {
            notes.push(format!("{file}: the header repeats {base}; that column is {name}"));
        }
        names.push(name);
    }
    (names, notes)
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

/// How a CSV file is written, found from its first lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    pub has_header: bool,
}

/// Splits a sample into records of fields, honouring quotes (a quoted field may hold the
/// delimiter, doubled quotes and newlines). A last record cut by the sample's end is dropped.
fn records(sample: &str, delimiter: char, quote: char, complete: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = sample.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == quote {
                if chars.peek() == Some(&quote) {
                    field.push(quote);
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            c if c == quote && field.is_empty() => quoted = true,
            c if c == delimiter => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty()) {
                    out.push(std::mem::take(&mut record));
                }
                record.clear();
            }
            c => field.push(c),
        }
    }
    if complete && !quoted && (!field.is_empty() || !record.is_empty()) {
        record.push(field);
        out.push(record);
    }
    out
}

fn is_number(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.parse::<f64>().is_ok()
}

/// The delimiter whose records agree on one field count (more than one field), the header when
/// the first record holds no number while it is not the only text row.
pub fn sniff(sample: &str, complete: bool) -> Dialect {
    let mut best = (0usize, b',', Vec::new());
    for d in [',', ';', '\t', '|'] {
        let recs: Vec<Vec<String>> = records(sample, d, '"', complete).into_iter().take(50).collect();
        let Some(first) = recs.first() else { continue };
        let width = first.len();
        if width < 2 {
            continue;
        }
        let agreeing = recs.iter().filter(|r| r.len() == width).count();
        // Mostly consistent rows, wider tables winning ties (a comma inside `a;b,c` text).
        let score = if agreeing * 10 >= recs.len() * 9 { agreeing * 100 + width } else { agreeing };
        if score > best.0 {
            best = (score, d as u8, recs);
        }
    }
    let (_, delimiter, recs) = best;
    let has_header = recs.first().is_none_or(|first| !first.iter().any(|f| is_number(f)));
    Dialect { delimiter, quote: b'"', has_header }
}

async fn read_csv(ctx: &SessionContext, path: &Path) -> Result<(Arc<dyn TableProvider>, Vec<String>), SourceError> {
    let shown = path.display().to_string();
    let fail = |reason: String| SourceError::Read { path: shown.clone(), reason };
    let mut sample = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut sample))
        .map_err(|e| SourceError::Unreadable { path: shown.clone(), reason: e.to_string() })?;
    let complete = (sample.len() as u64) < std::fs::metadata(path).map(|m| m.len()).unwrap_or(0).max(1)
        || sample.len() < 64 * 1024;
    let text = String::from_utf8_lossy(&sample);
    let dialect = sniff(&text, complete);
    let format = datafusion::arrow::csv::reader::Format::default()
        .with_delimiter(dialect.delimiter)
        .with_quote(dialect.quote)
        .with_header(dialect.has_header);
    let file = std::fs::File::open(path)
        .map_err(|e| SourceError::Unreadable { path: shown.clone(), reason: e.to_string() })?;
    let (inferred, _) =
        format.infer_schema(std::io::BufReader::new(file), Some(1000)).map_err(|e| fail(e.to_string()))?;
    let raw: Vec<String> = if dialect.has_header {
        records(&text, dialect.delimiter as char, '"', complete).into_iter().next().unwrap_or_default()
    } else {
        (1..=inferred.fields().len()).map(|i| format!("column_{i}")).collect()
    };
    let (names, notes) = unique_names(&raw, &shown);
    if names.is_empty() {
        return Err(SourceError::Empty { path: shown });
    }
    let fields: Vec<Field> =
        inferred.fields().iter().zip(&names).map(|(f, name)| Field::new(name, f.data_type().clone(), true)).collect();
    let schema = Schema::new(fields);
    let ext = format!(".{}", path.extension().and_then(|e| e.to_str()).unwrap_or("csv"));
    let options = CsvReadOptions::new()
        .delimiter(dialect.delimiter)
        .quote(dialect.quote)
        .has_header(dialect.has_header)
        .newlines_in_values(true)
        .schema(&schema)
        .file_extension(&ext);
    let df = ctx.read_csv(path.to_string_lossy().as_ref(), options).await.map_err(|e| fail(user_message(&e)))?;
    Ok((df.into_view(), notes))
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// What a column's values have been so far.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    bool: bool,
    int: bool,
    float: bool,
    text: bool,
    json: bool,
}

impl Seen {
    fn note(&mut self, v: &Value) {
        match v {
            Value::Null => {}
            Value::Bool(_) => self.bool = true,
            Value::Number(n) if n.is_i64() || n.is_u64() => self.int = true,
            Value::Number(_) => self.float = true,
            Value::String(_) => self.text = true,
            Value::Array(_) | Value::Object(_) => self.json = true,
        }
    }

    fn data_type(&self) -> DataType {
        match (self.bool, self.int, self.float, self.text, self.json) {
            (true, false, false, false, false) => DataType::Boolean,
            (false, true, false, false, false) => DataType::Int64,
            (false, _, true, false, false) => DataType::Float64,
            _ => DataType::Utf8,
        }
    }

    /// More than one kind of value, read as text.
    fn widened(&self) -> bool {
        let kinds = [self.bool, self.int || self.float, self.text, self.json].iter().filter(|k| **k).count();
        kinds > 1
    }
}

/// A record's cells by column: fields that always hold objects are flattened one level
/// (`user.email` → `user_email`); anything deeper, arrays, and a field that is an object in one
/// record and not in another are kept whole (JSON text later).
fn flatten<'v>(record: &'v serde_json::Map<String, Value>, objects: &HashSet<&str>) -> Vec<(String, &'v Value)> {
    let mut out = Vec::with_capacity(record.len());
    for (k, v) in record {
        match v {
            Value::Object(inner) if objects.contains(k.as_str()) => {
                for (k2, v2) in inner {
                    out.push((format!("{k}_{k2}"), v2));
                }
            }
            _ => out.push((k.clone(), v)),
        }
    }
    out
}

fn read_json(path: &Path) -> Result<(Arc<dyn TableProvider>, Vec<String>), SourceError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SourceError::Unreadable { path: shown.clone(), reason: e.to_string() })?;
    let bad = |reason: String| SourceError::BadJson { path: shown.clone(), reason };
    let rows: Vec<Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(format!("line {}: {e}", i + 1))))
            .collect::<Result<_, _>>()?
    };
    if rows.is_empty() {
        return Err(SourceError::Empty { path: shown });
    }
    let records: Vec<&serde_json::Map<String, Value>> = rows
        .iter()
        .map(|r| r.as_object().ok_or(SourceError::NotRows { path: shown.clone() }))
        .collect::<Result<_, _>>()?;
    let mut always_objects: HashSet<&str> = records.iter().flat_map(|r| r.keys().map(String::as_str)).collect();
    for r in &records {
        for (k, v) in r.iter() {
            if !matches!(v, Value::Object(_) | Value::Null) {
                always_objects.remove(k.as_str());
            }
        }
    }
    let flat: Vec<Vec<(String, &Value)>> = records.iter().map(|r| flatten(r, &always_objects)).collect();
    // Columns in the order first seen, with every kind of value each holds.
    let mut order: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for row in &flat {
        for (name, v) in row {
            if !seen.contains_key(name) {
                order.push(name.clone());
            }
            seen.entry(name.clone()).or_default().note(v);
        }
    }
    let mut notes: Vec<String> = order
        .iter()
        .filter(|c| seen[*c].widened())
        .map(|c| format!("{shown}: {c} holds values of different types; it is read as text"))
        .collect();
    let (names, renamed) = unique_names(&order, &shown);
    notes.extend(renamed);
    let n = flat.len();
    let position: std::collections::HashMap<&str, usize> =
        order.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut grid: Vec<Vec<Option<&Value>>> = vec![vec![None; order.len()]; n];
    for (row, cells) in flat.iter().zip(grid.iter_mut()) {
        for (k, v) in row {
            if !v.is_null() {
                cells[position[k.as_str()]] = Some(*v);
            }
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(order.len());
    let mut fields = Vec::with_capacity(order.len());
    for (i, (col, name)) in order.iter().zip(&names).enumerate() {
        let dt = seen[col].data_type();
        let array: ArrayRef = match dt {
            DataType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(n);
                grid.iter().for_each(|r| b.append_option(r[i].and_then(Value::as_bool)));
                Arc::new(b.finish())
            }
            DataType::Int64 => {
                let mut b = Int64Builder::with_capacity(n);
                grid.iter().for_each(|r| b.append_option(r[i].and_then(Value::as_i64)));
                Arc::new(b.finish())
            }
            DataType::Float64 => {
                let mut b = Float64Builder::with_capacity(n);
                grid.iter().for_each(|r| b.append_option(r[i].and_then(Value::as_f64)));
                Arc::new(b.finish())
            }
            _ => {
                let mut b = StringBuilder::with_capacity(n, n * 16);
                for r in &grid {
                    b.append_option(r[i].map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }));
                }
                Arc::new(b.finish())
            }
        };
        fields.push(Field::new(name, dt, true));
        columns.push(array);
    }
    Ok((in_memory(fields, columns, &shown)?, notes))
}

/// Columns built in memory as one table.
fn in_memory(fields: Vec<Field>, columns: Vec<ArrayRef>, shown: &str) -> Result<Arc<dyn TableProvider>, SourceError> {
    let fail = |e: &dyn std::fmt::Display| SourceError::Read { path: shown.to_string(), reason: e.to_string() };
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| fail(&e))?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| fail(&e))?))
}

// ---------------------------------------------------------------------------------------------
// Excel and OpenDocument
// ---------------------------------------------------------------------------------------------

fn read_workbook(path: &Path) -> Result<FileTables, SourceError> {
    use calamine::{Data, Reader, open_workbook_auto};
    let shown = path.display().to_string();
    let mut book = open_workbook_auto(path)
        .map_err(|e| SourceError::Read { path: shown.clone(), reason: format!("not a readable workbook ({e})") })?;
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    for sheet in book.sheet_names() {
        let range = book
            .worksheet_range(&sheet)
            .map_err(|e| SourceError::Read { path: shown.clone(), reason: format!("sheet {sheet}: {e}") })?;
        let mut rows = range.rows().filter(|r| r.iter().any(|c| !matches!(c, Data::Empty)));
        let Some(header) = rows.next() else { continue };
        let data: Vec<&[Data]> = rows.collect();
        let raw: Vec<String> = header.iter().map(|c| c.to_string()).collect();
        let (names, renamed) = unique_names(&raw, &format!("{shown} ({sheet})"));
        notes.extend(renamed);
        let mut fields = Vec::with_capacity(names.len());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let cells: Vec<&Data> = data.iter().map(|r| r.get(i).unwrap_or(&Data::Empty)).collect();
            let (dt, array) = sheet_column(&cells);
            fields.push(Field::new(name, dt, true));
            columns.push(array);
        }
        tables.push((Some(sheet), in_memory(fields, columns, &shown)?));
    }
    if tables.is_empty() {
        return Err(SourceError::Empty { path: shown });
    }
    if tables.len() == 1 {
        tables[0].0 = None;
    }
    Ok(FileTables { tables, notes })
}

/// A sheet column's type from its cells: dates as timestamps, whole numbers as integers, other
/// numbers as floats, booleans as booleans, anything mixed as text.
fn sheet_column(cells: &[&calamine::Data]) -> (DataType, ArrayRef) {
    use calamine::Data;
    let values = cells.iter().filter(|c| !matches!(c, Data::Empty));
    let (mut num, mut whole, mut date, mut boolean, mut text) = (false, true, false, false, false);
    for c in values {
        match c {
            Data::Int(_) => num = true,
            Data::Float(f) => {
                num = true;
                whole &= f.fract() == 0.0 && f.abs() < 9.0e15;
            }
            Data::DateTime(_) | Data::DateTimeIso(_) => date = true,
            Data::Bool(_) => boolean = true,
            _ => text = true,
        }
    }
    let timestamp_us = |c: &Data| match c {
        Data::DateTime(d) => d.as_datetime().map(|t| t.and_utc().timestamp_micros()),
        Data::DateTimeIso(s) => crate::table::parse_timestamp_us(s),
        _ => None,
    };
    let n = cells.len();
    match (num, date, boolean, text) {
        (true, false, false, false) if whole => {
            let mut b = Int64Builder::with_capacity(n);
            for c in cells {
                b.append_option(match c {
                    Data::Int(i) => Some(*i),
                    Data::Float(f) => Some(*f as i64),
                    _ => None,
                });
            }
            (DataType::Int64, Arc::new(b.finish()))
        }
        (true, false, false, false) => {
            let mut b = Float64Builder::with_capacity(n);
            for c in cells {
                b.append_option(match c {
                    Data::Int(i) => Some(*i as f64),
                    Data::Float(f) => Some(*f),
                    _ => None,
                });
            }
            (DataType::Float64, Arc::new(b.finish()))
        }
        (false, true, false, false) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
            for c in cells {
                b.append_option(timestamp_us(c));
            }
            (DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), Arc::new(b.finish()))
        }
        (false, false, true, false) => {
            let mut b = BooleanBuilder::with_capacity(n);
            for c in cells {
                b.append_option(if let Data::Bool(v) = c { Some(*v) } else { None });
            }
            (DataType::Boolean, Arc::new(b.finish()))
        }
        _ => {
            let mut b = StringBuilder::with_capacity(n, n * 12);
            for c in cells {
                b.append_option(match c {
                    Data::Empty => None,
                    Data::DateTime(_) | Data::DateTimeIso(_) => timestamp_us(c)
                        .and_then(chrono::DateTime::from_timestamp_micros)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    other => Some(other.to_string()),
                });
            }
            (DataType::Utf8, Arc::new(b.finish()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialect_is_sniffed() {
        assert_eq!(
            sniff("Email;Name\na@x;Ann\nb@x;Bob, Jr.\n", true),
            Dialect { delimiter: b';', quote: b'"', has_header: true }
        );
        assert_eq!(sniff("a\tb\tc\n1\t2\t3\n", true).delimiter, b'\t');
        assert_eq!(sniff("id|name\n1|\"x|y\"\n", true).delimiter, b'|');
        assert_eq!(
            sniff("\"Smith, J\",42\n\"Doe, A\",7\n", true),
            Dialect { delimiter: b',', quote: b'"', has_header: false }
        );
    }

    #[test]
    fn repeated_and_empty_names_become_unique() {
        let raw: Vec<String> = ["email", "name", "Email", "", "email"].map(String::from).to_vec();
        let (names, notes) = unique_names(&raw, "x.csv");
        assert_eq!(names, vec!["email", "name", "Email_2", "column_4", "email_3"]);
        assert_eq!(notes.len(), 2);
    }
}

//! Turns DataFusion's errors into one line that says what to do: the nearest table names for an
//! unknown table, the nearest columns for an unknown column. Boards use it when they load, the
//! front ends for every statement.

use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use crate::error::user_message;

/// Every table the session knows, as `schema.table` (plain `table` in the default schema).
pub fn known_tables(ctx: &SessionContext) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(catalog) = ctx.catalog(crate::catalog::CATALOG) {
        for schema_name in catalog.schema_names() {
            if let Some(schema) = catalog.schema(&schema_name) {
                for t in schema.table_names() {
                    out.push(if schema_name == "public" { t } else { format!("{schema_name}.{t}") });
                }
            }
        }
    }
    out.sort();
    out
}

/// Levenshtein distance, for "did you mean".
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Up to `n` candidates nearest to `word`, closest first.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a String>, n: usize) -> Vec<&'a String> {
    let word = word.to_lowercase();
    let word_short = word.rsplit('.').next().unwrap_or(&word).to_string();
    let candidates: Vec<&String> = candidates.into_iter().collect();
    // `jumpcloud.devics` means a table of `jumpcloud`, when that schema has any.
    let schema = word.rsplit_once('.').map(|(s, _)| format!("{s}."));
    let same_schema = |c: &&String| schema.as_ref().is_none_or(|s| c.to_lowercase().starts_with(s));
    let in_schema = candidates.iter().any(same_schema);
    let mut scored: Vec<(usize, &String)> = candidates
        .into_iter()
        .filter(|c| !in_schema || same_schema(c))
        .filter_map(|c| {
            let short = c.rsplit('.').next().unwrap_or(c).to_lowercase();
            let d = distance(&word, &c.to_lowercase()).min(distance(&word_short, &short));
            // Close enough to be a typo of it.
            (d <= short.chars().count() / 2 + 1).then_some((d, c))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

fn quoted_list(items: &[&String]) -> String {
    items.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// The one-line message for an error, with suggestions where DataFusion names something unknown.
pub fn explain(err: &DataFusionError, known_tables: &[String]) -> String {
    if let Some((field, valid)) = field_not_found(err) {
        let mut unique: Vec<String> = Vec::new();
        for c in valid {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        let near = nearest(&field, unique.iter(), 3);
        let listed: Vec<&str> = unique.iter().take(12).map(String::as_str).collect();
        let more = if unique.len() > 12 { format!(", … ({} columns)", unique.len()) } else { String::new() };
        let suggestion =
            if near.is_empty() { String::new() } else { format!(" (did you mean {}?)", quoted_list(&near)) };
        return format!("unknown column {field}{suggestion}; the columns are: {}{more}", listed.join(", "));
    }
    let msg = user_message(err);
    // DataFusion reports an unknown table as a plan error whose only structure is its text.
    if let Some(name) = between(&msg, "table '", "' not found") {
        let name = crate::catalog::without_catalog(name);
        let name = name.strip_prefix("public.").unwrap_or(name);
        let near = nearest(name, known_tables.iter().filter(|t| !t.starts_with("information_schema.")), 3);
        return if near.is_empty() {
            format!("unknown table {name}; `.tables` lists the tables")
        } else {
            format!("unknown table {name}; did you mean {}? (`.tables` lists the tables)", quoted_list(&near))
        };
    }
    msg
}

/// The unknown column and the valid ones, from DataFusion's structured schema error.
fn field_not_found(err: &DataFusionError) -> Option<(String, Vec<String>)> {
    let mut e = err;
    loop {
        match e {
            DataFusionError::SchemaError(schema_error, _) => {
                return match schema_error.as_ref() {
                    SchemaError::FieldNotFound { field, valid_fields } => {
                        Some((field.name.clone(), valid_fields.iter().map(|c| c.name.clone()).collect()))
                    }
                    _ => None,
                };
            }
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => e = inner,
            DataFusionError::Shared(inner) => e = inner,
            _ => return None,
        }
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let to = s[from..].find(end)? + from;
    Some(&s[from..to])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names() {
        let names: Vec<String> =
            ["jumpcloud.users", "jumpcloud.user_groups", "jumpcloud.devices"].map(String::from).to_vec();
        assert_eq!(nearest("jumpcloud.userz", names.iter(), 1), vec!["jumpcloud.users"]);
        assert_eq!(nearest("devics", names.iter(), 1), vec!["jumpcloud.devices"]);
        assert!(nearest("zzzzzzzzzz", names.iter(), 3).is_empty());
    }
}

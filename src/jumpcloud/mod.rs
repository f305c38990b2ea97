//! The JumpCloud connector: its HTTP client, its table definitions, and how a table is fetched
//! (every page of a list, or one listing per parent for relation tables). When and how often is
//! the generic [`Connection`]'s business; a connection per org is just another value.

pub mod client;
pub mod simulator;
pub mod tables;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};

use crate::cache::{CachedTable, Snapshot, SnapshotMeta, schema_fingerprint};
use crate::connection::{Connection, Connector, Freshness, RefreshSummary, dedupe_and_merge, ids_of, now_us};
use crate::error::{JcsqlError, Result};
use crate::table::Source;
use crate::table::decode::{PageRows, TablePage};
use client::{JumpCloudClient, Listing};

/// The schema of the default JumpCloud connection.
pub const DEFAULT_SCHEMA: &str = "jumpcloud";

/// A JumpCloud connection named `name` (its schema), fetching with `client` when there is one.
pub fn connection(name: &str, client: Option<JumpCloudClient>, cache_dir: Option<&Path>, f: Freshness) -> Connection {
    let connector = client.map(|client| Arc::new(JumpCloudConnector { client }) as Arc<dyn Connector>);
    Connection::new(name, connector, tables::all_tables(), tables::VIEWS, cache_dir, f)
}

pub struct JumpCloudConnector {
    pub client: JumpCloudClient,
}

#[async_trait]
impl Connector for JumpCloudConnector {
    /// Every record of `table` (or of the given parents), each page converted to Arrow as soon
    /// as it arrives; rows seen on an earlier page are dropped.
    async fn fetch(
        &self,
        conn: &Connection,
        table: &CachedTable,
        only_parents: Option<&[String]>,
    ) -> Result<(Snapshot, RefreshSummary)> {
        let client = &self.client;
        let def = table.def;
        let observer = conn.observer();
        let start = Instant::now();
        let fetched_at_us = now_us();
        let name = def.name;
        let (pages, expected, bytes, requests) = match &def.source {
            Source::List { path } => {
                observer.started(name, None, "rows");
                let progress = |rows: u64, total: Option<u64>| {
                    if let Some(t) = total {
                        observer.set_total(name, t);
                    }
                    observer.advance(name, rows);
                };
                let decoder = TablePage { def, parent: None, fetched_at_us };
                let l = client.list(path, &[], &progress, &decoder).await?;
                (l.pages, l.expected, l.bytes, l.requests)
            }
            Source::PerParent { parent, path, query } => {
                let parent_ids = match only_parents {
                    Some(ids) => ids.to_vec(),
                    None => {
                        let parent_table = conn.table(parent)?.clone();
                        let parent_snap = Box::pin(conn.snapshot_for_query(&parent_table)).await?;
                        ids_of(&parent_snap.batches)
                    }
                };
                observer.started(name, Some(parent_ids.len() as u64), "parents");
                let listings: Vec<Listing<PageRows>> = stream::iter(parent_ids)
                    .map(|id| {
                        let url = path.replace("{id}", &id);
                        let observer = observer.clone();
                        async move {
                            let decoder = TablePage { def, parent: Some(id.as_str()), fetched_at_us };
                            let l = match client.list(&url, query, &|_, _| {}, &decoder).await {
                                Ok(l) => l,
                                // The parent went away (or never existed): it has no children.
                                Err(JcsqlError::Http { status: 404 | 400, .. }) => {
                                    Listing { requests: 1, ..Default::default() }
                                }
                                Err(e) => return Err(e),
                            };
                            observer.advance(name, 1);
                            Ok::<_, JcsqlError>(l)
                        }
                    })
                    .buffer_unordered(client.config().max_in_flight.max(1) * 2)
                    .try_collect()
                    .await?;
                let mut pages = Vec::new();
                let mut expected = Some(0u64);
                let (mut bytes, mut requests) = (0, 0);
                for l in listings {
                    let rows: u64 = l.pages.iter().map(|p| p.keys.len() as u64).sum();
                    expected = expected.map(|e| e + l.expected.unwrap_or(rows));
                    bytes += l.bytes;
                    requests += l.requests;
                    pages.extend(l.pages);
                }
                (pages, expected, bytes, requests)
            }
        };
        let batches = dedupe_and_merge(&def.schema(), pages)?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if let Some(expected) = expected.filter(|e| rows < *e) {
            return Err(JcsqlError::Incomplete { table: format!("{}.{}", conn.name, name), rows, expected });
        }
        let duration = start.elapsed();
        let meta = SnapshotMeta {
            fetched_at_us,
            rows,
            expected_rows: expected,
            requests,
            duration_ms: duration.as_millis() as u64,
            bytes_received: bytes,
            schema_fingerprint: schema_fingerprint(&def.schema()),
        };
        let summary = RefreshSummary {
            table: name.to_string(),
            rows,
            expected_rows: expected,
            requests,
            duration,
            bytes_received: bytes,
        };
        Ok((Snapshot { batches, meta: Some(meta) }, summary))
    }

    fn secret(&self) -> Option<&str> {
        Some(self.client.config().api_key.expose())
    }
}

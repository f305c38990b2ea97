//! Progress bars on stderr (indicatif), one per table being fetched.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::connection::{RefreshSummary, SyncObserver};
use crate::error::JcsqlError;

pub struct ProgressObserver {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    draw: bool,
}

impl ProgressObserver {
    /// Bars are drawn only when `enabled` and stderr is a terminal; warnings are always printed.
    pub fn new(enabled: bool) -> Self {
        let draw = enabled && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if draw {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        ProgressObserver { multi, bars: Mutex::new(HashMap::new()), draw }
    }

    fn with_bar(&self, table: &str, f: impl FnOnce(&ProgressBar)) {
        if let Ok(bars) = self.bars.lock()
            && let Some(b) = bars.get(table)
        {
            f(b);
        }
    }
}

impl SyncObserver for ProgressObserver {
    fn started(&self, table: &str, total: Option<u64>, unit: &str) {
        if !self.draw {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        let template = format!("{{prefix:>26}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed}}");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(table.to_string());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(table.to_string(), bar);
        }
    }

    fn set_total(&self, table: &str, total: u64) {
        self.with_bar(table, |b| b.set_length(total));
    }

    fn advance(&self, table: &str, n: u64) {
        self.with_bar(table, |b| b.inc(n));
    }

    fn finished(&self, table: &str, _outcome: Result<&RefreshSummary, &JcsqlError>) {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(table));
        if let Some(bar) = bar {
            // Results and the sync summary follow; a finished bar would only clutter them.
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn warning(&self, message: &str) {
        self.multi.suspend(|| eprintln!("warning: {message}"));
    }
}

/// Reports one org's fetches as `ORG.TABLE`, so the bars of orgs synced at once stay apart.
pub struct OrgProgress {
    pub org: String,
    pub inner: std::sync::Arc<dyn SyncObserver>,
}

impl SyncObserver for OrgProgress {
    fn started(&self, table: &str, total: Option<u64>, unit: &str) {
        self.inner.started(&format!("{}.{table}", self.org), total, unit);
    }
    fn set_total(&self, table: &str, total: u64) {
        self.inner.set_total(&format!("{}.{table}", self.org), total);
    }
    fn advance(&self, table: &str, n: u64) {
        self.inner.advance(&format!("{}.{table}", self.org), n);
    }
    fn finished(&self, table: &str, outcome: std::result::Result<&RefreshSummary, &JcsqlError>) {
        self.inner.finished(&format!("{}.{table}", self.org), outcome);
    }
    fn warning(&self, message: &str) {
        self.inner.warning(message);
    }
}

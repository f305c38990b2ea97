//! `jcsql web` and `jcsql demo web`: the first line (the URL with its one-time token) and serving
//! until Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crate::Engine;
use crate::error::JcsqlError;
use crate::listen::TlsFiles;
use crate::web::{DEFAULT_PORT, WebOptions, WebServer};

use super::{EXIT_OK, GlobalArgs, plural};

#[derive(Debug, Clone, clap::Args)]
pub struct WebArgs {
    /// Address to listen on (anything but loopback needs --tls-cert and --tls-key)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the first line says which)
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Show the boards only: no actions, and their forms are refused
    #[arg(long)]
    pub read_only: bool,
    /// TLS certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

pub async fn web(engine: Arc<Engine>, args: &WebArgs, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
        _ => None,
    };
    let options = WebOptions {
        host: args.host.clone(),
        port: args.port,
        read_only: args.read_only,
        token: std::env::var("JCSQL_WEB_TOKEN").ok(),
        tls,
    };
    let boards = engine.boards().len();
    let server = WebServer::bind(engine, options).await?;
    let url = server.url()?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{url}");
    let _ = stdout.flush();
    if !g.quiet {
        eprintln!(
            "jcsql web: {}{}; open the URL above (its token opens a session cookie); Ctrl-C stops",
            plural(boards, "board"),
            if args.read_only { ", read-only (no actions)" } else { ", with Integration actions" }
        );
    }
    tokio::select! {
        _ = server.run() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(EXIT_OK)
}

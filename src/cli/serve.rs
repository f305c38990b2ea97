//! `jcsql serve` and `jcsql demo serve`: the password, the first line, and serving until Ctrl-C.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Engine;
use crate::error::JcsqlError;
use crate::listen::random_token;
use crate::serve::{DEFAULT_PORT, PASSWORD_FILE, ServeOptions, Server, TlsFiles};

use super::config::Home;
use super::{EXIT_OK, GlobalArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (anything but loopback needs --tls-cert and --tls-key)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the first line says which)
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// File holding the password of user jcsql (default: JCSQL_SERVE_PASSWORD, else $JCSQL_HOME/serve-password)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// TLS certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Where the password came from, said on stderr (the password itself is never printed).
fn password(args: &ServeArgs, home: &Home) -> Result<(String, String), JcsqlError> {
    if let Some(file) = &args.password_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| JcsqlError::Config(format!("cannot read the password file {}: {e}", file.display())))?;
        let password = text.lines().next().unwrap_or("").trim().to_string();
        if password.is_empty() {
            return Err(JcsqlError::Config(format!(
                "the password file {} is empty; write the password on its first line",
                file.display()
            )));
        }
        return Ok((password, format!("from {}", file.display())));
    }
    if let Some(password) = std::env::var("JCSQL_SERVE_PASSWORD").ok().filter(|p| !p.trim().is_empty()) {
        return Ok((password.trim().to_string(), "from JCSQL_SERVE_PASSWORD".into()));
    }
    let path = home.config_dir.join(PASSWORD_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Some(password) = text.lines().next().map(str::trim).filter(|p| !p.is_empty())
    {
        return Ok((password.to_string(), format!("in {}", path.display())));
    }
    let password = random_token();
    save_private(&path, &password)?;
    Ok((password, format!("generated and saved in {} (mode 0600)", path.display())))
}

fn save_private(path: &Path, password: &str) -> Result<(), JcsqlError> {
    let failed = |e: std::io::Error| JcsqlError::Config(format!("cannot save the password in {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(failed)?;
    writeln!(file, "{password}").map_err(failed)
}

pub async fn serve(engine: &Engine, args: &ServeArgs, home: &Home, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let (password, origin) = password(args, home)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
        _ => None,
    };
    let options = ServeOptions { host: args.host.clone(), port: args.port, password, tls };
    let server = Server::bind(engine, options).await?;
    let url = server.url()?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{url}");
    let _ = stdout.flush();
    if !g.quiet {
        let boards = engine.boards().len();
        eprintln!(
            "jcsql serve: read-only; {} and {}; user jcsql, password {origin}; Ctrl-C stops",
            crate::cli::plural(engine.connections().len(), "org"),
            crate::cli::plural(boards, "board")
        );
    }
    tokio::select! {
        _ = server.run() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(EXIT_OK)
}

//! `telesoin`: thin wiring. Parse the command line, load the configuration, run.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use telesoin_server::{Config, demo, prepare, records, run};

#[derive(Parser, Debug)]
#[command(
    name = "telesoin",
    version,
    about = "Secure télésoin video sessions for kinés and their patients"
)]
struct Cli {
    /// Configuration file (TOML); TELESOIN_* variables override it.
    #[arg(long, global = true, env = "TELESOIN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, keys, certificate). Overrides `data_dir`.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Listen address such as 127.0.0.1:8443 (port 0: any free port). Overrides `listen`.
    #[arg(long, global = true)]
    listen: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve.
    Serve,
    /// Create demo data (a kiné, a patient, a session starting now), print the links, and serve.
    Demo,
    /// Apply database migrations and exit.
    Migrate,
    /// Add a kiné account; the password is read from TELESOIN_NEW_PASSWORD.
    AddKine {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// RPPS number (11 digits).
        #[arg(long)]
        rpps: String,
    },
    /// Platforms that use the API (`platform add --name N`, `platform list`).
    Platform {
        #[command(subcommand)]
        action: telesoin_server::platform::cli::PlatformCommand,
    },
    /// API keys of platforms (`api-key create --platform ID --kines E --scopes S`, `api-key revoke`).
    ApiKey {
        #[command(subcommand)]
        action: telesoin_server::platform::cli::ApiKeyCommand,
    },
    /// Export finalized sessions: CSV (one row per session) or a FHIR R4 Bundle.
    Export {
        /// First day (YYYY-MM-DD), French time.
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day, included.
        #[arg(long)]
        to: chrono::NaiveDate,
        /// Only this kiné (by login e-mail); default: everyone.
        #[arg(long)]
        kine: Option<String>,
        /// `csv` or `fhir`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Delete the data of patients whose last care is older than the retention period.
    Purge {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AuditAction {
    /// Check the hash chain; exits with status 2 and names the first broken row if it is broken.
    Verify,
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut cfg = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(l) = &cli.listen {
        cfg.set("listen", l)?;
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = load_config(&cli)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    for name in &cfg.ignored_env {
        tracing::warn!(variable = %name, "ignoring a TELESOIN_ variable that names no setting (see README, Configuration)");
    }

    match cli.command {
        Command::Platform { action } => {
            std::fs::create_dir_all(&cfg.data_dir)?;
            let store = telesoin_server::open_store(&cfg).await?;
            telesoin_server::platform::cli::platform(&store, action).await?;
            store.close().await;
            Ok(())
        }
        Command::ApiKey { action } => {
            std::fs::create_dir_all(&cfg.data_dir)?;
            let store = telesoin_server::open_store(&cfg).await?;
            telesoin_server::platform::cli::api_key(&store, action).await?;
            store.close().await;
            Ok(())
        }
        Command::Migrate => {
            std::fs::create_dir_all(&cfg.data_dir)?;
            let store = telesoin_server::open_store(&cfg).await?;
            let applied = store.migrate().await?;
            // The path of the SQLite file, never a database URL (it may hold a password).
            let place = match &cfg.database_url {
                Some(_) => "from database_url".to_owned(),
                None => cfg.data_dir.join("telesoin.db").display().to_string(),
            };
            println!(
                "{} database {place} is up to date (migrations: {applied:?}).",
                store.backend_name()
            );
            store.close().await;
            Ok(())
        }
        Command::AddKine { email, name, rpps } => {
            anyhow::ensure!(
                telesoin_core::model::valid_rpps(&rpps),
                "the RPPS number must be 11 digits"
            );
            let password = std::env::var("TELESOIN_NEW_PASSWORD")
                .context("set TELESOIN_NEW_PASSWORD to the new kiné's password")?;
            anyhow::ensure!(
                password.chars().count() >= 12,
                "the password must have at least 12 characters"
            );
            std::fs::create_dir_all(&cfg.data_dir)?;
            let store = telesoin_server::open_store(&cfg).await?;
            let kine = telesoin_core::model::Kine {
                id: telesoin_core::KineId(uuid::Uuid::new_v4()),
                rpps,
                name,
                email,
            };
            use telesoin_store::KineStore;
            store
                .create_kine(
                    &kine,
                    &telesoin_server::auth::hash_password(&password)?,
                    chrono::Utc::now(),
                )
                .await?;
            println!("Kiné {} added.", kine.email);
            Ok(())
        }
        Command::Export {
            from,
            to,
            kine,
            format,
            out,
        } => {
            let store = telesoin_server::open_store(&cfg).await?;
            records::cli::export(
                &cfg,
                &store,
                from,
                to,
                kine.as_deref(),
                &format,
                out.as_deref(),
            )
            .await
        }
        Command::Audit {
            action: AuditAction::Verify,
        } => {
            let store = telesoin_server::open_store(&cfg).await?;
            if !records::cli::audit_verify(&store).await? {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Purge { dry_run } => {
            let store = telesoin_server::open_store(&cfg).await?;
            records::cli::purge(&cfg, &store, dry_run).await.map(|_| ())
        }
        Command::Serve => {
            let prepared = prepare(cfg).await?;
            announce(&prepared);
            run(prepared, shutdown_signal()).await
        }
        Command::Demo => {
            let prepared = prepare(cfg).await?;
            announce(&prepared);
            let data = demo::seed(
                &prepared.state,
                std::env::var("TELESOIN_DEMO_PASSWORD").ok(),
            )
            .await?;
            println!();
            println!("telesoin demo is running / la démo telesoin tourne");
            println!("  Dashboard (kiné) : {}", data.dashboard_url);
            println!("  Login            : {} / {}", data.email, data.password);
            println!("  Patient link     : {}", data.patient_link);
            println!("  Kiné link        : {}", data.kine_link);
            println!(
                "Open the patient link in a second browser (or a private window). Ctrl-C stops."
            );
            println!("TELESOIN_READY {}", serde_json::to_string(&data)?);
            run(prepared, shutdown_signal()).await
        }
    }
}

fn announce(p: &telesoin_server::Prepared) {
    let url = &p.state.public_url;
    match &p.cert {
        Some(telesoin_server::tls::CertSource::SelfSigned { path, generated }) => {
            let what = if *generated {
                "generated a self-signed certificate"
            } else {
                "using the self-signed certificate"
            };
            eprintln!(
                "telesoin: {what} for localhost at {} (browsers will warn; configure tls_cert/tls_key for production)",
                path.display()
            );
        }
        Some(telesoin_server::tls::CertSource::Configured(path)) => {
            eprintln!("telesoin: TLS certificate {}", path.display())
        }
        None => eprintln!("telesoin: plain HTTP (tls = off): only behind a TLS-terminating proxy"),
    }
    eprintln!(
        "telesoin: listening on {} ({url})",
        p.listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
}

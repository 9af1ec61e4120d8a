//! The `telesoin platform` and `telesoin api-key` commands: what an operator runs to register a
//! platform and hand it a key. The key is printed once, to standard output, never logged.

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use telesoin_core::KineId;
use telesoin_store::{PlatformRow, Store};
use uuid::Uuid;

use crate::platform::auth::{Scope, new_key};

#[derive(Subcommand, Debug)]
pub enum PlatformCommand {
    /// Register a platform; prints its id.
    Add {
        #[arg(long)]
        name: String,
        /// The `iss` of the join tokens it will sign (default `urn:telesoin:platform:ID`).
        #[arg(long)]
        issuer: Option<String>,
    },
    /// List the platforms.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create a key for a platform, scoped to kinés and operations; prints it once.
    Create {
        /// The platform id (from `telesoin platform add`).
        #[arg(long)]
        platform: Uuid,
        /// Kinés the key acts for: login e-mails or ids, comma-separated.
        #[arg(long)]
        kines: String,
        /// Operations, comma-separated (patients:read, patients:write, sessions:read,
        /// sessions:write, links:write, records:read, webhooks:manage, signing_keys:manage), or
        /// `all`.
        #[arg(long)]
        scopes: String,
    },
    /// Revoke a key: it stops working at once.
    Revoke {
        #[arg(long)]
        platform: Uuid,
        /// The key's id (printed at creation).
        #[arg(long)]
        id: Uuid,
    },
}

pub async fn platform(store: &dyn Store, cmd: PlatformCommand) -> anyhow::Result<()> {
    match cmd {
        PlatformCommand::Add { name, issuer } => {
            let name = name.trim().to_owned();
            anyhow::ensure!(
                !name.is_empty() && name.chars().count() <= 120,
                "the name must have 1 to 120 characters"
            );
            let id = Uuid::new_v4();
            let row = PlatformRow {
                id,
                name,
                issuer: issuer.unwrap_or_else(|| format!("urn:telesoin:platform:{id}")),
                created_at: Utc::now(),
            };
            store
                .create_platform(&row)
                .await
                .context("registering the platform (is the issuer already taken?)")?;
            println!(
                "Platform {} added: id {} issuer {}",
                row.name, row.id, row.issuer
            );
        }
        PlatformCommand::List => {
            for p in store.platforms().await? {
                println!("{}  {}  {}", p.id, p.issuer, p.name);
            }
        }
    }
    Ok(())
}

pub async fn api_key(store: &dyn Store, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    match cmd {
        ApiKeyCommand::Create {
            platform,
            kines,
            scopes,
        } => {
            store
                .platform(platform)
                .await?
                .with_context(|| format!("no platform {platform}"))?;
            let scopes = Scope::parse_list(&scopes).map_err(anyhow::Error::msg)?;
            let mut ids = Vec::new();
            for k in kines.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                let id = match Uuid::parse_str(k) {
                    Ok(id) => store.kine(KineId(id)).await?.map(|k| k.id),
                    Err(_) => store.kine_by_email(k).await?.map(|(k, _)| k.id),
                };
                ids.push(id.with_context(|| format!("no kiné {k}"))?);
            }
            anyhow::ensure!(!ids.is_empty(), "name at least one kiné with --kines");
            let (key, row) = new_key(platform, ids, &scopes, Utc::now());
            store.create_api_key(&row).await?;
            println!(
                "API key {} created. Keep it now: it is not shown again.",
                row.id
            );
            println!("{key}");
        }
        ApiKeyCommand::Revoke { platform, id } => {
            anyhow::ensure!(
                store.revoke_api_key(platform, id, Utc::now()).await?,
                "no unrevoked key {id} for platform {platform}"
            );
            println!("API key {id} revoked.");
        }
    }
    Ok(())
}

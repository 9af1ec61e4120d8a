//! The operator's commands: `telesoin export`, `telesoin audit verify`, `telesoin purge`.

use std::path::Path;

use chrono::{NaiveDate, Utc};
use telesoin_core::model::local_date;
use telesoin_core::retention::purge_eligible;
use telesoin_store::{NewAudit, Store};

use super::audit::{Verdict, verify};
use super::http::export_body;
use crate::Config;

/// Writes the export of `[from, to]` (one kiné by e-mail, or everyone) to `out` or stdout.
pub async fn export(
    cfg: &Config,
    store: &dyn Store,
    from: NaiveDate,
    to: NaiveDate,
    kine_email: Option<&str>,
    format: &str,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(from <= to, "--from must not be after --to");
    let kine = match kine_email {
        Some(e) => Some(
            store
                .kine_by_email(e)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no kiné with that e-mail"))?
                .0
                .id,
        ),
        None => None,
    };
    let policy = telesoin_core::billing::Policy::new(
        chrono::Duration::seconds(cfg.grace_seconds),
        chrono::Duration::seconds(cfg.heartbeat_seconds),
        cfg.bill_audio_only,
    );
    let (body, _) = export_body(
        store,
        &cfg.key_letter_schedule(),
        &policy,
        kine,
        from,
        to,
        format,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}: {}", e.code.code(), e.code.message_en()))?;
    match out {
        Some(p) => std::fs::write(p, body)?,
        None => print!("{body}"),
    }
    store
        .append_audit(&NewAudit {
            at: Utc::now(),
            actor: "cli".into(),
            action: "export".into(),
            subject: kine
                .map(|k| format!("kine:{k}"))
                .unwrap_or_else(|| "all".into()),
            detail: format!("format={format} from={from} to={to}"),
        })
        .await?;
    Ok(())
}

/// Checks the audit chain; Ok(false) when it is broken (the message names the first broken row).
pub async fn audit_verify(store: &dyn Store) -> anyhow::Result<bool> {
    match verify(store).await? {
        Verdict::Intact { rows } => {
            println!("audit chain intact: {rows} rows / chaîne d'audit intacte : {rows} lignes");
            Ok(true)
        }
        Verdict::Broken { seq } => {
            println!("audit chain BROKEN at row {seq} / chaîne d'audit ROMPUE à la ligne {seq}");
            Ok(false)
        }
    }
}

/// Lists (and unless `dry_run`, deletes) the patients whose last care is older than the retention.
pub async fn purge(cfg: &Config, store: &dyn Store, dry_run: bool) -> anyhow::Result<usize> {
    let today = local_date(Utc::now());
    let due: Vec<_> = store
        .last_care()
        .await?
        .into_iter()
        .filter(|c| purge_eligible(c.last_care, today, cfg.retention_years))
        .collect();
    for c in &due {
        println!(
            "{} patient {} (kiné {}): last care {}",
            if dry_run { "would purge" } else { "purging" },
            c.patient,
            c.kine,
            c.last_care
        );
        if !dry_run {
            store.purge_patient(c.patient).await?;
            store
                .append_audit(&NewAudit {
                    at: Utc::now(),
                    actor: "cli".into(),
                    action: "retention.purge".into(),
                    subject: format!("patient:{}", c.patient),
                    detail: format!(
                        "last_care={} retention_years={}",
                        c.last_care, cfg.retention_years
                    ),
                })
                .await?;
        }
    }
    println!(
        "{} patient(s) {} (retention: {} years after the last care)",
        due.len(),
        if dry_run { "to purge" } else { "purged" },
        cfg.retention_years
    );
    Ok(due.len())
}

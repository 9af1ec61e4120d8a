//! E-mail through the configured SMTP relay (lettre; rustls with ring, webpki roots).
//!
//! `smtp_security`: `starttls` (port 587 unless `smtp_relay` names one), `tls` (implicit TLS,
//! 465), `none` (plain text, refused by the configuration unless the relay is on loopback).
//! STARTTLS is required, never opportunistic. The relay's certificate is checked against the
//! public roots (webpki) and the CAs of `smtp_ca_file` (a private relay's CA).
//! Each message has a text part and an HTML part saying the same, and an `.ics` attachment
//! (`METHOD:REQUEST`, or `CANCEL` for a cancellation) whose UID is the session's, so that a
//! calendar updates the one event when the session moves or is cancelled.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use telesoin_core::reach::{MessageKind, Wording};
use uuid::Uuid;

use crate::config::{Config, SmtpSecurity};

pub fn configured(cfg: &Config) -> bool {
    cfg.smtp_relay.is_some() && cfg.smtp_from.is_some()
}

/// How long the `.ics` event lasts.
const EVENT_MINUTES: i64 = 30;

/// `host` and the port, from `smtp_relay` (`host` or `host:port`).
fn relay(cfg: &Config) -> Option<(String, Option<u16>)> {
    let r = cfg.smtp_relay.as_deref()?;
    Some(match r.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_owned(), p.parse().ok()),
        _ => (r.to_owned(), None),
    })
}

/// The TLS parameters of the relay: the public roots, and the CAs of `smtp_ca_file` if set.
fn tls_parameters(cfg: &Config, host: &str) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = &cfg.smtp_ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("smtp_ca_file: {e}"))?;
        let ca = Certificate::from_pem(&pem).map_err(|e| format!("smtp_ca_file: {e}"))?;
        builder = builder.add_root_certificate(ca);
    }
    builder.build_rustls().map_err(|e| format!("smtp tls: {e}"))
}

fn transport(cfg: &Config) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let (host, port) = relay(cfg).ok_or("smtp_not_configured")?;
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host);
    let builder = match cfg.smtp_security {
        // STARTTLS required: never falls back to plain text.
        SmtpSecurity::Starttls => builder
            .port(port.unwrap_or(587))
            .tls(Tls::Required(tls_parameters(cfg, &host)?)),
        SmtpSecurity::Tls => builder
            .port(port.unwrap_or(465))
            .tls(Tls::Wrapper(tls_parameters(cfg, &host)?)),
        SmtpSecurity::None => builder.port(port.unwrap_or(25)),
    };
    let builder = builder.timeout(Some(StdDuration::from_secs(cfg.message_timeout_seconds)));
    let builder = match (&cfg.smtp_username, &cfg.smtp_password) {
        (Some(u), Some(p)) => builder.credentials(Credentials::new(u.clone(), p.clone())),
        _ => builder,
    };
    Ok(builder.build())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML part: the same paragraphs, the link as a link and a button.
fn html(w: &Wording) -> String {
    let mut body = String::new();
    for p in w.email_paragraphs() {
        let escaped = html_escape(&p).replace('\n', "<br>");
        let escaped = match &w.link {
            Some(link) => {
                let l = html_escape(link);
                escaped.replace(&l, &format!("<a href=\"{l}\">{l}</a>"))
            }
            None => escaped,
        };
        body.push_str(&format!("<p>{escaped}</p>\n"));
    }
    if let Some(link) = &w.link {
        let l = html_escape(link);
        body.push_str(&format!(
            "<p><a href=\"{l}\" style=\"display:inline-block;padding:12px 20px;background:#0b5cad;color:#fff;border-radius:6px;text-decoration:none;font-size:18px\">Ouvrir la séance</a></p>\n"
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family:sans-serif;font-size:16px;line-height:1.5\">\n{body}</body></html>\n",
        html_escape(&w.subject())
    )
}

/// Escapes a TEXT value of iCalendar (RFC 5545 3.3.11).
fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// Folds a content line at 75 octets (RFC 5545 3.1), on character boundaries.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut len = 0;
    for c in line.chars() {
        if len + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            len = 1;
        }
        out.push(c);
        len += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

fn ics_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The `.ics` of a message: one event whose UID is the session's.
pub fn ics(w: &Wording, session: Uuid, host: &str, now: DateTime<Utc>) -> String {
    let cancelled = w.kind == MessageKind::Cancelled;
    let mut description = w.email_paragraphs()[1].clone();
    if let Some(link) = &w.link {
        description.push_str(&format!("\nLien : {link}"));
    }
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//telesoin//Teleseance kine//FR".to_owned(),
        format!("METHOD:{}", if cancelled { "CANCEL" } else { "REQUEST" }),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{session}@{host}"),
        // Later messages supersede earlier ones in calendars.
        format!("SEQUENCE:{}", now.timestamp() - 1_700_000_000),
        format!("DTSTAMP:{}", ics_time(now)),
        format!("DTSTART:{}", ics_time(w.starts_at)),
        format!(
            "DTEND:{}",
            ics_time(w.starts_at + Duration::minutes(EVENT_MINUTES))
        ),
        format!(
            "SUMMARY:{}",
            ics_text(&format!("Séance de kiné en vidéo avec {}", w.kine_name))
        ),
        format!("DESCRIPTION:{}", ics_text(&description)),
        format!(
            "STATUS:{}",
            if cancelled { "CANCELLED" } else { "CONFIRMED" }
        ),
    ];
    if let Some(link) = &w.link {
        lines.push(format!("URL:{link}"));
        lines.push(format!("LOCATION:{}", ics_text(link)));
    }
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    lines.iter().map(|l| fold(l)).collect()
}

/// Builds the message (public for the tests of its shape).
pub fn build(
    cfg: &Config,
    to: &str,
    w: &Wording,
    session: Uuid,
    host: &str,
    now: DateTime<Utc>,
) -> Result<Message, String> {
    let from: Mailbox = cfg
        .smtp_from
        .as_deref()
        .ok_or("smtp_not_configured")?
        .parse()
        .map_err(|_| "smtp_from is not an address".to_owned())?;
    let to: Mailbox = to.parse().map_err(|_| "bad_address".to_owned())?;
    let text = w.email_paragraphs().join("\n\n") + "\n";
    let calendar = ContentType::parse("text/calendar; charset=utf-8; method=REQUEST")
        .map_err(|e| e.to_string())?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(w.subject())
        .multipart(
            MultiPart::mixed()
                .multipart(MultiPart::alternative_plain_html(text, html(w)))
                .singlepart(
                    Attachment::new("seance.ics".to_owned())
                        .body(ics(w, session, host, now), calendar),
                ),
        )
        .map_err(|e| format!("message: {e}"))
}

/// Sends one e-mail; the error is the relay's answer, to be scrubbed by the caller.
pub async fn send(
    cfg: &Config,
    to: &str,
    w: &Wording,
    session: Uuid,
    host: &str,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let message = build(cfg, to, w, session, host, now)?;
    let transport = transport(cfg)?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("smtp: {e}"))
}

#[allow(dead_code)]
fn _single_part_is_used(_: SinglePart) {}

//! The nightly alert digest: anomalies that alert, credit findings and undelivered mail, one
//! message per recipient, and the same finding never mailed twice (the `alert_log` table).
//!
//! Owns: the stable key of each alert, which alerts a recipient has not had yet, the digest's
//! delivery and the log of what was mailed. Must not: detect anything (it takes the stages'
//! findings) or render (the [`super::Render`] implementation does).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::NaiveDate;
use lettre::message::Mailbox;
use serde::Serialize;

use super::{MailError, MailSettings, Outgoing, Render, deliver};
use crate::lake::io as lio;
use crate::lake::{Layout, Table, Writer};
use crate::money::Money;

/// One thing a person should hear about.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Alert {
    /// Usage or cost data older than `stale_after_days`.
    Stale(crate::freshness::Span),
    /// An incident: new, or (`update`) alerted before at a lower level of its running cost.
    Incident {
        incident: crate::anomalies::Incident,
        update: bool,
    },
    /// A credit finding and the growth level of its amount (an amount at risk alerts again
    /// each time it reaches another `regrow_factor` multiple).
    Credit {
        #[serde(flatten)]
        finding: crate::credits::Finding,
        #[serde(skip)]
        level: u32,
    },
    /// Messages that failed every attempt and are queued.
    Undelivered { messages: usize },
}

impl Alert {
    /// A credit finding as an alert: an amount at risk carries its growth level (how many
    /// `factor` multiples of $1 it reached), so it alerts again each time it grows by the
    /// factor — $3,711.22 that becomes $200,000 is news, $3,711.22 that becomes $3,900 is not.
    pub fn credit(finding: crate::credits::Finding, factor: rust_decimal::Decimal) -> Alert {
        let level = match &finding {
            crate::credits::Finding::AtRisk { at_risk_usd, .. } => {
                let one_dollar = Money::from_units(10i128.pow(crate::money::SCALE));
                crate::anomalies::incident::level(one_dollar, *at_risk_usd, factor)
            }
            _ => 0,
        };
        Alert::Credit { finding, level }
    }

    /// Stable across nights for the same finding (so it is mailed once): an anomaly by its
    /// id; a credit finding by what it is about, not by the figures that move daily.
    pub fn key(&self, as_of: NaiveDate) -> String {
        use crate::credits::Finding as F;
        match self {
            // Once per end of data: said again when the data moved on and is stale again.
            Alert::Stale(s) => format!("stale:{}:{}:{}", s.provider, s.table, s.last_day()),
            Alert::Incident { incident, .. } => {
                format!("{}{}", incident_prefix(&incident.id), incident.level)
            }
            Alert::Credit {
                finding:
                    F::Expiring {
                        provider,
                        lot_id,
                        horizon_days,
                        expires_at,
                        ..
                    },
                ..
            } => format!("credit:expiring:{provider}:{lot_id}:{expires_at}:{horizon_days}"),
            Alert::Credit {
                finding:
                    F::AtRisk {
                        provider,
                        lot_id,
                        expires_at,
                        ..
                    },
                level,
            } => format!("credit:at_risk:{provider}:{lot_id}:{expires_at}:{level}"),
            Alert::Credit {
                finding:
                    F::LowRunway {
                        provider,
                        runway_date,
                        ..
                    },
                ..
            } => format!(
                "credit:low_runway:{provider}:{}",
                runway_date.format("%Y-%m")
            ),
            Alert::Credit {
                finding:
                    F::BalanceMismatch {
                        provider, as_of, ..
                    },
                ..
            } => format!("credit:balance:{provider}:{as_of}"),
            Alert::Credit {
                finding: F::NoUsageData { provider, .. },
                ..
            } => format!("credit:no_usage:{provider}"),
            Alert::Credit {
                finding: F::ReloadStorm { provider, day, .. },
                ..
            } => {
                format!("credit:reload_storm:{provider}:{day}")
            }
            Alert::Credit {
                finding:
                    F::Lapsed {
                        provider,
                        lot_id,
                        expired_at,
                        ..
                    },
                ..
            } => format!("credit:lapsed:{provider}:{lot_id}:{expired_at}"),
            // Said again each night while it lasts.
            Alert::Undelivered { .. } => format!("undelivered:{as_of}"),
        }
    }
}

/// The alert keys of one incident start with this (its level follows).
fn incident_prefix(id: &str) -> String {
    format!("incident:{id}:")
}

/// What the digest run did.
#[derive(Debug, Clone, Serialize)]
pub struct AlertOutcome {
    /// Alerts found tonight.
    pub alerts: usize,
    /// Per recipient: how many new alerts its digest carried, and the delivery status.
    pub digests: Vec<(String, usize, super::Status)>,
    /// Digests that could not be delivered (their alerts go with the next run).
    pub undelivered: usize,
}

/// (alert key, recipient) → when it was mailed (µs).
type Sent = BTreeMap<(String, String), i64>;

fn sent(layout: &Layout) -> Result<Sent, MailError> {
    use crate::lake::batch::{str_col, ts_col};
    let mut out = BTreeMap::new();
    for b in lio::read_all(&layout.table_file(Table::AlertLog))? {
        let (k, r) = (str_col(&b, "alert_key")?, str_col(&b, "recipient")?);
        let at = ts_col(&b, "mailed_at")?;
        for i in 0..b.num_rows() {
            out.insert(
                (k.value(i).to_string(), r.value(i).to_string()),
                at.value(i),
            );
        }
    }
    Ok(out)
}

fn write_sent(writer: &Writer, sent: &Sent) -> Result<(), MailError> {
    let rows: Vec<(&str, &str, i64)> = sent
        .iter()
        .map(|((k, r), t)| (k.as_str(), r.as_str(), *t))
        .collect();
    let b = RecordBatch::try_new(
        crate::lake::schema::of(Table::AlertLog),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ],
    )
    .expect("alert_log schema");
    writer.replace_table(Table::AlertLog, &[b])?;
    Ok(())
}

/// The alert log's pseudo-recipient that records what the nightly run itself has reported,
/// with or without alert recipients configured.
pub const RUN_RECIPIENT: &str = "(run)";

/// Records `keys` (alert and review keys of tonight's run) as reported by the run; how many
/// of them no earlier run reported. The caller holds the exclusive lock.
pub fn note_reported(writer: &Writer, keys: &[String]) -> Result<usize, MailError> {
    let mut done = sent(writer)?;
    let now = chrono::Utc::now().timestamp_micros();
    let mut new = 0;
    for k in keys {
        let e = done.entry((k.clone(), RUN_RECIPIENT.to_string()));
        if let std::collections::btree_map::Entry::Vacant(v) = e {
            v.insert(now);
            new += 1;
        }
    }
    if new > 0 {
        write_sent(writer, &done)?;
    }
    Ok(new)
}

/// Mails each recipient the alerts it has not had (none new: no mail). The caller holds the
/// exclusive lock.
pub fn send(
    writer: &Writer,
    cfg: &MailSettings,
    render: &dyn Render,
    alerts: &[Alert],
    as_of: NaiveDate,
    dry_run: bool,
) -> Result<AlertOutcome, MailError> {
    let layout: &Layout = writer;
    let mut done = sent(layout)?;
    let smtp = match (&cfg.smtp, dry_run) {
        (Some(c), false) => Some(deliver::Smtp::new(c)?),
        _ => None,
    };
    let outbox = layout.root.join("outbox").join(if dry_run {
        format!("dry-run/alerts-{as_of}")
    } else {
        format!("alerts-{as_of}")
    });
    let mut out = AlertOutcome {
        alerts: alerts.len(),
        digests: Vec::new(),
        undelivered: 0,
    };
    for to in cfg.alerts.iter() {
        let email = to.email.to_string();
        let new: Vec<Alert> = alerts
            .iter()
            .filter(|a| !done.contains_key(&(a.key(as_of), email.clone())))
            .cloned()
            .map(|a| match a {
                // Alerted before at a lower level: an update, not a new incident.
                Alert::Incident { incident, .. } => {
                    let prefix = incident_prefix(&incident.id);
                    let update = done
                        .keys()
                        .any(|(k, r)| *r == email && k.starts_with(&prefix));
                    Alert::Incident { incident, update }
                }
                other => other,
            })
            .collect();
        if new.is_empty() {
            continue;
        }
        let rendered = render.alerts(&new, as_of).map_err(MailError::Render)?;
        let o = Outgoing {
            hash: super::content_hash(&rendered, &email),
            report: "alerts".into(),
            to: Mailbox::clone(to),
            rendered,
            total: Money::ZERO,
            cents: 0,
        };
        let m = super::message(&cfg.from, &o)?;
        let name = format!("alerts--{}--{}", super::slug(&email), &o.hash[..8]);
        let status = super::deliver_one(smtp.as_ref(), &outbox, &name, &m, cfg, dry_run)?.0;
        crate::lake::txn::crash_point("alert-delivered");
        if status.delivered() {
            let now = chrono::Utc::now().timestamp_micros();
            for a in &new {
                done.insert((a.key(as_of), email.clone()), now);
            }
            // The whole log, rewritten (small: one row per alert and recipient).
            write_sent(writer, &done)?;
        } else if status == super::Status::Queued {
            out.undelivered += 1;
        }
        out.digests.push((email, new.len(), status));
    }
    Ok(out)
}

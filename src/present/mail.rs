//! Mail bodies and the HTML report: a [`Bill`] (already rounded, see `mail::bill`) rendered
//! through minijinja templates into plain text and HTML, with the CSV attachment and the
//! charts.
//!
//! Templates are `reports/{team,finance}.{txt,html}`: built into the binary, and overridden by
//! files of the same names in `[mail] templates` (edited without recompiling). Every figure a
//! template shows is a string prepared here from the bill's cents, so the text part, the HTML
//! part, the CSV and the finance summary show the same rounded numbers.
//!
//! Must not: decide who gets what or when (that is `mail`), deliver, or read the lake.

use std::path::Path;

use serde_json::{Value, json};

use crate::mail::alerts::Alert;
use crate::mail::bill::{Bill, TeamBill};
use crate::mail::{FinanceExtras, Render, RenderFailure, Rendered};
use crate::money::{Money, cents_text};
use crate::present::chart;
use crate::reconcile::tieout::RowKind;
use crate::vocab::Close;

const BUILT_IN: [(&str, &str); 6] = [
    ("alerts.txt", include_str!("../../reports/alerts.txt")),
    ("alerts.html", include_str!("../../reports/alerts.html")),
    ("team.txt", include_str!("../../reports/team.txt")),
    ("team.html", include_str!("../../reports/team.html")),
    ("finance.txt", include_str!("../../reports/finance.txt")),
    ("finance.html", include_str!("../../reports/finance.html")),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "template {name}: {message} (fix the file in the templates directory, or remove it to use the built-in one)"
    )]
    Template { name: String, message: String },
    #[error("cannot read template {}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "[mail] templates = {:?} is not a directory (create it with your templates, or remove \
         the setting to use the built-in ones)",
        path.display().to_string()
    )]
    NoDirectory { path: std::path::PathBuf },
    #[error(transparent)]
    Chart(#[from] chart::ChartError),
}

/// The loaded templates.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by `dir/NAME` when that file exists.
    pub fn load(dir: Option<&Path>) -> Result<Templates, RenderError> {
        if let Some(d) = dir.filter(|d| !d.is_dir()) {
            return Err(RenderError::NoDirectory {
                path: d.to_path_buf(),
            });
        }
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, text) in BUILT_IN {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|source| RenderError::Read { path, source })?,
                None => text.to_string(),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| RenderError::Template {
                    name: name.into(),
                    message: e.to_string(),
                })?;
        }
        Ok(Templates { env })
    }
    fn render(&self, name: &str, ctx: &Value) -> Result<String, RenderError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| RenderError::Template {
                name: name.into(),
                message: e.to_string(),
            })?;
        t.render(ctx).map_err(|e| RenderError::Template {
            name: name.into(),
            message: format!("{e:#}"),
        })
    }
}

/// How the HTML refers to its charts: `cid:` parts of the mail, or embedded data URIs (the
/// self-contained HTML report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartLinks {
    Cid,
    DataUri,
}

/// `1234567` cents → `12,345.67`.
pub fn usd(cents: i128) -> String {
    crate::money::usd_text(cents)
}

/// "+$12.34 (+5.1%)" against the previous month; `None` without one.
pub fn change(cents: i128, previous: Option<i128>) -> Option<String> {
    let p = previous?;
    let d = cents - p;
    let sign = if d >= 0 { "+" } else { "-" };
    let pct = if p == 0 {
        String::new()
    } else {
        // Tenths of a percent, rounded half away from zero, in integers.
        let tenths = (d * 2000 / p + (d * 2000 / p).signum()) / 2;
        format!(" ({sign}{}.{}%)", tenths.abs() / 10, tenths.abs() % 10)
    };
    Some(format!("{sign}${}{pct}", usd(d.abs())))
}

fn status(close: Close) -> Value {
    match close {
        Close::Final => json!({"final": true, "label": "final", "note": ""}),
        Close::Provisional { final_on } => json!({
            "final": false,
            "label": "PROVISIONAL",
            "note": format!(
                "The provider may still deliver or restate usage for this month; the figures \
                 are final on {final_on}."
            ),
        }),
    }
}

/// Provider subtotals as the templates show them (the provider's name people read).
fn providers_value(v: &[crate::mail::bill::ProviderTotal]) -> Vec<Value> {
    v.iter()
        .map(|p| {
            let name = crate::vocab::Provider::parse(&p.provider)
                .map_or(p.provider.as_str(), |x| x.label());
            json!({"name": name, "amount": usd(p.cents), "exact": p.list_cost.to_string()})
        })
        .collect()
}

fn team_value(bill: &Bill, t: &TeamBill) -> Value {
    let workspaces: Vec<Value> = t
        .by_workspace()
        .into_iter()
        .map(|(name, cents)| {
            let lines: Vec<Value> = t
                .lines
                .iter()
                .filter(|l| l.workspace_name == name)
                .map(|l| json!({"model": l.model, "amount": usd(l.cents), "exact": l.list_cost.to_string()}))
                .collect();
            json!({"name": name, "amount": usd(cents), "lines": lines})
        })
        .collect();
    let models: Vec<Value> = t
        .by_model()
        .into_iter()
        .map(|(m, c)| json!({"model": m, "amount": usd(c)}))
        .collect();
    let keys: Vec<Value> = t
        .keys
        .iter()
        .map(|k| json!({"name": k.api_key_name, "amount": usd(k.cents)}))
        .collect();
    let top = |v: &[(String, crate::money::Money)]| -> Vec<Value> {
        v.iter()
            .map(|(n, m)| json!({"name": n, "amount": usd(m.round_cents())}))
            .collect()
    };
    json!({
        "name": t.name,
        "cost_center": t.cost_center.clone().unwrap_or_default(),
        "people": top(&t.people),
        "products": top(&t.products),
        "total": usd(t.cents),
        "previous": t.previous_cents.map(usd),
        "change": change(t.cents, t.previous_cents),
        "workspaces": workspaces,
        "models": models,
        "keys": keys,
        "providers": providers_value(&t.providers),
        "shared": t.shared.map(|s| usd(s.1)),
        "shared_label": bill.shared_label(t),
    })
}

fn link(links: ChartLinks, id: &str, png: &[u8]) -> String {
    use base64::Engine as _;
    match links {
        ChartLinks::Cid => format!("cid:{id}"),
        ChartLinks::DataUri => format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        ),
    }
}

fn month_ym(bill: &Bill) -> (i32, u32) {
    (bill.month.year().into(), bill.month.month().into())
}

/// The CSV of one team (or of every team): one row per team × workspace × model, exact list
/// cost at full precision beside the cents every other part shows.
pub fn csv(bill: &Bill, close: Close, teams: &[&TeamBill]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "month",
        "status",
        "team",
        "cost_center",
        "workspace_id",
        "workspace_name",
        "model",
        "list_cost_usd",
        "list_cost_usd_rounded",
    ]);
    let month = bill.month.key();
    for t in teams {
        let cc = t.cost_center.clone().unwrap_or_default();
        for l in &t.lines {
            let _ = w.write_record([
                month.as_str(),
                close.as_str(),
                crate::present::csv_safe(&t.name).as_str(),
                crate::present::csv_safe(&cc).as_str(),
                crate::present::csv_safe(l.workspace_id.as_deref().unwrap_or("")).as_str(),
                crate::present::csv_safe(&l.workspace_name).as_str(),
                crate::present::csv_safe(&l.model).as_str(),
                l.list_cost.to_string().as_str(),
                cents_text(l.cents).as_str(),
            ]);
        }
        if let (Some((exact, cents)), Some(pool)) = (t.shared, bill.shared.as_ref()) {
            let label = bill.shared_label(t).unwrap_or_default();
            let _ = w.write_record([
                month.as_str(),
                close.as_str(),
                crate::present::csv_safe(&t.name).as_str(),
                crate::present::csv_safe(&cc).as_str(),
                "",
                crate::present::csv_safe(&pool.workspaces.join(", ")).as_str(),
                crate::present::csv_safe(&format!("({label})")).as_str(),
                exact.to_string().as_str(),
                cents_text(cents).as_str(),
            ]);
        }
    }
    w.into_inner().unwrap_or_default()
}

/// The mail of one team.
pub fn team_mail(
    tpl: &Templates,
    bill: &Bill,
    team: &TeamBill,
    close: Close,
    correction: Option<&str>,
    links: ChartLinks,
) -> Result<Rendered, RenderError> {
    let daily = chart::daily_by_model(
        &format!(
            "{} · daily list cost by model, {} (UTC days)",
            team.name, bill.month
        ),
        month_ym(bill),
        &team.daily,
    )?;
    let keys: Vec<(String, i128)> = team
        .keys
        .iter()
        .map(|k| (k.api_key_name.clone(), k.cents))
        .collect();
    let top = chart::top_bars(&format!("{} · top API keys", team.name), &keys, 10)?;
    let ctx = json!({
        "month": bill.month.key(),
        "status": status(close),
        "team": team_value(bill, team),
        "correction": correction,
        "unpriced_lines": bill.unpriced_lines,
        "provider_list": bill.provider_list,
        "charts": {"daily": link(links, "daily", &daily), "keys": link(links, "keys", &top)},
    });
    let prefix = match (correction.is_some(), close) {
        (true, _) => "Correction: ",
        (false, Close::Provisional { .. }) => "[provisional] ",
        (false, Close::Final) => "",
    };
    Ok(Rendered {
        subject: format!(
            "{prefix}{} LLM API chargeback {}: ${}",
            team.name,
            bill.month,
            usd(team.cents)
        ),
        text: tpl.render("team.txt", &ctx)?,
        html: tpl.render("team.html", &ctx)?,
        csv: (
            format!(
                "chargeback-{}-{}.csv",
                bill.month,
                crate::mail::slug(&team.name)
            ),
            csv(bill, close, &[team]),
        ),
        images: vec![("daily".into(), daily), ("keys".into(), top)],
    })
}

/// The finance summary's tie-outs, reconciliation sentence, credit and anomaly sentences.
fn extras_values(
    bill: &Bill,
    extras: &FinanceExtras,
) -> (Vec<Value>, Option<String>, Vec<String>, Vec<Value>) {
    let tie_outs: Vec<Value> = extras
        .tie_outs
        .iter()
        .map(|t| {
            // Zero parts say nothing (five red "unexplained 0.00" rows when all ties);
            // subtotals always show.
            let rows: Vec<Value> = t
                .rows
                .iter()
                .filter(|r| r.kind == RowKind::Subtotal || r.amount_cents != 0)
                .map(|r| {
                    let kind = match r.kind {
                        RowKind::Subtotal => "subtotal",
                        RowKind::Known => "known",
                        RowKind::Unexplained => "unexplained",
                    };
                    json!({"step": r.step, "kind": kind, "amount": usd(r.amount_cents)})
                })
                .collect();
            json!({"invoice": t.invoice_number, "rows": rows})
        })
        .collect();
    let reconciliation = extras.unexplained_lines.map(|n| match n {
        0 => "Every line of the provider's cost report is matched or explained.".to_string(),
        n => format!(
            "{n} line(s) of the reconciliation with the provider's cost report are unexplained: \
             tokenledger reconcile --month {} lists them.",
            bill.month
        ),
    });
    let credits: Vec<String> = extras
        .credits
        .iter()
        .map(crate::present::credits::finding_text)
        .collect();
    let anomalies: Vec<Value> = extras
        .incidents
        .iter()
        .map(|i| json!({"text": i.sentence, "command": ack_command(i)}))
        .collect();
    (tie_outs, reconciliation, credits, anomalies)
}

/// The finance summary: every team and Unallocated, the tie-out, credits and anomalies.
pub fn finance_mail(
    tpl: &Templates,
    bill: &Bill,
    (close, correction): (Close, Option<&str>),
    extras: &FinanceExtras,
    links: ChartLinks,
) -> Result<Rendered, RenderError> {
    let mut daily = std::collections::BTreeMap::new();
    for t in &bill.teams {
        for ((d, _), c) in &t.daily {
            let e: &mut Money = daily.entry((*d, t.name.clone())).or_default();
            *e = Money::from_units(e.units() + c.units());
        }
    }
    let chart_daily = chart::daily_by_model(
        &format!("daily list cost by team, {} (UTC days)", bill.month),
        month_ym(bill),
        &daily,
    )?;
    let teams: Vec<Value> = bill.teams.iter().map(|t| team_value(bill, t)).collect();
    let (tie_outs, reconciliation, credits, anomalies) = extras_values(bill, extras);
    let ctx = json!({
        "month": bill.month.key(),
        "status": status(close),
        "total": usd(bill.cents),
        "teams": teams,
        "providers": providers_value(&bill.providers),
        "tie_outs": tie_outs,
        "reconciliation": reconciliation,
        "credits": credits,
        "anomalies": anomalies,
        "correction": correction,
        "unpriced_lines": bill.unpriced_lines,
        "provider_list": bill.provider_list,
        "charts": {"daily": link(links, "daily", &chart_daily)},
    });
    let prefix = match (correction.is_some(), close) {
        (true, _) => "Correction: ",
        (false, Close::Provisional { .. }) => "[provisional] ",
        (false, Close::Final) => "",
    };
    let all: Vec<&TeamBill> = bill.teams.iter().collect();
    Ok(Rendered {
        subject: format!(
            "{prefix}LLM API chargeback {}: ${} across {} team(s) and Unallocated",
            bill.month,
            usd(bill.cents),
            bill.teams.len() - 1
        ),
        text: tpl.render("finance.txt", &ctx)?,
        html: tpl.render("finance.html", &ctx)?,
        csv: (
            format!("chargeback-{}-all-teams.csv", bill.month),
            csv(bill, close, &all),
        ),
        images: vec![("daily".into(), chart_daily)],
    })
}

/// The body of an HTML document (what is between `<body …>` and `</body>`).
fn body(html: &str) -> &str {
    let start = html
        .find("<body")
        .and_then(|i| html[i..].find('>').map(|j| i + j + 1))
        .unwrap_or(0);
    let end = html.rfind("</body>").unwrap_or(html.len());
    &html[start..end.max(start)]
}

/// `report --format html`: the finance summary and every team's report as one self-contained
/// page (charts as data URIs; no external resource, no script).
pub fn html_report(
    tpl: &Templates,
    bill: &Bill,
    close: Close,
    extras: &FinanceExtras,
) -> Result<String, RenderError> {
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>LLM API chargeback {}</title></head>\n\
         <body style=\"font-family: Arial, Helvetica, sans-serif; color: #222; max-width: 780px; margin: auto;\">\n",
        bill.month
    );
    let f = finance_mail(tpl, bill, (close, None), extras, ChartLinks::DataUri)?;
    page.push_str(body(&f.html));
    // No empty sections: a team with no cost this month is a line of the summary, not a page.
    for t in bill.teams.iter().filter(|t| t.total != Money::ZERO) {
        let r = team_mail(tpl, bill, t, close, None, ChartLinks::DataUri)?;
        page.push_str("\n<hr style=\"margin: 32px 0;\">\n");
        page.push_str(body(&r.html));
    }
    page.push_str("\n</body></html>\n");
    Ok(page)
}

/// What `tokenledger mail` says on stderr: one line per message, then where to look.
pub fn outcome_text(o: &crate::mail::MailOutcome, data_dir: &Path) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mail {} ({}), via {}:",
        o.month,
        o.close.as_str(),
        o.transport
    );
    for d in &o.deliveries {
        let why = d
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<8} {:<10} {:<28} {}{why}",
            d.status.as_str(),
            d.kind.map_or("-", |k| k.as_str()),
            d.recipient,
            d.report
        );
    }
    if o.deliveries.is_empty() {
        let _ = writeln!(
            s,
            "  no recipients: add [[team]] recipients or [mail] finance to tokenledger.toml"
        );
    }
    if o.deliveries.iter().any(|d| d.path.is_some()) {
        let _ = writeln!(
            s,
            "  .eml files in {}",
            crate::lake::display_rel(data_dir, &o.outbox)
        );
    }
    if o.undelivered > 0 {
        let _ = writeln!(
            s,
            "  {} message(s) still queued: the next run retries them (exit code 3)",
            o.undelivered
        );
    }
    s
}

/// An incident in one line: its sentence, and how to quiet it if it is expected.
pub fn incident_text(i: &crate::anomalies::Incident) -> String {
    match ack_command(i) {
        Some(cmd) => format!("{} (if expected: {cmd})", i.sentence),
        None => i.sentence.clone(),
    }
}

/// The command that quiets an incident (acknowledges its alerting finding).
fn ack_command(i: &crate::anomalies::Incident) -> Option<String> {
    i.alerting
        .as_ref()
        .map(|id| format!("tokenledger anomalies ack {id}"))
}

/// One alert as a sentence and its kind.
pub fn alert_text(a: &Alert) -> (&'static str, String) {
    match a {
        Alert::Incident {
            incident: i,
            update,
        } => (
            {
                use crate::anomalies::Kind;
                match (i.kinds.as_slice(), update) {
                    ([Kind::RateLimit], _) => "rate limit",
                    ([Kind::Limit], _) => "spend limit",
                    (_, true) => "incident update",
                    (_, false) => "incident",
                }
            },
            format!(
                "{}{}",
                match (update, i.kinds.as_slice()) {
                    (false, _) => String::new(),
                    (true, [crate::anomalies::Kind::RateLimit]) => "passed the limit: ".into(),
                    (true, [crate::anomalies::Kind::Limit]) => "now: ".into(),
                    (true, _) => format!("grew to ${}: ", i.running_usd.usd()),
                },
                incident_text(i)
            ),
        ),
        Alert::Credit { finding: f, .. } => ("credits", crate::present::credits::finding_text(f)),
        Alert::Stale(s) => ("stale data", crate::freshness::stale_sentence(s)),
        Alert::Undelivered { messages } => (
            "mail",
            format!(
                "{messages} message(s) failed every attempt and are queued; the next run retries them"
            ),
        ),
    }
}

/// The nightly digest.
pub fn alerts_mail(
    tpl: &Templates,
    alerts: &[Alert],
    as_of: chrono::NaiveDate,
) -> Result<Rendered, RenderError> {
    let items: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let (kind, text) = alert_text(a);
            json!({"kind": kind, "text": text})
        })
        .collect();
    let ctx = json!({"as_of": as_of.to_string(), "alerts": items, "count": alerts.len()});
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["as_of", "kind", "alert"]);
    for a in alerts {
        let (kind, text) = alert_text(a);
        let _ = w.write_record([
            as_of.to_string().as_str(),
            kind,
            crate::present::csv_safe(&text).as_str(),
        ]);
    }
    Ok(Rendered {
        subject: format!("tokenledger: {} new alert(s) on {as_of}", alerts.len()),
        text: tpl.render("alerts.txt", &ctx)?,
        html: tpl.render("alerts.html", &ctx)?,
        csv: (
            format!("alerts-{as_of}.csv"),
            w.into_inner().unwrap_or_default(),
        ),
        images: Vec::new(),
    })
}

/// The mail stage renders through the templates (`cid:` charts).
impl Render for Templates {
    fn team(
        &self,
        bill: &Bill,
        team: &TeamBill,
        close: Close,
        correction: Option<&str>,
    ) -> Result<Rendered, RenderFailure> {
        Ok(team_mail(
            self,
            bill,
            team,
            close,
            correction,
            ChartLinks::Cid,
        )?)
    }
    fn finance(
        &self,
        bill: &Bill,
        close: Close,
        extras: &FinanceExtras,
        correction: Option<&str>,
    ) -> Result<Rendered, RenderFailure> {
        let how = (close, correction);
        Ok(finance_mail(self, bill, how, extras, ChartLinks::Cid)?)
    }
    fn alerts(
        &self,
        alerts: &[Alert],
        as_of: chrono::NaiveDate,
    ) -> Result<Rendered, RenderFailure> {
        Ok(alerts_mail(self, alerts, as_of)?)
    }
    fn page(
        &self,
        bill: &Bill,
        close: Close,
        extras: &FinanceExtras,
    ) -> Result<String, RenderFailure> {
        Ok(html_report(self, bill, close, extras)?)
    }
}

//! Anomaly injection: labelled anomalies (spikes of several sizes, an overnight burst, a new
//! key, a new model on an old key) and traps that must not alert (tiny noisy keys, weekends,
//! steady growth, a month-end batch job), written as `<out>-labels.csv` for evaluations.

use std::io::Write;

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate, TimeDelta};

use super::{MODELS, Org, Stream, SynthOptions, id};

/// What to inject (`synth --anomalies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Injection {
    #[default]
    None,
    /// Only the traps: a clean organisation on which nothing should alert.
    Traps,
    /// Traps and labelled anomalies.
    All,
}

impl Injection {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "traps" => Some(Self::Traps),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// How a stream's volume is changed.
#[derive(Debug, Clone)]
pub enum Effect {
    /// × `permille` / 1000 on one day.
    Scale { day: NaiveDate, permille: u64 },
    /// Nothing before this day.
    StartsOn(NaiveDate),
    /// Volume grows by `permille` / 1000 per day from the first day.
    Growth { from: NaiveDate, permille: u64 },
    /// × `factor` on the last day of every month.
    MonthEnd { factor: u64 },
    /// Hours `[0, 6)` of one day: always active, × `factor` of the day's peak level.
    Night { day: NaiveDate, factor: u64 },
    /// Busy every hour of this day (a runaway job).
    Busy(NaiveDate),
    /// A tiny key: volume × 0–4 by day.
    Noisy,
}

/// The volume multiplier (per mille) of a stream at `t`, and whether it is forced active;
/// `None` when the stream does not exist yet.
pub fn factor(effects: &[Effect], t: chrono::DateTime<chrono::Utc>) -> Option<(u64, bool)> {
    let day = t.date_naive();
    let (mut m, mut forced) = (1000u64, false);
    for e in effects {
        match e {
            Effect::StartsOn(d) if day < *d => return None,
            Effect::Busy(d) if *d == day => forced = true,
            Effect::Scale { day: d, permille } if *d == day => m = m * permille / 1000,
            Effect::Growth { from, permille } => {
                for _ in 0..(day - *from).num_days().max(0) {
                    m = m * (1000 + permille) / 1000;
                }
            }
            Effect::MonthEnd { factor } if (day + TimeDelta::days(1)).month() != day.month() => {
                m *= factor
            }
            Effect::Night { day: d, factor } if *d == day && chrono::Timelike::hour(&t) < 6 => {
                m *= factor;
                forced = true;
            }
            Effect::Noisy => m *= day.ordinal() as u64 * 7919 % 5,
            _ => {}
        }
    }
    Some((m, forced))
}

/// A labelled anomaly: (day, key index, kind).
pub type Label = (NaiveDate, usize, &'static str);

fn new_stream(key: usize, workspace: Option<usize>, model: &'static str, base: u64) -> Stream {
    Stream {
        workspace,
        key: Some(key),
        model,
        tier: "standard",
        context: "0-200k",
        geo: "global",
        base,
        web_search: false,
        effects: Vec::new(),
    }
}

fn add_key(org: &mut Org, name: &str, ws: Option<usize>, rng: &mut fastrand::Rng) -> usize {
    org.keys.push((id(rng, "apikey_"), name.to_string(), ws));
    org.keys.len() - 1
}

/// Keys by their total stream volume, largest first (anomalies go to keys that matter).
fn keys_by_volume(org: &Org) -> Vec<usize> {
    let mut vol = vec![0u64; org.keys.len()];
    for s in &org.streams {
        if let Some(k) = s.key {
            vol[k] += s.base;
        }
    }
    let mut keys: Vec<usize> = (0..org.keys.len()).filter(|k| vol[*k] > 0).collect();
    keys.sort_by_key(|k| std::cmp::Reverse(vol[*k]));
    keys
}

/// The traps: a tiny noisy key, a key growing 3% a day, a month-end batch job.
fn traps(org: &mut Org, ws: Option<usize>, start: NaiveDate, rng: &mut fastrand::Rng) {
    let tiny = add_key(org, "trap-tiny-noisy", ws, rng);
    let mut s = new_stream(tiny, ws, "claude-haiku-4-5-20251001", 3);
    s.effects.push(Effect::Noisy);
    org.streams.push(s);
    let grow = add_key(org, "trap-steady-growth", ws, rng);
    let mut s = new_stream(grow, ws, "claude-sonnet-4-6", 400);
    s.effects.push(Effect::Growth {
        from: start,
        permille: 30,
    });
    org.streams.push(s);
    let batch = add_key(org, "trap-month-end-batch", ws, rng);
    let mut s = new_stream(batch, ws, "claude-sonnet-4-5-20250929", 300);
    s.effects.push(Effect::MonthEnd { factor: 15 });
    org.streams.push(s);
}

/// A leaked key that spends from day `d_key`, and key `k` starting on a model it never used on
/// day `d_model`.
fn new_key_and_model(
    org: &mut Org,
    ws: Option<usize>,
    k: usize,
    d_key: NaiveDate,
    d_model: NaiveDate,
    rng: &mut fastrand::Rng,
) -> Vec<Label> {
    let mut labels = Vec::new();
    let nk = add_key(org, "leaked-key", ws, rng);
    let mut s = new_stream(nk, ws, "claude-opus-4-6", 150_000);
    s.effects.push(Effect::StartsOn(d_key));
    org.streams.push(s);
    labels.push((d_key, nk, "new_key"));
    let used: Vec<&str> = org
        .streams
        .iter()
        .filter(|s| s.key == Some(k))
        .map(|s| s.model)
        .collect();
    // The dearest model it does not use (opus first).
    let dearest = [MODELS[4], MODELS[1], MODELS[3], MODELS[0], MODELS[2]];
    if let Some(m) = dearest.into_iter().find(|m| !used.contains(m)) {
        let w = org.keys[k].2;
        let mut s = new_stream(k, w, m, 60_000);
        s.effects.push(Effect::StartsOn(d_model));
        org.streams.push(s);
        labels.push((d_model, k, "new_model_on_key"));
    }
    labels
}

/// Adds the traps and, for `All`, the anomalies; returns the labels.
pub fn inject(
    org: &mut Org,
    how: Injection,
    (start, end): (NaiveDate, NaiveDate),
    rng: &mut fastrand::Rng,
) -> Vec<Label> {
    if how == Injection::None {
        return Vec::new();
    }
    let ws = (!org.workspaces.is_empty()).then_some(0);
    traps(org, ws, start, rng);
    if how == Injection::Traps {
        return Vec::new();
    }
    let days = (end - start).num_days();
    let warm = 35;
    let day = |rng: &mut fastrand::Rng| {
        start + TimeDelta::days(warm + rng.i64(0..(days - warm - 1).max(1)))
    };
    let mut labels = Vec::new();
    let big = keys_by_volume(org);
    let pick = |i: usize| big[i % big.len()];
    labels.extend(new_key_and_model(org, ws, pick(1), day(rng), day(rng), rng));
    // Spikes of several sizes on the larger keys (after the streams above exist, so a spike
    // scales all of its key).
    let mut spiked = Vec::new();
    for (i, permille) in [6000u64, 9000, 14_000, 25_000].into_iter().enumerate() {
        // Not the key with the new model: its level shift would hide or mimic a spike.
        let k = pick([0, 2, 3, 4][i]);
        let d = day(rng);
        spiked.push((k, d));
        // Scaled and busy every hour (a runaway job), so that even a small key's spike is
        // dollars. (The same streams: a second row of the same dimensions would be refused.)
        for s in org.streams.iter_mut().filter(|s| s.key == Some(k)) {
            s.effects.push(Effect::Scale { day: d, permille });
            s.effects.push(Effect::Busy(d));
        }
        labels.push((d, k, "spike"));
    }
    // An overnight burst: the largest key running all night at many times its daytime level.
    let k = pick(0);
    let mut d = day(rng);
    // A week or more away from that key's spike (two anomalies, two alerts).
    while spiked
        .iter()
        .any(|(sk, sd)| *sk == k && (*sd - d).num_days().abs() <= 8)
    {
        d = day(rng);
    }
    for s in org.streams.iter_mut().filter(|s| s.key == Some(k)) {
        s.effects.push(Effect::Night { day: d, factor: 40 });
    }
    labels.push((d, k, "burst"));
    labels
}

/// Where the labels go: `<out>-labels.csv`, beside the exports (not among them: it is not a
/// provider file, and ingesting the exports must not meet it).
pub fn labels_path(out: &std::path::Path) -> std::path::PathBuf {
    let name = out
        .file_name()
        .map_or("synth".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!("{name}-labels.csv"))
}

/// The labels: date, api_key_id, api_key_name, kind.
pub fn write_labels(a: &SynthOptions, org: &Org, labels: &[Label]) -> Result<()> {
    let path = labels_path(&a.out);
    let mut f =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "date,api_key_id,api_key_name,kind")?;
    for (d, k, kind) in labels {
        writeln!(f, "{d},{},{},{kind}", org.keys[*k].0, org.keys[*k].1)?;
    }
    Ok(())
}

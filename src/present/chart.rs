//! Charts for the mail and the HTML report, drawn with plotters into PNG bytes (no browser,
//! no system fonts: DejaVu Sans Mono is embedded).
//!
//! Money becomes `f64` here only as a bar height in pixels; no drawn value is ever read back
//! as money (the tables beside each chart carry the exact, rounded figures).
//!
//! Must not: read the lake, compute a figure a table does not show, or write files.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use plotters::prelude::*;

use crate::money::Money;

static FONT: &[u8] = include_bytes!("../../reports/fonts/DejaVuSansMono.ttf");

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

#[derive(Debug, thiserror::Error)]
#[error("drawing the {chart} chart failed: {message}")]
pub struct ChartError {
    chart: &'static str,
    message: String,
}

fn font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is ours and valid; a failure would show as missing labels, not a crash.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn dollars(units: i128) -> f64 {
    // Pixels only (see the module header).
    units as f64 / 1e12
}

fn png(buf: &[u8], (w, h): (u32, u32), chart: &'static str) -> Result<Vec<u8>, ChartError> {
    let err = |e: png::EncodingError| ChartError {
        chart,
        message: e.to_string(),
    };
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(buf).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

fn failed<E: std::fmt::Debug>(chart: &'static str) -> impl Fn(E) -> ChartError {
    move |e| ChartError {
        chart,
        message: format!("{e:?}"),
    }
}

/// Per day of the month (index 1..=days; 0 unused), the cost of each of the seven largest
/// series and of "other", with their labels.
fn stacks(
    month: (i32, u32),
    daily: &BTreeMap<(NaiveDate, String), Money>,
) -> (Vec<String>, Vec<[i128; 8]>) {
    let first = NaiveDate::from_ymd_opt(month.0, month.1, 1).unwrap_or_default();
    let days = first
        .checked_add_months(chrono::Months::new(1))
        .map_or(31, |n| (n - first).num_days() as usize);
    let mut totals: BTreeMap<&str, i128> = BTreeMap::new();
    for ((_, m), c) in daily {
        *totals.entry(m.as_str()).or_default() += c.units();
    }
    let mut models: Vec<(&str, i128)> = totals.into_iter().collect();
    models.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&str> = models.iter().take(7).map(|m| m.0).collect();
    let slot = |m: &str| shown.iter().position(|s| *s == m).unwrap_or(7);
    let mut stack = vec![[0i128; 8]; days + 1];
    for ((d, m), c) in daily {
        if d.year() == month.0 && d.month() == month.1 {
            stack[d.day() as usize][slot(m)] += c.units();
        }
    }
    let mut labels: Vec<String> = shown.iter().map(|s| s.to_string()).collect();
    if models.len() > 7 {
        labels.push("other".into());
    }
    (labels, stack)
}

/// Daily list cost of `month` stacked by model (the largest models; the rest as "other").
pub fn daily_by_model(
    title: &str,
    month: (i32, u32),
    daily: &BTreeMap<(NaiveDate, String), Money>,
) -> Result<Vec<u8>, ChartError> {
    font();
    const SIZE: (u32, u32) = (760, 320);
    let name = "daily cost";
    let (labels, stack) = stacks(month, daily);
    let days = stack.len() as u32 - 1;
    let top = stack
        .iter()
        .map(|s| dollars(s.iter().sum()))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let mut buf = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(failed(name))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(64)
            .build_cartesian_2d(1u32..days + 1, 0f64..top)
            .map_err(failed(name))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(days as usize / 2)
            .y_desc("USD")
            .y_label_formatter(&|v| {
                if top < 10.0 {
                    format!("{v:.2}")
                } else {
                    format!("{v:.0}")
                }
            })
            .draw()
            .map_err(failed(name))?;
        for (k, label) in labels.iter().enumerate() {
            let color = PALETTE[k];
            let bars = (1..=days).map(|d| {
                let s = &stack[d as usize];
                let below = dollars(s[..k].iter().sum());
                let top = below + dollars(s[k]);
                Rectangle::new([(d, below), (d + 1, top)], color.filled())
            });
            chart
                .draw_series(bars)
                .map_err(failed(name))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(failed(name))?;
        root.present().map_err(failed(name))?;
    }
    png(&buf, SIZE, name)
}

/// The top `n` rows as horizontal bars (e.g. the top API keys by cost), labelled with the
/// rounded figure shown in the tables.
pub fn top_bars(title: &str, rows: &[(String, i128)], n: usize) -> Result<Vec<u8>, ChartError> {
    font();
    let name = "top keys";
    let rows: Vec<&(String, i128)> = rows.iter().take(n).collect();
    let size = (760u32, 60 + 26 * rows.len().max(1) as u32);
    let top = rows
        .iter()
        .map(|r| r.1 as f64 / 100.0)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.25;
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(failed(name))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(20)
            .y_label_area_size(0)
            .build_cartesian_2d(0f64..top, 0u32..rows.len().max(1) as u32)
            .map_err(failed(name))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(failed(name))?;
        let count = rows.len() as u32;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let y = count - 1 - i as u32;
                Rectangle::new(
                    [(0.0, y), (r.1 as f64 / 100.0, y + 1)],
                    PALETTE[0].mix(0.8).filled(),
                )
            }))
            .map_err(failed(name))?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let y = count - 1 - i as u32;
                Text::new(
                    format!("{}  ${}", r.0, crate::money::cents_text(r.1)),
                    (top * 0.01, y + 1),
                    ("sans-serif", 12),
                )
            }))
            .map_err(failed(name))?;
        root.present().map_err(failed(name))?;
    }
    png(&buf, size, name)
}

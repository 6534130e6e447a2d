//! Charts for the mail and the HTML report, drawn with plotters into PNG bytes (no browser,
//! no system fonts: DejaVu Sans, a proportional font, is embedded; its licence is
//! `reports/fonts/LICENSE-DejaVu`). Dollars on the axes, gaps between bars, figures beside
//! the bars (never across them), legends a person can read.
//!
//! Money becomes `f64` here only as a bar height in pixels; no drawn value is ever read back
//! as money (the tables beside each chart carry the exact, rounded figures).
//!
//! Must not: read the lake, compute a figure a table does not show, or write files.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use plotters::prelude::*;

use crate::money::Money;

static FONT: &[u8] = include_bytes!("../../reports/fonts/DejaVuSans.ttf");

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

/// An axis tick in dollars: `$1,500`, or `$0.25` on a chart under $10.
fn axis_usd(v: f64, small: bool) -> String {
    if small {
        format!("${v:.2}")
    } else {
        format!("${}", crate::money::group_thousands(&format!("{v:.0}")))
    }
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
    const SIZE: (u32, u32) = (760, 340);
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
            .caption(title, ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(70)
            .build_cartesian_2d(0.5f64..f64::from(days) + 0.5, 0f64..top)
            .map_err(failed(name))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(days as usize / 2)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .x_desc("day of the month")
            .y_label_formatter(&|v| axis_usd(*v, top < 10.0))
            .y_labels(8)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(WHITE)
            .draw()
            .map_err(failed(name))?;
        for (k, label) in labels.iter().enumerate() {
            let color = PALETTE[k];
            // Each day's bar leaves a gap either side.
            let bars = (1..=days).map(|d| {
                let s = &stack[d as usize];
                let below = dollars(s[..k].iter().sum());
                let top = below + dollars(s[k]);
                let x = f64::from(d);
                Rectangle::new([(x - 0.38, below), (x + 0.38, top)], color.filled())
            });
            chart
                .draw_series(bars)
                .map_err(failed(name))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(failed(name))?;
        root.present().map_err(failed(name))?;
    }
    png(&buf, SIZE, name)
}

/// A bar's name, at most 30 characters.
fn short_label(s: &str) -> String {
    if s.chars().count() > 30 {
        s.chars().take(29).chain(['…']).collect()
    } else {
        s.to_string()
    }
}

/// The figure beside a bar: left-aligned, centred on the bar.
fn figure_style() -> TextStyle<'static> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center))
}

/// The top `n` rows as horizontal bars (e.g. the top API keys by cost): the name left of its
/// bar, the rounded figure the tables show right of it, a gap between bars.
pub fn top_bars(title: &str, rows: &[(String, i128)], n: usize) -> Result<Vec<u8>, ChartError> {
    font();
    let name = "top keys";
    let rows: Vec<&(String, i128)> = rows.iter().take(n).collect();
    // At least two segments: a one-segment axis has no height to draw in.
    let count = rows.len().max(2) as u32;
    let size = (760u32, 80 + 30 * count);
    let most = rows
        .iter()
        .map(|r| r.1 as f64 / 100.0)
        .fold(0.0, f64::max)
        .max(1.0);
    // Room right of the longest bar for its figure.
    let top = most * 1.3;
    let names: Vec<String> = rows.iter().map(|r| short_label(&r.0)).collect();
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(failed(name))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(10)
            .margin_right(24)
            .x_label_area_size(30)
            .y_label_area_size(210)
            // Segments 0..=count-1: one per bar, none empty above the largest.
            .build_cartesian_2d(0f64..top, (0u32..count - 1).into_segmented())
            .map_err(failed(name))?;
        // Row 0 at the top: the largest first.
        let row_of = |y: u32| count - 1 - y;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(count as usize)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(y) | SegmentValue::Exact(y) if *y < count => {
                    names.get(row_of(*y) as usize).cloned().unwrap_or_default()
                }
                _ => String::new(),
            })
            .x_labels(5)
            .x_label_formatter(&|v| axis_usd(*v, most < 10.0))
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE)
            .draw()
            .map_err(failed(name))?;
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(PALETTE[0].mix(0.85).filled())
                    .margin(7)
                    .data(
                        rows.iter()
                            .enumerate()
                            .map(|(i, r)| (row_of(i as u32), r.1 as f64 / 100.0)),
                    ),
            )
            .map_err(failed(name))?;
        let figure = figure_style();
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let x = r.1 as f64 / 100.0 + most * 0.015;
                Text::new(
                    format!("${}", crate::money::usd_text(r.1)),
                    (x, SegmentValue::CenterOf(row_of(i as u32))),
                    figure.clone(),
                )
            }))
            .map_err(failed(name))?;
        root.present().map_err(failed(name))?;
    }
    png(&buf, size, name)
}

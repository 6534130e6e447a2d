//! Limits before they bite: the rate-limit headroom of the recent minutes, per model class for
//! the organisation and per workspace, against the limits in force (a dated default table under
//! the config: [`table`]).
//!
//! Owns: the rate table ([`table`]), the window's one pass over the usage parts ([`scan`]) and
//! the headroom, pure ([`headroom`]). The spend side (a configured limit or the tier's monthly
//! spend cap, and the date it is reached) is `anomalies::detect::limits`, which takes the cap
//! from here. Must not: alert or keep acknowledgements (the anomaly stage turns what passed
//! into findings), price, write the lake, or use polars.

pub mod headroom;
pub mod scan;
pub mod table;

pub use headroom::{Headroom, Metric, Passing};
pub use table::{Limit, RateTable};

use chrono_tz::Tz;

use crate::lake::{LakeError, Layout};

/// What a headroom pass looks at.
#[derive(Debug, Clone)]
pub struct Window {
    /// Days of data, ending with the newest bucket in the lake (default 7).
    pub days: u32,
    /// A minute at or above this percentage of a limit is a finding (default 80).
    pub threshold_pct: u32,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            days: 7,
            threshold_pct: 80,
        }
    }
}

const DAY_US: i64 = 86_400_000_000;

/// The headroom of the last `w.days` days of data (`None`: the lake has no usage).
pub fn headroom(
    layout: &Layout,
    table: &RateTable,
    tz: Tz,
    w: &Window,
) -> Result<Option<Headroom>, LakeError> {
    let t = std::time::Instant::now();
    // The window ends with the newest bucket in the lake (the parts' footers say where).
    let spans = scan::spans(layout)?;
    let Some(to) = spans.iter().filter_map(|(.., s)| s.map(|x| x.1)).max() else {
        return Ok(None);
    };
    let from = to - i64::from(w.days.max(1)) * DAY_US;
    let parts = scan::parts(spans, from, to);
    let sums = scan::window(&parts, table, (from, to))?;
    let read = t.elapsed();
    let h = headroom::headroom(&sums, table, tz, w.threshold_pct, (from, to));
    tracing::debug!(
        stage = "limits",
        "limits: scan {:.3} s ({} part(s), {} minute cells), headroom {:.3} s",
        read.as_secs_f64(),
        parts.len(),
        sums.minutes.len(),
        (t.elapsed() - read).as_secs_f64()
    );
    Ok(Some(h))
}

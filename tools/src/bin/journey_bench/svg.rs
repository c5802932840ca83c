//! SVG line charts, by hand: x is the connection level on a log scale, y one figure, a line
//! per server.

use std::fmt::Write as _;

use ripple_tools::text::{number, xml_escape};

use crate::LEVELS;

/// How a chart's y axis maps values.
#[derive(Clone, Copy, PartialEq)]
pub enum Scale {
    /// From zero, evenly.
    Linear,
    /// A decade per step, for figures that span several orders of magnitude.
    Log,
}

/// One line of a chart.
pub struct Series {
    /// The model, for the legend.
    pub label: String,
    /// Its color.
    pub color: &'static str,
    /// Whether the line is dashed (a second figure of the same model).
    pub dashed: bool,
    /// Its value at each of `LEVELS`, `None` where it did not serve.
    pub points: Vec<Option<f64>>,
}

/// Eight colors that stay apart from one another (Tableau 10, without the grays).
pub const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];

/// The plot area in the SVG: left, top, right, bottom.
const PLOT: (f64, f64, f64, f64) = (90.0, 50.0, 560.0, 380.0);

/// An SVG line chart: x is the connection level on a log scale, y one figure.
pub fn line_chart(title: &str, y_label: &str, scale: Scale, series: &[Series]) -> String {
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().flatten().copied());
    let axis = YAxis::fit(scale, values);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"440\" \
         viewBox=\"0 0 800 440\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"800\" height=\"440\" fill=\"white\"/>\n\
         <text x=\"400\" y=\"28\" font-size=\"16\" font-weight=\"bold\" \
         text-anchor=\"middle\">{}</text>",
        xml_escape(title)
    );
    svg.push_str(&x_axis());
    svg.push_str(&axis.draw(y_label));
    for s in series {
        svg.push_str(&polyline(s, &axis));
    }
    svg.push_str(&legend(series));
    svg.push_str("</svg>\n");
    svg
}

/// The x position of a connection level: log scale, from the first level to the last.
fn x_of(level: usize) -> f64 {
    let (left, _, right, _) = PLOT;
    let (lo, hi) = (
        (LEVELS[0] as f64).log10(),
        (LEVELS[LEVELS.len() - 1] as f64).log10(),
    );
    left + (right - left) * ((level as f64).log10() - lo) / (hi - lo)
}

/// The x axis: a tick and label at every level, and the axis title.
fn x_axis() -> String {
    let (left, top, right, bottom) = PLOT;
    let mut svg = format!(
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>\n"
    );
    for level in LEVELS {
        let x = x_of(level);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e6e6e6\"/>\n\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 18.0,
            number(level as f64)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">concurrent connections (log scale)</text>",
        (left + right) / 2.0,
        bottom + 42.0
    );
    svg
}

/// A y axis fitted to the values it shows.
struct YAxis {
    /// Linear or log.
    scale: Scale,
    /// The value at the bottom of the plot.
    low: f64,
    /// The value at the top.
    high: f64,
    /// The values that get a tick and a grid line.
    ticks: Vec<f64>,
}

impl YAxis {
    /// Fits an axis to `values`: from zero to a round number above the largest (linear), or
    /// from the decade below the smallest to the decade above the largest (log).
    fn fit(scale: Scale, values: impl Iterator<Item = f64>) -> YAxis {
        let (mut min, mut max) = (f64::INFINITY, 0.0_f64);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            min = min.min(v);
            max = max.max(v);
        }
        if max == 0.0 {
            (min, max) = (1.0, 10.0);
        }
        match scale {
            Scale::Linear => {
                let step = nice_step(max / 5.0);
                let high = (max / step).ceil() * step;
                let ticks = (0..=((high / step).round() as usize))
                    .map(|i| i as f64 * step)
                    .collect();
                YAxis {
                    scale,
                    low: 0.0,
                    high,
                    ticks,
                }
            }
            Scale::Log => {
                let (lo, hi) = (min.log10().floor() as i32, max.log10().ceil() as i32);
                let hi = hi.max(lo + 1);
                YAxis {
                    scale,
                    low: 10f64.powi(lo),
                    high: 10f64.powi(hi),
                    ticks: log_ticks(lo, hi),
                }
            }
        }
    }

    /// The y position of `value`.
    fn y_of(&self, value: f64) -> f64 {
        let (_, top, _, bottom) = PLOT;
        let share = match self.scale {
            Scale::Linear => (value - self.low) / (self.high - self.low),
            Scale::Log => {
                (value.max(self.low).log10() - self.low.log10())
                    / (self.high.log10() - self.low.log10())
            }
        };
        bottom - (bottom - top) * share.clamp(0.0, 1.0)
    }

    /// The axis line, ticks, grid lines, tick labels and the rotated title.
    fn draw(&self, label: &str) -> String {
        let (left, top, right, bottom) = PLOT;
        let mut svg = format!(
            "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"black\"/>\n"
        );
        for &tick in &self.ticks {
            let y = self.y_of(tick);
            let text = if tick < 1.0 {
                format!("{tick}")
            } else {
                number(tick)
            };
            let _ = writeln!(
                svg,
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" \
                 stroke=\"#e6e6e6\"/>\n\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{text}</text>",
                left - 6.0,
                y + 4.0
            );
        }
        let middle = (top + bottom) / 2.0;
        let _ = writeln!(
            svg,
            "<text x=\"20\" y=\"{middle}\" text-anchor=\"middle\" \
             transform=\"rotate(-90 20 {middle})\">{}</text>",
            xml_escape(label)
        );
        svg
    }
}

/// Ticks from 10^`lo` to 10^`hi`: every decade, and 2 and 5 within it when there are few
/// decades (a log axis with only 1, 10 and 100 is hard to read values from).
fn log_ticks(lo: i32, hi: i32) -> Vec<f64> {
    let steps: &[f64] = if hi - lo <= 3 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks: Vec<f64> = (lo..hi)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .collect();
    ticks.push(10f64.powi(hi));
    ticks
}

/// The round step (1, 2 or 5 times a power of ten) at or above `rough`.
fn nice_step(rough: f64) -> f64 {
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power)
}

/// One model's line: segments between served levels, a dot on each.
fn polyline(series: &Series, axis: &YAxis) -> String {
    let mut svg = String::new();
    let mut run: Vec<String> = Vec::new();
    // A level not served breaks the line, so a segment never jumps over a gap.
    for (level, point) in LEVELS.iter().zip(&series.points) {
        match point {
            Some(v) => run.push(format!("{:.1},{:.1}", x_of(*level), axis.y_of(*v))),
            None => {
                svg.push_str(&segment(&run, series));
                run.clear();
            }
        }
    }
    svg.push_str(&segment(&run, series));
    svg
}

/// A stretch of consecutive points: a polyline through them and a dot on each.
fn segment(points: &[String], series: &Series) -> String {
    let mut svg = String::new();
    if points.len() > 1 {
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" {}/>",
            points.join(" "),
            stroke(series)
        );
    }
    for point in points {
        let (x, y) = point.split_once(',').expect("x,y");
        svg.push_str(&dot(x, y, series));
    }
    svg
}

/// The stroke attributes of a series' line.
fn stroke(series: &Series) -> String {
    let dash = if series.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    format!("stroke=\"{}\" stroke-width=\"2.5\"{dash}", series.color)
}

/// A series' marker at (`x`, `y`): filled, or hollow for a dashed series.
fn dot(x: impl std::fmt::Display, y: impl std::fmt::Display, series: &Series) -> String {
    let (fill, edge) = if series.dashed {
        ("white", series.color)
    } else {
        (series.color, "white")
    };
    format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"4\" fill=\"{fill}\" stroke=\"{edge}\"/>\n")
}

/// The legend, right of the plot: a line and a label per model.
fn legend(series: &[Series]) -> String {
    let (_, top, right, _) = PLOT;
    let x = right + 30.0;
    let mut svg = format!(
        "<text x=\"{x}\" y=\"{}\" font-weight=\"bold\">server</text>\n",
        top + 4.0
    );
    for (i, s) in series.iter().enumerate() {
        let y = top + 26.0 + 22.0 * i as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" {}/>\n{}\
             <text x=\"{}\" y=\"{}\">{}</text>",
            x + 28.0,
            stroke(s),
            dot(x + 14.0, y, s),
            x + 36.0,
            y + 4.0,
            xml_escape(&s.label)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{x}\" y=\"{}\" fill=\"#666\">no point: level not served</text>",
        top + 26.0 + 22.0 * series.len() as f64 + 8.0
    );
    svg
}

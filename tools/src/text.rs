//! Text for a report: counts with thousands separated, text made safe for SVG, and the output of
//! a command (the date, the kernel) for the report's first lines.
//!
//! Both reports print their numbers the same way, so a figure of `docs/journey.md` and one of
//! `docs/benchmarks.md` read alike: `12,345` messages per second, `n/a` where there is none.

use std::process::Command;

/// A count with thousands separated: `12,345` (rounded to a whole number; `n/a` if not finite).
///
/// ```
/// assert_eq!(ripple_tools::text::number(1234567.4), "1,234,567");
/// assert_eq!(ripple_tools::text::number(-999.0), "-999");
/// ```
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Text made safe for SVG.
pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The output of a command, trimmed, or `unknown`.
pub fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

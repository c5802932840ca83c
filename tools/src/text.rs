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

/// Text made safe for SVG, in an element or inside a quoted attribute: markup characters become
/// entities, and the characters XML 1.0 forbids even as entities (control characters other than
/// tab, newline and carriage return) become `\u{FFFD}`, so a thread or task name with a stray
/// control byte cannot make the whole drawing unreadable.
///
/// ```
/// use ripple_tools::text::xml_escape;
/// assert_eq!(xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
/// assert_eq!(xml_escape("bell\u{7}"), "bell\u{FFFD}");
/// ```
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
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

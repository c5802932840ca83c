//! Draws a ripple trace file as an SVG timeline: one lane per thread, a box per task poll
//! coloured by task, epoll waits shaded, wakes and steals marked, a time axis and a legend (see
//! `tools/src/timeline.rs`).
//!
//! ```text
//! RIPPLE_TRACE_FILE=trace.json cargo run --release --example work_stealing
//! cargo run --release -p ripple-tools --bin timeline -- trace.json timeline.svg [--from MS] [--to MS] [--width PX]
//! ```
//!
//! `--from` and `--to` draw a window of the trace, in milliseconds since it began (or, with
//! `--from-first-spawn`, since the first task was spawned: a window that stays put from run to
//! run); `--width` sets the drawing's width in pixels (default 1000).

use std::process::ExitCode;

use ripple_tools::timeline::{self, Options};

/// How to call it.
const USAGE: &str =
    "usage: timeline TRACE.json OUT.svg [--from MS] [--to MS] [--from-first-spawn] [--width PX]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("timeline: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the arguments, the trace; writes the drawing.
fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut paths = Vec::new();
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<f64, String> {
            args.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{what} takes a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--from" => options.from_ms = Some(number("--from")?),
            "--to" => options.to_ms = Some(number("--to")?),
            "--width" => options.width = number("--width")?,
            "--from-first-spawn" => options.from_first_spawn = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => paths.push(arg),
        }
    }
    let [input, output] = &paths[..] else {
        return Err(USAGE.to_string());
    };
    if let (Some(from), Some(to)) = (options.from_ms, options.to_ms) {
        if from >= to {
            return Err(format!("--from ({from}) must be before --to ({to})"));
        }
    }
    if !(100.0..=100_000.0).contains(&options.width) {
        return Err(format!("--width takes 100 to 100000 pixels\n{USAGE}"));
    }
    let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
    let trace = timeline::parse(&text).map_err(|e| format!("{input}: {e}"))?;
    if trace.cut {
        eprintln!("timeline: {input}: the last record was cut short and is left out");
    }
    let svg = timeline::render(&trace, &options);
    std::fs::write(output, &svg).map_err(|e| format!("{output}: {e}"))?;
    println!(
        "{output}: {} lanes, {} polls, {} KiB",
        trace.threads.len(),
        trace.polls.len(),
        svg.len() / 1024
    );
    Ok(())
}

//! The timeline: a ripple trace file (`RIPPLE_TRACE_FILE`, the Trace Event Format) drawn as one
//! self-contained SVG, which any browser or image viewer opens.
//!
//! One lane per thread, named as the trace names it; on each lane a box per task poll, coloured
//! by task (the same task keeps its colour on every lane, so a stolen task is easy to follow),
//! epoll waits shaded grey (the thread sleeping), the firing of timers in dark grey, wakes marked with a small triangle above the lane of the thread that
//! woke the task (a thin line joins it to the poll it caused when that poll runs on another
//! lane), and steals with a red diamond. A time axis in milliseconds runs along the bottom, a
//! legend names the tasks. `--from` and `--to` (in ms since the trace began, or with
//! `--from-first-spawn` since the first task was spawned) draw a window of a long trace.
//!
//! ```text
//! RIPPLE_TRACE_FILE=trace.json cargo run --release --example work_stealing
//! cargo run --release -p ripple-tools --bin timeline -- trace.json timeline.svg --to 40
//! ```
//!
//! The trace may lack its closing `]` (a program still running, or one that was killed): the
//! format allows it, and [`parse`] adds it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::text::xml_escape;

/// A parsed trace: what the timeline draws.
#[derive(Debug, Default)]
pub struct Trace {
    /// The threads, in the order of their lanes.
    pub threads: Vec<Thread>,
    /// Task polls.
    pub polls: Vec<Slice>,
    /// epoll waits.
    pub waits: Vec<Slice>,
    /// Firings of timers (and any other slice that is neither a poll nor a wait).
    pub chores: Vec<Slice>,
    /// Wakes: where a task was woken, and the poll it caused, if found.
    pub wakes: Vec<Wake>,
    /// Steals, at the thief's lane.
    pub steals: Vec<Mark>,
    /// The last moment the trace mentions, in microseconds.
    pub end_us: f64,
    /// The first spawn, in microseconds (where the program's work begins).
    pub first_spawn_us: Option<f64>,
    /// Whether the file's last record was cut short (a copy taken while it was being written, or
    /// a disk that filled up) and left out.
    pub cut: bool,
}

/// One thread of the trace.
#[derive(Debug, Clone)]
pub struct Thread {
    /// Process id.
    pub pid: u64,
    /// Thread number.
    pub tid: u64,
    /// Its name (`worker 0`, `main (current_thread)`, ...).
    pub name: String,
}

/// A slice of time on one thread.
#[derive(Debug, Clone)]
pub struct Slice {
    /// Index of the thread's lane in [`Trace::threads`].
    pub lane: usize,
    /// Start, in microseconds.
    pub ts: f64,
    /// Length, in microseconds.
    pub dur: f64,
    /// The task (polls only; 0 for the `block_on` future).
    pub task: u64,
    /// What the trace calls it.
    pub name: String,
    /// More to say in the tooltip (a poll's outcome, a wait's events).
    pub detail: String,
}

/// A moment on one thread.
#[derive(Debug, Clone)]
pub struct Mark {
    /// Index of the thread's lane.
    pub lane: usize,
    /// When, in microseconds.
    pub ts: f64,
    /// The tooltip.
    pub detail: String,
}

/// A wake, and the poll it caused.
#[derive(Debug, Clone)]
pub struct Wake {
    /// Where and when the task was woken.
    pub mark: Mark,
    /// The woken task.
    pub task: u64,
    /// The lane and start of the poll it caused, if the trace has it.
    pub poll: Option<(usize, f64)>,
}

/// How to draw a trace.
#[derive(Debug, Clone)]
pub struct Options {
    /// The window's start, in ms since the trace began (default: the start).
    pub from_ms: Option<f64>,
    /// The window's end, in ms (default: the trace's end).
    pub to_ms: Option<f64>,
    /// Whether `from_ms` and `to_ms` count from the first spawn rather than from the trace's
    /// start: a window that stays put from run to run.
    pub from_first_spawn: bool,
    /// The drawing's width in pixels.
    pub width: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            from_ms: None,
            to_ms: None,
            from_first_spawn: false,
            width: 1000.0,
        }
    }
}

/// Parses a trace file's text, with or without its closing `]` (and with a trailing comma). A
/// last record cut short is left out (and [`Trace::cut`] says so); anything else that is not
/// JSON is an error.
pub fn parse(text: &str) -> Result<Trace, String> {
    let (events, cut) = parse_events(text)?;
    let mut lanes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let num = |e: &Value, key: &str| e.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let int = |e: &Value, key: &str| e.get(key).and_then(Value::as_u64).unwrap_or(0);
    let arg = |e: &Value, key: &str| e.get("args").and_then(|a| a.get(key)).cloned();
    for e in &events {
        let (pid, tid) = (int(e, "pid"), int(e, "tid"));
        if tid == 0 {
            continue;
        }
        let name = lanes
            .entry((pid, tid))
            .or_insert_with(|| format!("thread {tid}"));
        if e["ph"] == "M" && e["name"] == "thread_name" {
            if let Some(Value::String(n)) = arg(e, "name") {
                *name = n;
            }
        }
    }
    // Lanes in the order of their names within a process (`worker 0` above `worker 1`).
    let mut threads: Vec<Thread> = lanes
        .iter()
        .map(|(&(pid, tid), name)| Thread {
            pid,
            tid,
            name: name.clone(),
        })
        .collect();
    threads.sort_by(|a, b| {
        (a.pid, natural_key(&a.name), a.tid).cmp(&(b.pid, natural_key(&b.name), b.tid))
    });
    let lane_of: BTreeMap<(u64, u64), usize> = threads
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.pid, t.tid), i))
        .collect();
    let mut trace = Trace {
        threads,
        cut,
        ..Trace::default()
    };
    // Flow arrows by id: where each begins (a wake) and ends (a poll).
    let mut flow_ends: BTreeMap<u64, (usize, f64)> = BTreeMap::new();
    let mut wake_flows: Vec<(usize, u64)> = Vec::new();
    // The wake an `s` event follows (an `s` after a spawn starts no line).
    let mut last_wake = None;
    for e in &events {
        let Some(&lane) = lane_of.get(&(int(e, "pid"), int(e, "tid"))) else {
            continue;
        };
        let (ts, dur) = (num(e, "ts"), num(e, "dur"));
        trace.end_us = trace.end_us.max(ts + dur);
        let name = e["name"].as_str().unwrap_or_default().to_string();
        let slice = |task: u64, detail: String| Slice {
            lane,
            ts,
            dur,
            task,
            name: name.clone(),
            detail,
        };
        match (e["ph"].as_str().unwrap_or_default(), e["cat"].as_str()) {
            // A wake: an instant, or a slice too short to see that the arrow starts from.
            ("i" | "X", Some("task")) if name == "wake" => {
                let task = arg(e, "task").and_then(|t| t.as_u64()).unwrap_or(0);
                let by = arg(e, "by").unwrap_or(Value::Null);
                let detail = format!("task {task} woken by {}", by.as_str().unwrap_or("?"));
                last_wake = Some(trace.wakes.len());
                trace.wakes.push(Wake {
                    mark: Mark { lane, ts, detail },
                    task,
                    poll: None,
                });
                continue;
            }
            // A spawn: likewise, an instant or a short slice (not a poll).
            ("i" | "X", Some("task")) if name == "spawn" => {
                trace.first_spawn_us = Some(trace.first_spawn_us.map_or(ts, |t: f64| t.min(ts)));
            }
            ("X", Some("task")) => {
                let task = arg(e, "task").and_then(|t| t.as_u64()).unwrap_or(0);
                let outcome = arg(e, "outcome").unwrap_or(Value::Null);
                let detail = format!("{:.1} µs, {}", dur, outcome.as_str().unwrap_or("?"));
                trace.polls.push(slice(task, detail));
            }
            ("X", Some("epoll")) if name == "epoll_wait" => {
                let events = arg(e, "events").and_then(|n| n.as_u64()).unwrap_or(0);
                trace
                    .waits
                    .push(slice(0, format!("{:.1} µs, {events} event(s)", dur)));
            }
            ("X", _) => trace.chores.push(slice(0, format!("{:.1} µs", dur))),
            ("i", Some("steal")) => {
                let tasks = arg(e, "tasks").and_then(|n| n.as_u64()).unwrap_or(0);
                let from = arg(e, "from_worker").and_then(|n| n.as_u64()).unwrap_or(0);
                let detail = format!("stole {tasks} task(s) from worker {from}");
                trace.steals.push(Mark { lane, ts, detail });
            }
            ("s", _) => {
                if let Some(wake) = last_wake {
                    wake_flows.push((wake, int(e, "id")));
                }
            }
            ("f", _) => {
                flow_ends.insert(int(e, "id"), (lane, ts));
            }
            _ => {}
        }
        last_wake = None;
    }
    // An `s` follows its wake (or spawn) in the file; only wakes get a line.
    for (wake, id) in wake_flows {
        if let (Some(w), Some(&end)) = (trace.wakes.get_mut(wake), flow_ends.get(&id)) {
            if w.poll.is_none() && w.mark.ts <= end.1 {
                w.poll = Some(end);
            }
        }
    }
    Ok(trace)
}

/// The events of a trace file, tolerating a missing `]` and a trailing comma, and whether a cut
/// last line was left out. ripple writes one record per line, so a record cut short is the
/// last line.
fn parse_events(text: &str) -> Result<(Vec<Value>, bool), String> {
    if text.trim().is_empty() {
        return Err(
            "the trace is empty (did the program run with RIPPLE_TRACE_FILE set, \
                    and did it build a runtime?)"
                .to_string(),
        );
    }
    let whole = events_of(text);
    if let Ok(events) = whole {
        return Ok((events, false));
    }
    let body = text.trim_end();
    if let Some(at) = body.rfind('\n') {
        if let Ok(events) = events_of(&body[..at]) {
            return Ok((events, true));
        }
    }
    whole.map(|events| (events, false))
}

/// The events of `text`, closed with `]` if it is not.
fn events_of(text: &str) -> Result<Vec<Value>, String> {
    let mut body = text.trim_end().to_string();
    if !body.ends_with(']') {
        if body.ends_with(',') {
            body.pop();
        }
        body.push(']');
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Array(events)) => Ok(events),
        Ok(_) => Err("a trace file is a JSON array of events".to_string()),
        Err(err) => Err(format!("the trace is not JSON: {err}")),
    }
}

/// A name's sort key in which runs of digits compare as numbers: `worker 2` before `worker 10`.
fn natural_key(name: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            // A run too long for a u64 sorts after every shorter number, by its text.
            let number = rest[..digits].parse().unwrap_or(u64::MAX);
            key.push((number, rest[..digits].to_string()));
            rest = &rest[digits..];
        } else {
            let text = rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
            key.push((0, rest[..text].to_string()));
            rest = &rest[text..];
        }
    }
    key
}

/// The height of a lane, in pixels.
const LANE: f64 = 26.0;
/// The width of the lane labels, on the left.
const LABEL: f64 = 170.0;
/// Space above the lanes (the title).
const TOP: f64 = 28.0;

/// A task's colour: spread round the hue circle by the golden angle, so neighbours differ.
fn colour(task: u64) -> String {
    if task == 0 {
        return "#5b7083".to_string();
    }
    format!("hsl({:.0},65%,52%)", (task as f64 * 137.508) % 360.0)
}

/// A tick step near `span / 8` from 1, 2, 5 × 10^k.
fn tick_step(span: f64) -> f64 {
    let raw = span / 8.0;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * power)
}

/// Draws `trace` as an SVG document.
pub fn render(trace: &Trace, options: &Options) -> String {
    let origin = match options.from_first_spawn {
        true => trace.first_spawn_us.unwrap_or(0.0),
        false => 0.0,
    };
    let from = options
        .from_ms
        .map_or(0.0, |ms| origin + ms * 1000.0)
        .max(0.0);
    let to = options
        .to_ms
        .map_or(trace.end_us, |ms| origin + ms * 1000.0)
        .max(from + 1.0);
    let plot = (options.width - LABEL - 10.0).max(100.0);
    let x = |us: f64| LABEL + (us.clamp(from, to) - from) / (to - from) * plot;
    let lane_y = |lane: usize| TOP + lane as f64 * LANE;
    let visible = |ts: f64, dur: f64| ts + dur >= from && ts <= to;
    let lanes_end = lane_y(trace.threads.len());

    // The legend: each task drawn in the window, by its first poll's name.
    let mut tasks: BTreeMap<u64, &str> = BTreeMap::new();
    for poll in trace.polls.iter().filter(|p| visible(p.ts, p.dur)) {
        tasks.entry(poll.task).or_insert(&poll.name);
    }
    const LEGEND_MAX: usize = 24;
    let legend_rows = tasks.len().min(LEGEND_MAX).div_ceil(3) + 1;
    let height = lanes_end + 40.0 + legend_rows as f64 * 16.0 + 10.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {w} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">",
        w = options.width
    );
    let _ = writeln!(
        svg,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"8\" y=\"18\" \
         font-size=\"13\">ripple timeline, {:.3} ms to {:.3} ms</text>",
        from / 1000.0,
        to / 1000.0
    );
    for (i, thread) in trace.threads.iter().enumerate() {
        let y = lane_y(i);
        let fill = if i % 2 == 0 { "#f6f6f6" } else { "#ffffff" };
        let _ = writeln!(
            svg,
            "<g class=\"lane\"><rect x=\"0\" y=\"{y}\" width=\"{w}\" height=\"{LANE}\" \
             fill=\"{fill}\"/><text x=\"6\" y=\"{ty}\">{name}</text></g>",
            w = options.width,
            ty = y + LANE / 2.0 + 4.0,
            name = xml_escape(&thread.name),
        );
    }
    // Boxes, lane by lane: a box narrower than a pixel that starts where the last one of the
    // same colour ended is merged into it, so that a busy second stays a small file.
    let mut draw = |slices: &mut dyn Iterator<Item = &Slice>, fill: &dyn Fn(&Slice) -> String| {
        let mut last: Vec<Option<(f64, f64, String, String)>> = vec![None; trace.threads.len()];
        let flush = |svg: &mut String, lane: usize, rect: (f64, f64, String, String)| {
            let (x0, x1, fill, title) = rect;
            let _ = writeln!(
                svg,
                "<rect x=\"{x0:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{fill}\">\
                 <title>{}</title></rect>",
                lane_y(lane) + 4.0,
                (x1 - x0).max(0.6),
                LANE - 8.0,
                xml_escape(&title)
            );
        };
        for s in slices.filter(|s| visible(s.ts, s.dur)) {
            let (x0, x1, f) = (x(s.ts), x(s.ts + s.dur), fill(s));
            let title = format!("{}: {}", s.name, s.detail);
            match &mut last[s.lane] {
                Some(prev) if x1 - x0 < 1.0 && x0 - prev.1 < 0.5 && prev.2 == f => prev.1 = x1,
                slot => {
                    if let Some(prev) = slot.replace((x0, x1, f, title)) {
                        flush(&mut svg, s.lane, prev);
                    }
                }
            }
        }
        for (lane, rect) in last.into_iter().enumerate() {
            if let Some(rect) = rect {
                flush(&mut svg, lane, rect);
            }
        }
    };
    draw(&mut trace.waits.iter(), &|_| "#d8d8d8".to_string());
    draw(&mut trace.chores.iter(), &|_| "#606060".to_string());
    draw(&mut trace.polls.iter(), &|s| colour(s.task));
    // Wakes: a triangle above the waking lane, and a line to a poll on another lane.
    for wake in trace.wakes.iter().filter(|w| visible(w.mark.ts, 0.0)) {
        let (wx, wy) = (x(wake.mark.ts), lane_y(wake.mark.lane) + 1.0);
        if let Some((lane, ts)) = wake.poll.filter(|&(lane, _)| lane != wake.mark.lane) {
            let _ = writeln!(
                svg,
                "<line x1=\"{wx:.2}\" y1=\"{wy:.1}\" x2=\"{:.2}\" y2=\"{:.1}\" stroke=\"{}\" \
                 stroke-width=\"0.8\" opacity=\"0.6\"/>",
                x(ts),
                lane_y(lane) + LANE / 2.0,
                colour(wake.task)
            );
        }
        let _ = writeln!(
            svg,
            "<path d=\"M{:.2} {wy:.1} l3 0 l-3 5 l-3 -5 z\" fill=\"#e08a00\"><title>{}</title></path>",
            wx,
            xml_escape(&wake.mark.detail)
        );
    }
    for steal in trace.steals.iter().filter(|s| visible(s.ts, 0.0)) {
        let (sx, sy) = (x(steal.ts), lane_y(steal.lane) + LANE - 5.0);
        let _ = writeln!(
            svg,
            "<path d=\"M{sx:.2} {:.1} l4 4 l-4 4 l-4 -4 z\" fill=\"#d0021b\"><title>{}</title></path>",
            sy - 4.0,
            xml_escape(&steal.detail)
        );
    }
    // The time axis.
    let step = tick_step(to - from);
    let _ = writeln!(
        svg,
        "<line x1=\"{LABEL}\" y1=\"{lanes_end}\" x2=\"{:.1}\" y2=\"{lanes_end}\" stroke=\"black\"/>",
        LABEL + plot
    );
    let mut tick = (from / step).ceil() * step;
    while tick <= to {
        let tx = x(tick);
        let _ = writeln!(
            svg,
            "<line x1=\"{tx:.2}\" y1=\"{lanes_end}\" x2=\"{tx:.2}\" y2=\"{:.1}\" stroke=\"black\"/>\
             <text x=\"{tx:.2}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            lanes_end + 4.0,
            lanes_end + 16.0,
            format_ms(tick / 1000.0, step / 1000.0)
        );
        tick += step;
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">ms</text>",
        LABEL + plot,
        lanes_end + 28.0
    );
    // The legend: the marks, then the tasks.
    let ly = lanes_end + 44.0;
    let _ = writeln!(
        svg,
        "<rect x=\"8\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"#d8d8d8\"/>\
         <text x=\"26\" y=\"{ly:.1}\">epoll wait</text>\
         <rect x=\"98\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"#606060\"/>\
         <text x=\"116\" y=\"{ly:.1}\">timers</text>\
         <path d=\"M222 {:.1} l3 0 l-3 5 l-3 -5 z\" fill=\"#e08a00\"/>\
         <text x=\"230\" y=\"{ly:.1}\">wake</text>\
         <path d=\"M280 {:.1} l4 4 l-4 4 l-4 -4 z\" fill=\"#d0021b\"/>\
         <text x=\"290\" y=\"{ly:.1}\">steal</text>",
        ly - 9.0,
        ly - 9.0,
        ly - 8.0,
        ly - 9.0,
    );
    let column = (options.width - 16.0) / 3.0;
    for (i, (&task, name)) in tasks.iter().take(LEGEND_MAX).enumerate() {
        let (cx, cy) = (
            8.0 + (i % 3) as f64 * column,
            ly + 16.0 * (1 + i / 3) as f64,
        );
        let _ = writeln!(
            svg,
            "<rect x=\"{cx:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{cy:.1}\">{}</text>",
            cy - 9.0,
            colour(task),
            cx + 18.0,
            xml_escape(name)
        );
    }
    if tasks.len() > LEGEND_MAX {
        let _ = writeln!(
            svg,
            "<text x=\"8\" y=\"{:.1}\">... and {} more tasks</text>",
            ly + 16.0 * (1 + LEGEND_MAX.div_ceil(3)) as f64,
            tasks.len() - LEGEND_MAX
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A tick label: as many decimals as the step needs.
fn format_ms(ms: f64, step_ms: f64) -> String {
    let decimals = if step_ms >= 1.0 {
        0
    } else {
        (-step_ms.log10()).ceil() as usize
    };
    format!("{ms:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"[
{"ph":"M","name":"thread_name","pid":1,"tid":1,"ts":0,"args":{"name":"worker 0"}},
{"ph":"M","name":"thread_name","pid":1,"tid":2,"ts":0,"args":{"name":"worker 1"}},
{"ph":"X","name":"spawn","cat":"task","pid":1,"tid":2,"ts":0,"dur":0.001,"args":{"task":3}},
{"ph":"s","name":"wake","cat":"task","pid":1,"tid":2,"ts":0,"id":6},
{"ph":"X","name":"epoll_wait","cat":"epoll","pid":1,"tid":1,"ts":0,"dur":100,"args":{"events":1}},
{"ph":"i","name":"wake","cat":"task","pid":1,"tid":1,"ts":101,"s":"t","args":{"task":3,"by":"reactor"}},
{"ph":"s","name":"wake","cat":"task","pid":1,"tid":1,"ts":101,"id":7},
{"ph":"i","name":"steal","cat":"steal","pid":1,"tid":2,"ts":150,"s":"t","args":{"from_worker":0,"tasks":1}},
{"ph":"X","name":"task 3 a.rs:1","cat":"task","pid":1,"tid":2,"ts":160,"dur":40,"args":{"task":3,"outcome":"ready"}},
{"ph":"f","name":"wake","cat":"task","pid":1,"tid":2,"ts":160,"id":7,"bp":"e"},
"#;

    #[test]
    fn a_trace_without_its_closing_bracket_parses_and_wakes_find_their_polls() {
        let trace = parse(TRACE).unwrap();
        assert_eq!(trace.threads.len(), 2);
        assert_eq!(trace.threads[1].name, "worker 1");
        assert_eq!(trace.polls.len(), 1, "a spawn and a wake are no polls");
        assert_eq!(trace.first_spawn_us, Some(0.0));
        assert_eq!(trace.waits.len(), 1);
        assert_eq!(trace.steals.len(), 1);
        assert_eq!(trace.wakes[0].poll, Some((1, 160.0)));
        assert_eq!(trace.end_us, 200.0);
    }

    #[test]
    fn the_drawing_has_a_lane_per_thread_and_a_window_leaves_out_what_is_outside() {
        let trace = parse(TRACE).unwrap();
        let all = render(&trace, &Options::default());
        assert_eq!(all.matches("class=\"lane\"").count(), 2);
        assert!(all.contains("task 3 a.rs:1: 40.0 µs, ready"));
        assert!(all.contains("stole 1 task(s) from worker 0"));
        let window = Options {
            from_ms: Some(0.0),
            to_ms: Some(0.12),
            ..Options::default()
        };
        let early = render(&trace, &window);
        assert!(
            !early.contains("task 3 a.rs:1: 40.0"),
            "the poll is after the window"
        );
        assert!(early.contains("event(s)"), "the wait is inside it");
    }

    #[test]
    fn an_empty_file_is_an_error_that_says_so() {
        let err = parse(" \n").unwrap_err();
        assert!(err.contains("empty"), "{err}");
        assert!(parse("hello").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn a_last_record_cut_short_is_left_out_and_said() {
        let whole = parse(TRACE).unwrap();
        assert!(!whole.cut);
        let cut = format!("{TRACE}{{\"ph\":\"X\",\"name\":\"task 4");
        let trace = parse(&cut).unwrap();
        assert!(trace.cut);
        assert_eq!(trace.polls.len(), whole.polls.len());
        // A cut anywhere else is not the writer's doing: an error.
        let broken = TRACE.replacen("\"dur\":100", "\"dur\":", 1);
        assert!(parse(&broken).is_err());
    }

    #[test]
    fn a_wake_drawn_as_a_short_slice_is_a_wake_not_a_poll() {
        let text = TRACE.replace(
            "{\"ph\":\"i\",\"name\":\"wake\",\"cat\":\"task\",\"pid\":1,\"tid\":1,\"ts\":101,\"s\":\"t\",",
            "{\"ph\":\"X\",\"name\":\"wake\",\"cat\":\"task\",\"pid\":1,\"tid\":1,\"ts\":101,\"dur\":0.001,",
        );
        assert_ne!(text, TRACE);
        let trace = parse(&text).unwrap();
        assert_eq!(trace.polls.len(), 1);
        assert_eq!(trace.wakes.len(), 1);
        assert_eq!(trace.wakes[0].poll, Some((1, 160.0)));
    }

    #[test]
    fn lanes_sort_by_number_within_a_name_and_odd_names_stay_valid_svg() {
        let mut text = String::from("[\n");
        for (tid, name) in [(1, "worker 10"), (2, "worker 9"), (3, "bell\\u0007 <b>")] {
            text.push_str(&format!(
                "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":{tid},\"ts\":0,\"args\":{{\"name\":\"{name}\"}}}},\n"
            ));
        }
        let trace = parse(&text).unwrap();
        let names: Vec<&str> = trace.threads.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["bell\u{7} <b>", "worker 9", "worker 10"]);
        let svg = render(&trace, &Options::default());
        assert!(svg.contains("bell\u{FFFD} &lt;b&gt;"));
        assert!(!svg.contains('\u{7}'));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(tick_step(1000.0), 200.0);
        assert_eq!(tick_step(7.0), 1.0);
        assert_eq!(format_ms(0.25, 0.05), "0.25");
        assert_eq!(format_ms(12.0, 5.0), "12");
    }
}

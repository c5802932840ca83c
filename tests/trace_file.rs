//! The trace file (`RIPPLE_TRACE_FILE`, `Builder::trace_file`): a known program's trace parses,
//! its slices are where they can be, each wake comes before the poll it caused, the timeline
//! tool draws it, and the file survives its process being killed.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ripple::runtime::Builder;
use serde_json::Value;

/// A fresh path for a trace file, unique to the test `name`.
fn trace_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ripple-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary folder");
    dir.join(format!("{name}.json"))
}

/// The events of a trace file, which may lack its closing `]` and end with a comma, as the
/// format allows.
fn events(text: &str) -> Vec<Value> {
    let mut body = text.trim_end().to_string();
    if !body.ends_with(']') {
        assert!(body.ends_with("},"), "a record was cut: {:?}", tail(&body));
        body.pop();
        body.push(']');
    }
    match serde_json::from_str(&body) {
        Ok(Value::Array(events)) => events,
        other => panic!("not a JSON array: {other:?}"),
    }
}

/// The end of `text`, for messages.
fn tail(text: &str) -> &str {
    &text[text.len().saturating_sub(300)..]
}

/// A number field of an event.
fn num(event: &Value, key: &str) -> f64 {
    event[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no {key}: {event}"))
}

/// The known program: a few tasks that sleep, wake each other and finish, a blocking task, and
/// a wake from another thread. Returns the trace's text.
fn run_known_program(builder: &mut Builder, path: &Path) -> io::Result<String> {
    let rt = builder.trace_file(path).build()?;
    rt.block_on(async {
        let (tx, rx) = util::oneshot::<u32>();
        let (remote_tx, remote_rx) = util::oneshot::<u32>();
        let sleeper = ripple::spawn(async move {
            ripple::time::sleep(Duration::from_millis(5)).await;
            tx.send(1);
        });
        let waiter = ripple::spawn(async move { rx.await.unwrap_or(0) + 1 });
        let yielder = ripple::spawn(util::yield_times(3));
        let blocking =
            ripple::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(2)));
        // The other thread sends once the receiving task has been polled (so its waker is
        // registered, and the send wakes it), however late this busy machine runs that poll.
        let waiting = Arc::new(AtomicBool::new(false));
        let polled = waiting.clone();
        let from_afar = ripple::spawn(async move {
            let mut remote_rx = std::pin::pin!(remote_rx);
            std::future::poll_fn(move |cx| {
                let poll = remote_rx.as_mut().poll(cx);
                polled.store(true, Ordering::Release);
                poll
            })
            .await
        });
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !waiting.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            remote_tx.send(7);
        });
        sleeper.await.unwrap();
        assert_eq!(waiter.await.unwrap(), 2);
        yielder.await.unwrap();
        blocking.await.unwrap();
        assert_eq!(from_afar.await.unwrap(), Some(7));
    });
    drop(rt);
    std::fs::read_to_string(path)
}

/// Checks everything the issue asks of a closed trace; returns the events and the thread names.
fn check_trace(text: &str) -> (Vec<Value>, BTreeMap<u64, String>) {
    // Every runtime using the file was dropped: it is closed, and strict JSON.
    assert!(text.trim_end().ends_with(']'), "{}", tail(text));
    let events: Vec<Value> = match serde_json::from_str(text) {
        Ok(Value::Array(events)) => events,
        other => panic!("a closed trace is strict JSON: {other:?}"),
    };
    check_documented(&events);
    let mut names = BTreeMap::new();
    let mut lifetimes: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    let mut slices: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    let mut flow_starts: BTreeMap<u64, &Value> = BTreeMap::new();
    let mut flow_ends = Vec::new();
    for e in &events {
        let tid = e["tid"].as_u64().expect("every event has a tid");
        assert_eq!(e["pid"].as_u64(), Some(u64::from(std::process::id())));
        match e["ph"].as_str().expect("every event has a phase") {
            "M" if e["name"] == "thread_name" => {
                names.insert(tid, e["args"]["name"].as_str().unwrap().to_string());
            }
            "i" if e["name"] == "thread start" => {
                lifetimes
                    .entry(tid)
                    .or_default()
                    .push((num(e, "ts"), f64::INFINITY));
            }
            "i" if e["name"] == "thread end" => {
                let open = lifetimes.entry(tid).or_default().last_mut();
                let open = open.expect("a thread ends after it starts");
                assert_eq!(open.1, f64::INFINITY, "a thread ends once per start");
                open.1 = num(e, "ts");
            }
            "X" => slices.entry(tid).or_default().push(e),
            "s" => {
                let id = e["id"].as_u64().expect("a flow id is an integer");
                assert!(id < 1 << 53, "flow id {id} is exact in JSON");
                assert!(
                    flow_starts.insert(id, e).is_none(),
                    "flow {id} starts twice"
                );
            }
            "f" => flow_ends.push(e),
            _ => {}
        }
    }
    for (tid, slices) in &mut slices {
        let lives = &lifetimes[tid];
        for s in slices.iter() {
            let (ts, end) = (num(s, "ts"), num(s, "ts") + num(s, "dur"));
            assert!(
                lives
                    .iter()
                    .any(|&(start, stop)| start - SLACK <= ts && end <= stop + SLACK),
                "{s} on thread {tid} is outside its lifetimes {lives:?}"
            );
        }
        check_nesting(*tid, slices);
    }
    for f in flow_ends {
        check_arrow(f, &flow_starts, &slices);
    }
    (events, names)
}

/// One nanosecond of slack for the decimal microseconds.
const SLACK: f64 = 0.001;

/// Checks that the slices of one thread nest: one that begins inside another also ends inside
/// it (a wake during a poll), and none overlaps another part-way. Sorts `slices` by start.
fn check_nesting(tid: u64, slices: &mut [&Value]) {
    // Longer first among slices that start together, so that the outer one comes first.
    slices.sort_by(|a, b| {
        num(a, "ts")
            .total_cmp(&num(b, "ts"))
            .then(num(b, "dur").total_cmp(&num(a, "dur")))
    });
    let mut open: Vec<&Value> = Vec::new();
    for &s in slices.iter() {
        let (ts, end) = (num(s, "ts"), num(s, "ts") + num(s, "dur"));
        while open
            .last()
            .is_some_and(|o| num(o, "ts") + num(o, "dur") <= ts + SLACK)
        {
            open.pop();
        }
        if let Some(outer) = open.last() {
            assert!(
                end <= num(outer, "ts") + num(outer, "dur") + SLACK,
                "slices overlap part-way on thread {tid}: {outer} and {s}"
            );
        }
        open.push(s);
    }
}

/// Checks the arrow that ends at `f`: exactly one `s` has its id, earlier, at the start of the
/// 1 ns slice of a spawn or a wake on its thread; and `f` lies at the start of (or inside) a
/// poll, on its thread, of the task that was spawned or woken.
fn check_arrow(f: &Value, starts: &BTreeMap<u64, &Value>, slices: &BTreeMap<u64, Vec<&Value>>) {
    let id = f["id"].as_u64().expect("a flow id is an integer");
    let s = starts
        .get(&id)
        .unwrap_or_else(|| panic!("the poll of arrow {id} has no wake: {f}"));
    let (s_ts, f_ts) = (num(s, "ts"), num(f, "ts"));
    assert!(s_ts <= f_ts, "wake {s} after its poll {f}");
    let on = |e: &Value| &slices[&e["tid"].as_u64().unwrap()];
    let moment = on(s)
        .iter()
        .find(|m| {
            (m["name"] == "wake" || m["name"] == "spawn")
                && (num(m, "ts") - s_ts).abs() < SLACK / 2.0
                && num(m, "dur") > 0.0
        })
        .unwrap_or_else(|| panic!("arrow {s} starts in no spawn or wake slice"));
    let (runtime, task) = (&moment["args"]["runtime"], &moment["args"]["task"]);
    let poll = on(f).iter().find(|p| {
        is_poll(p)
            && num(p, "ts") - SLACK <= f_ts
            && f_ts <= num(p, "ts") + num(p, "dur") + SLACK
            && p["args"]["runtime"] == *runtime
            && p["args"]["task"] == *task
    });
    assert!(
        poll.is_some(),
        "arrow {f} ends in no poll of task {task} of runtime {runtime} (from {moment})"
    );
}

/// The keys an event may have at its top level, as the module docs describe them.
const TOP_LEVEL_KEYS: [&str; 11] = [
    "ph", "name", "cat", "pid", "tid", "ts", "dur", "s", "id", "bp", "args",
];

/// One row of the table of events in the trace file's module docs.
#[derive(Debug)]
struct Documented {
    /// The names an event of the row may have (`N` a number, `FILE:LINE` a place).
    names: Vec<String>,
    /// Its phases.
    phases: Vec<String>,
    /// Its category, if it has one.
    cat: Option<String>,
    /// The keys its `args` may have.
    args: BTreeSet<String>,
}

/// The table of events in `runtime/src/trace/file.rs`'s module docs, parsed.
fn documented() -> Vec<Documented> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src/trace/file.rs");
    let source = std::fs::read_to_string(&path).expect("the trace file's source");
    let rows: Vec<Documented> = source
        .lines()
        .filter_map(|line| line.strip_prefix("//! |"))
        // The header and the line under it.
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 6, "five cells in {row:?}");
            Documented {
                names: quoted(cells[0]),
                phases: quoted(cells[1]),
                cat: quoted(cells[2]).into_iter().next(),
                args: quoted(cells[4]).into_iter().collect(),
            }
        })
        .collect();
    assert!(rows.len() >= 10, "the table was found: {rows:?}");
    rows
}

/// The `quoted` words of a cell of the table, without those in parentheses (the values a key
/// takes, and notes).
fn quoted(cell: &str) -> Vec<String> {
    let (mut words, mut word) = (Vec::new(), String::new());
    let (mut in_code, mut depth) = (false, 0);
    for c in cell.chars() {
        match c {
            '`' => {
                if in_code && depth == 0 {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                in_code = !in_code;
            }
            c if in_code => word.push(c),
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
    }
    words
}

/// Whether an event's name fits a name of the table (`task N FILE:LINE`).
fn name_fits(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<&str>, Vec<&str>) =
        (pattern.split(' ').collect(), name.split(' ').collect());
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    pattern.len() == name.len()
        && pattern.iter().zip(&name).all(|(p, n)| match *p {
            "N" => number(n),
            "FILE:LINE" => n
                .rsplit_once(':')
                .is_some_and(|(file, line)| !file.is_empty() && number(line)),
            p => p == *n,
        })
}

/// Checks that every event is one the module docs list: its name and phase in a row, its
/// category that row's, and its arguments among the row's.
fn check_documented(events: &[Value]) {
    let rows = documented();
    for e in events {
        let event = e.as_object().expect("an event is an object");
        for key in event.keys() {
            assert!(TOP_LEVEL_KEYS.contains(&key.as_str()), "key {key} of {e}");
        }
        let name = e["name"].as_str().expect("every event has a name");
        let ph = e["ph"].as_str().expect("every event has a phase");
        let row = rows
            .iter()
            .find(|r| {
                r.phases.iter().any(|p| p == ph) && r.names.iter().any(|n| name_fits(n, name))
            })
            .unwrap_or_else(|| panic!("the module docs list no {ph:?} event named {name:?}: {e}"));
        assert_eq!(
            e.get("cat").and_then(Value::as_str),
            row.cat.as_deref(),
            "{e}"
        );
        if let Some(args) = e.get("args").and_then(Value::as_object) {
            for key in args.keys() {
                assert!(
                    row.args.contains(key),
                    "argument {key} of {e} is not in {row:?}"
                );
            }
        }
    }
}

/// Whether `e` is the slice of a poll (not the 1 ns slice of a spawn or a wake).
fn is_poll(e: &Value) -> bool {
    e["cat"] == "task" && e["ph"] == "X" && e["name"] != "wake" && e["name"] != "spawn"
}

/// What the known program must show whatever the flavour: its tasks' polls, named by where they
/// were spawned, wakes by a timer, a task, another thread and the yielder itself, and a
/// blocking thread's track.
fn check_known_program(events: &[Value], names: &BTreeMap<u64, String>) {
    let polls: Vec<&Value> = events.iter().filter(|e| is_poll(e)).collect();
    let here: BTreeSet<u64> = polls
        .iter()
        .filter(|p| {
            p["args"]["spawned_at"]
                .as_str()
                .is_some_and(|s| s.starts_with("tests/trace_file.rs:"))
        })
        .map(|p| p["args"]["task"].as_u64().unwrap())
        .collect();
    assert_eq!(
        here.len(),
        5,
        "five tasks spawned in this file were polled: {here:?}"
    );
    assert!(polls
        .iter()
        .all(|p| p["name"].as_str().unwrap().starts_with("task ") || p["name"] == "block_on"));
    let done = polls
        .iter()
        .filter(|p| p["args"]["outcome"] == "ready")
        .count();
    assert!(done >= 5, "each task finished: {done}");
    let wakes: Vec<&Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["name"] == "wake")
        .collect();
    let by: BTreeSet<&str> = wakes
        .iter()
        .map(|e| e["args"]["by"].as_str().unwrap())
        .collect();
    for who in ["timer", "task", "thread", "rescheduled"] {
        assert!(by.contains(who), "a wake by {who}: {by:?}");
    }
    for wake in &wakes {
        let args = &wake["args"];
        assert!(
            args.get("by_task").is_none()
                || (args["by"] == "task" && args["by_task"] != args["task"]),
            "a task that wakes itself is rescheduled, not woken by itself: {wake}"
        );
    }
    let rescheduled = wakes
        .iter()
        .filter(|e| e["args"]["by"] == "rescheduled")
        .count();
    assert!(
        rescheduled >= 3,
        "the yielder rescheduled itself three times: {rescheduled}"
    );
    assert!(
        events.iter().any(|e| e["ph"] == "f"),
        "polls are joined to the wakes that caused them"
    );
    assert!(events.iter().any(|e| e["name"] == "epoll_wait"));
    assert!(events.iter().any(|e| e["name"] == "timers"));
    assert!(names.values().any(|n| n == "blocking"), "{names:?}");
}

/// Draws the trace with the timeline tool and checks it has a lane per named thread.
fn check_timeline(text: &str, names: &BTreeMap<u64, String>) {
    let trace = ripple_tools::timeline::parse(text).expect("the tool reads the trace");
    let svg = ripple_tools::timeline::render(&trace, &Default::default());
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("class=\"lane\"").count(),
        names.len(),
        "{names:?}"
    );
    for name in names.values() {
        assert!(svg.contains(&format!(">{name}</text>")), "lane {name}");
    }
}

#[test]
fn a_current_thread_trace_parses_its_slices_nest_and_every_arrow_joins_a_wake_to_its_poll(
) -> io::Result<()> {
    let path = trace_path("current_thread");
    let text = run_known_program(&mut Builder::new_current_thread(), &path)?;
    let (events, names) = check_trace(&text);
    check_known_program(&events, &names);
    assert!(
        names.values().any(|n| n.ends_with("(current_thread)")),
        "{names:?}"
    );
    check_timeline(&text, &names);
    Ok(())
}

#[test]
fn a_multi_thread_trace_has_a_track_per_worker_and_the_same_properties() -> io::Result<()> {
    let path = trace_path("multi_thread");
    let text = run_known_program(Builder::new_multi_thread().worker_threads(2), &path)?;
    let (events, names) = check_trace(&text);
    check_known_program(&events, &names);
    for worker in ["worker 0", "worker 1"] {
        assert!(names.values().any(|n| n == worker), "{names:?}");
    }
    check_timeline(&text, &names);
    Ok(())
}

#[test]
fn two_runtimes_share_one_file_which_is_reopened_after_the_first_closes_it() -> io::Result<()> {
    let path = trace_path("shared");
    let first = run_known_program(&mut Builder::new_current_thread(), &path)?;
    let second = run_known_program(&mut Builder::new_current_thread(), &path)?;
    assert!(second.len() > first.len(), "the second runtime appends");
    let (events, _) = check_trace(&second);
    let runtimes: BTreeSet<u64> = events
        .iter()
        .filter_map(|e| e["args"]["runtime"].as_u64())
        .collect();
    assert_eq!(runtimes.len(), 2, "{runtimes:?}");
    let closes = events
        .iter()
        .filter(|e| e["name"] == "trace closed")
        .count();
    assert_eq!(closes, 2, "closed once per last runtime");
    Ok(())
}

#[test]
fn a_trace_file_that_cannot_be_opened_is_reported_and_the_runtime_runs_without_it() -> io::Result<()>
{
    let path = Path::new("/nonexistent-folder/ripple/trace.json");
    let rt = Builder::new_current_thread().trace_file(path).build()?;
    assert_eq!(
        rt.block_on(async { ripple::spawn(async { 6 * 7 }).await.unwrap() }),
        42
    );
    assert!(!path.exists());
    Ok(())
}

#[test]
fn past_the_size_cap_the_file_says_so_once_and_tracing_stops() -> io::Result<()> {
    util::in_child_process(
        "past_the_size_cap_the_file_says_so_once_and_tracing_stops",
        None,
        || {
            // This child process runs only this test, on one thread.
            std::env::set_var("RIPPLE_TRACE_FILE_MAX_MB", "1");
            let path = trace_path("capped");
            let rt = Builder::new_current_thread().trace_file(&path).build()?;
            rt.block_on(async {
                ripple::spawn(util::yield_times(20_000)).await.unwrap();
            });
            assert_eq!(rt.metrics().polls, 20_001, "the runtime ran on");
            // The runtime lives on, but the capped file is closed already.
            let file = std::fs::canonicalize(&path)?;
            let open = std::fs::read_dir("/proc/self/fd")?
                .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .any(|target| target == file);
            assert!(!open, "the capped file is still open");
            drop(rt);
            let text = std::fs::read_to_string(&path)?;
            assert!(text.len() <= 1024 * 1024 + 1024, "{} bytes", text.len());
            let events = events(&text);
            let stops = events
                .iter()
                .filter(|e| e["name"] == "trace stopped")
                .count();
            assert_eq!(stops, 1);
            check_documented(&events);
            assert_eq!(events.last().unwrap()["name"], "trace stopped");
            assert_eq!(events.last().unwrap()["args"]["max_mb"], 1);
            Ok(())
        },
    )
}

#[test]
fn the_trace_file_of_a_killed_server_is_valid_up_to_its_last_park() -> io::Result<()> {
    let path = trace_path("killed");
    let path_str = path.to_str().unwrap();
    let server = util::Example::start("echo", &[], &[("RIPPLE_TRACE_FILE", path_str)], None)?;
    let mut client = TcpStream::connect(server.addr)?;
    client.set_read_timeout(Some(util::LIMIT))?;
    let mut buf = [0; 5];
    // Each exchange ends in a park, which writes the server's records out.
    // Generous: the machine may be busy.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        client.write_all(b"hello")?;
        client.read_exact(&mut buf)?;
        let text = std::fs::read_to_string(&path)?;
        if text.contains("examples/echo.rs") && text.contains("\"epoll_wait\"") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no polls in the file: {}",
            tail(&text)
        );
    };
    assert!(
        !text.trim_end().ends_with(']'),
        "the server is still running"
    );
    // Dropping the example kills it with SIGKILL: no destructor, no closing bracket.
    drop(server);
    let killed = std::fs::read_to_string(&path)?;
    assert!(killed.len() >= text.len());
    assert!(!killed.trim_end().ends_with(']'));
    // A kill in the middle of a write longer than a page may cut its last line (Linux checks
    // for a fatal signal between pages); a reader drops that line, as the timeline tool does.
    let whole = match killed.trim_end().ends_with("},") {
        true => &killed[..],
        false => &killed[..killed.trim_end().rfind('\n').unwrap_or(0)],
    };
    let events = events(whole);
    let polls = events
        .iter()
        .filter(|e| {
            e["ph"] == "X"
                && e["args"]["spawned_at"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("examples/echo.rs"))
        })
        .count();
    assert!(polls >= 1, "the echo task's polls are there");
    check_documented(&events);
    let _ = std::fs::remove_file(&path);
    Ok(())
}

#[test]
fn each_block_on_call_and_each_nested_runtime_gets_arrows_of_its_own() -> io::Result<()> {
    let path = trace_path("block_on_calls");
    let rt = Builder::new_current_thread().trace_file(&path).build()?;
    for _ in 0..3 {
        rt.block_on(async {
            // A timer wakes the block_on future, then a task does.
            ripple::time::sleep(Duration::from_millis(1)).await;
            ripple::spawn(util::yield_times(2)).await.unwrap();
        });
    }
    // A runtime inside a blocking task of the first, on the same file.
    let inner_path = path.clone();
    rt.block_on(async move {
        ripple::task::spawn_blocking(move || -> io::Result<()> {
            let inner = Builder::new_current_thread()
                .trace_file(&inner_path)
                .build()?;
            inner.block_on(async {
                ripple::time::sleep(Duration::from_millis(1)).await;
                ripple::spawn(async {}).await.unwrap();
            });
            Ok(())
        })
        .await
        .unwrap()
    })?;
    drop(rt);
    let (events, _) = check_trace(&std::fs::read_to_string(&path)?);
    // Every call's first wake is its wake 1: only the call's own number tells them apart.
    let answered: Vec<u64> = events
        .iter()
        .filter(|e| e["ph"] == "f")
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    let distinct: BTreeSet<&u64> = answered.iter().collect();
    assert_eq!(distinct.len(), answered.len(), "two polls answer one arrow");
    let block_on_polls = events
        .iter()
        .filter(|e| e["name"] == "block_on" && e["args"]["wake"] != 0)
        .map(|e| e["args"]["runtime"].as_u64().unwrap())
        .collect::<Vec<_>>();
    assert!(
        block_on_polls.len() >= 2 * 4 && block_on_polls.contains(&2),
        "the block_on futures of both runtimes were woken and polled: {block_on_polls:?}"
    );
    Ok(())
}

#[test]
fn the_arrows_of_many_runtimes_in_turn_on_one_file_never_share_an_id() -> io::Result<()> {
    // Task ids start at 1 in every runtime: the file must number the arrows itself.
    let path = trace_path("many_runtimes");
    for _ in 0..40 {
        let rt = Builder::new_current_thread().trace_file(&path).build()?;
        rt.block_on(async {
            ripple::spawn(util::yield_times(1)).await.unwrap();
        });
    }
    let (events, _) = check_trace(&std::fs::read_to_string(&path)?);
    let runtimes: BTreeSet<u64> = events
        .iter()
        .filter(|e| e["name"] == "spawn")
        .map(|e| e["args"]["runtime"].as_u64().unwrap())
        .collect();
    assert_eq!(runtimes.len(), 40, "a spawn from each runtime");
    let started: Vec<u64> = events
        .iter()
        .filter(|e| e["ph"] == "s")
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    let distinct: BTreeSet<&u64> = started.iter().collect();
    assert_eq!(
        distinct.len(),
        started.len(),
        "two arrows start with one id"
    );
    Ok(())
}

#[test]
fn a_task_woken_by_another_thread_during_its_poll_is_woken_by_that_thread() -> io::Result<()> {
    // The poll hands its waker to a thread and waits until that thread has woken it: the wake
    // happens while the task runs, and belongs to the thread, not to the task.
    for flavour in ["current_thread", "multi_thread"] {
        let path = trace_path(&format!("woken_while_running_{flavour}"));
        let mut builder = match flavour {
            "current_thread" => Builder::new_current_thread(),
            _ => Builder::new_multi_thread(),
        };
        let rt = builder.trace_file(&path).build()?;
        rt.block_on(async {
            let mut woke = false;
            ripple::spawn(std::future::poll_fn(move |cx| {
                if woke {
                    return std::task::Poll::Ready(());
                }
                woke = true;
                let waker = cx.waker().clone();
                std::thread::spawn(move || waker.wake()).join().unwrap();
                std::task::Poll::Pending
            }))
            .await
            .unwrap();
        });
        drop(rt);
        let (events, _) = check_trace(&std::fs::read_to_string(&path)?);
        let by: Vec<&str> = events
            .iter()
            .filter(|e| e["ph"] == "X" && e["name"] == "wake" && e["args"]["task"] != 0)
            .map(|e| e["args"]["by"].as_str().unwrap())
            .collect();
        assert_eq!(by, ["thread"], "{flavour}");
    }
    Ok(())
}

#[test]
fn a_block_on_future_that_panics_keeps_its_slice_and_leaves_no_poll_behind() -> io::Result<()> {
    let path = trace_path("block_on_panics");
    let rt = Builder::new_current_thread().trace_file(&path).build()?;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { panic!("a block_on future that panics, on purpose") })
    }));
    assert!(caught.is_err());
    // The next call's future is woken by the timers, on the thread the panic left.
    rt.block_on(ripple::time::sleep(Duration::from_millis(1)));
    drop(rt);
    let (events, _) = check_trace(&std::fs::read_to_string(&path)?);
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "block_on" && e["args"]["outcome"] == "panicked"),
        "the poll that panicked has its slice"
    );
    let by: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["name"] == "wake" && e["args"]["task"] == 0)
        .map(|e| e["args"]["by"].as_str().unwrap())
        .collect();
    assert_eq!(
        by,
        ["timer"],
        "the thread is polling nothing when the timer fires"
    );
    Ok(())
}

#[test]
fn one_file_named_two_ways_or_through_a_symlink_is_opened_once() -> io::Result<()> {
    let path = trace_path("two_names");
    let first = Builder::new_current_thread().trace_file(&path).build()?;
    first.block_on(async { ripple::spawn(async {}).await.unwrap() });
    let dir = path.parent().unwrap();
    let dotted = dir.join(".").join("two_names.json");
    let link = dir.join("two_names_link.json");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path, &link)?;
    // Opening the file again by another name would have emptied it under the first runtime.
    let second = Builder::new_current_thread().trace_file(&dotted).build()?;
    let third = Builder::new_current_thread().trace_file(&link).build()?;
    for rt in [&second, &third, &first] {
        rt.block_on(async { ripple::spawn(async {}).await.unwrap() });
    }
    drop((first, second, third));
    let text = std::fs::read_to_string(&path)?;
    assert_eq!(text.matches("process_name").count(), 1, "one opening");
    let (events, _) = check_trace(&text);
    let runtimes: BTreeSet<u64> = events
        .iter()
        .filter_map(|e| e["args"]["runtime"].as_u64())
        .collect();
    assert_eq!(runtimes, BTreeSet::from([1, 2, 3]));
    let closes = events
        .iter()
        .filter(|e| e["name"] == "trace closed")
        .count();
    assert_eq!(closes, 1, "closed once, by the last of the three");
    Ok(())
}

#[test]
fn a_pid_in_the_path_is_replaced_by_the_process_id() -> io::Result<()> {
    let template = trace_path("pid-{pid}");
    let rt = Builder::new_current_thread()
        .trace_file(&template)
        .build()?;
    rt.block_on(async { ripple::spawn(async {}).await.unwrap() });
    drop(rt);
    let path = trace_path(&format!("pid-{}", std::process::id()));
    assert!(!template.exists());
    check_trace(&std::fs::read_to_string(&path)?);
    Ok(())
}

/// A resource limit the tests lower.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// Open file descriptors.
    Files,
    /// The size of a file the process writes.
    FileSize,
}

impl Limit {
    /// Its number (glibc and musl give it different types: callers cast it with `as _`).
    fn libc(self) -> libc::c_int {
        match self {
            Limit::Files => libc::RLIMIT_NOFILE as _,
            Limit::FileSize => libc::RLIMIT_FSIZE as _,
        }
    }
}

/// Sets the soft limit of `resource` to `soft`; returns the limits before.
fn set_soft_limit(resource: Limit, soft: u64) -> io::Result<libc::rlimit> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes to the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(resource.libc() as _, &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let new = libc::rlimit {
        rlim_cur: soft.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given; lowering a soft limit is always allowed.
    if unsafe { libc::setrlimit(resource.libc() as _, &new) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// Puts back the limits `old` of `resource`, from [`set_soft_limit`].
fn restore_limit(resource: Limit, old: libc::rlimit) {
    // SAFETY: setrlimit reads the struct it is given; the soft limit goes back to where it was,
    // at most the hard limit, which never changed.
    let restored = unsafe { libc::setrlimit(resource.libc() as _, &old) };
    assert_eq!(restored, 0, "{}", io::Error::last_os_error());
}

/// Runs `body` with this process's standard error going to a file, and returns what was written
/// there. For a child process that runs one test: it takes descriptor 2 for a while.
fn stderr_of(body: impl FnOnce() -> io::Result<()>) -> io::Result<String> {
    let path = trace_path("stderr").with_extension("txt");
    let capture = File::create(&path)?;
    // SAFETY: dup copies a descriptor this process owns (its standard error).
    let saved = unsafe { libc::dup(2) };
    assert!(saved >= 0, "{}", io::Error::last_os_error());
    // SAFETY: both descriptors are open; descriptor 2 now writes to `capture`.
    assert!(unsafe { libc::dup2(capture.as_raw_fd(), 2) } >= 0);
    let result = body();
    // SAFETY: `saved` is the old standard error, put back and then closed; nothing else uses it.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    result?;
    std::fs::read_to_string(&path)
}

#[test]
fn a_runtime_whose_build_fails_after_opening_the_file_still_closes_it() -> io::Result<()> {
    util::in_child_process(
        "a_runtime_whose_build_fails_after_opening_the_file_still_closes_it",
        None,
        || {
            let path = trace_path("failed_build");
            // The lowest free descriptor: the trace file takes it, and leaves none for epoll.
            let free = File::open("/dev/null")?.as_raw_fd() as u64;
            let old = set_soft_limit(Limit::Files, free + 1)?;
            let built = Builder::new_current_thread().trace_file(&path).build();
            restore_limit(Limit::Files, old);
            let err = built.expect_err("no descriptor is left for epoll");
            assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
            let (events, _) = check_trace(&std::fs::read_to_string(&path)?);
            assert_eq!(events.last().unwrap()["name"], "trace closed");
            Ok(())
        },
    )
}

#[test]
fn a_write_that_fails_is_cut_back_to_the_last_whole_record_and_tracing_stops() -> io::Result<()> {
    util::in_child_process(
        "a_write_that_fails_is_cut_back_to_the_last_whole_record_and_tracing_stops",
        None,
        || {
            let path = trace_path("failed_write");
            // At the file size limit a write stops part-way, then fails with EFBIG (SIGXFSZ,
            // which would kill the process instead, is ignored), as on a full disk.
            const LIMIT: u64 = 100_007;
            // SAFETY: ignoring a signal installs no handler; this child runs only this test.
            let ignored = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            assert_ne!(ignored, libc::SIG_ERR);
            let stderr = stderr_of(|| {
                let old = set_soft_limit(Limit::FileSize, LIMIT)?;
                let rt = Builder::new_current_thread().trace_file(&path).build()?;
                rt.block_on(async {
                    ripple::spawn(util::yield_times(5_000)).await.unwrap();
                });
                assert_eq!(rt.metrics().polls, 5_001, "the runtime ran on");
                drop(rt);
                restore_limit(Limit::FileSize, old);
                Ok(())
            })?;
            let text = std::fs::read_to_string(&path)?;
            assert!(text.len() as u64 <= LIMIT, "{} bytes", text.len());
            // `events` fails on a cut record.
            let events = events(&text);
            check_documented(&events);
            assert!(events.iter().all(|e| e["name"] != "trace closed"));
            let said = stderr.matches("cannot write the trace file").count();
            assert_eq!(said, 1, "said once: {stderr}");
            Ok(())
        },
    )
}

#[test]
fn a_size_cap_that_is_not_a_number_is_said_once_and_the_default_used() -> io::Result<()> {
    util::in_child_process(
        "a_size_cap_that_is_not_a_number_is_said_once_and_the_default_used",
        None,
        || {
            std::env::set_var("RIPPLE_TRACE_FILE_MAX_MB", "lots");
            let stderr = stderr_of(|| {
                for name in ["bad_cap_1", "bad_cap_2"] {
                    let rt = Builder::new_current_thread()
                        .trace_file(trace_path(name))
                        .build()?;
                    rt.block_on(async { ripple::spawn(async {}).await.unwrap() });
                }
                Ok(())
            })?;
            let lines: Vec<&str> = stderr
                .lines()
                .filter(|line| line.contains("RIPPLE_TRACE_FILE_MAX_MB"))
                .collect();
            assert_eq!(lines.len(), 1, "said once: {stderr}");
            assert!(
                lines[0].contains("\"lots\"") && lines[0].contains("256 MiB"),
                "names the value and the default: {}",
                lines[0]
            );
            Ok(())
        },
    )
}

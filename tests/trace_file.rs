//! The trace file (`RIPPLE_TRACE_FILE`, `Builder::trace_file`): a known program's trace parses,
//! its slices are where they can be, each wake comes before the poll it caused, the timeline
//! tool draws it, and the file survives its process being killed.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
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
        let from_afar = ripple::spawn(remote_rx);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(3));
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

/// Checks everything the issue asks of a trace; returns the events and the thread names.
fn check_trace(text: &str) -> (Vec<Value>, BTreeMap<u64, String>) {
    // Every runtime using the file was dropped: it is closed, and strict JSON.
    assert!(text.trim_end().ends_with(']'), "{}", tail(text));
    let events: Vec<Value> = match serde_json::from_str(text) {
        Ok(Value::Array(events)) => events,
        other => panic!("a closed trace is strict JSON: {other:?}"),
    };
    let mut names = BTreeMap::new();
    let mut lifetimes: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    let mut slices: BTreeMap<u64, Vec<(f64, f64, String)>> = BTreeMap::new();
    let mut flow_starts: BTreeMap<u64, f64> = BTreeMap::new();
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
            "X" => slices.entry(tid).or_default().push((
                num(e, "ts"),
                num(e, "dur"),
                e["name"].as_str().unwrap().to_string(),
            )),
            "s" => {
                let id = e["id"].as_u64().expect("a flow id is an integer");
                assert!(
                    flow_starts.insert(id, num(e, "ts")).is_none(),
                    "flow {id} twice"
                );
            }
            "f" => flow_ends.push((e["id"].as_u64().unwrap(), num(e, "ts"))),
            _ => {}
        }
    }
    // One nanosecond of slack for the decimal microseconds.
    let slack = 0.001;
    for (tid, slices) in &mut slices {
        let lives = &lifetimes[tid];
        for (ts, dur, name) in slices.iter() {
            assert!(
                lives
                    .iter()
                    .any(|&(start, end)| start - slack <= *ts && ts + dur <= end + slack),
                "{name} at {ts} (+{dur}) on thread {tid} is outside its lifetimes {lives:?}"
            );
        }
        slices.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in slices.windows(2) {
            assert!(
                pair[0].0 + pair[0].1 <= pair[1].0 + slack,
                "slices overlap on thread {tid}: {pair:?}"
            );
        }
    }
    assert!(
        !flow_ends.is_empty(),
        "polls are joined to the wakes that caused them"
    );
    for (id, ts) in flow_ends {
        let woken = flow_starts
            .get(&id)
            .unwrap_or_else(|| panic!("poll {id} has no wake"));
        assert!(*woken <= ts, "wake {id} at {woken} after its poll at {ts}");
    }
    (events, names)
}

/// What the known program must show whatever the flavour: its tasks' polls, named by where they
/// were spawned, wakes by a timer, a task and another thread, and a blocking thread's track.
fn check_known_program(events: &[Value], names: &BTreeMap<u64, String>) {
    let polls: Vec<&Value> = events
        .iter()
        .filter(|e| e["cat"] == "task" && e["ph"] == "X")
        .collect();
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
    let by: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["ph"] == "i" && e["name"] == "wake")
        .map(|e| e["args"]["by"].as_str().unwrap())
        .collect();
    for who in ["timer", "task", "thread"] {
        assert!(by.contains(who), "a wake by {who}: {by:?}");
    }
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
fn a_current_thread_trace_parses_its_slices_never_overlap_and_each_wake_precedes_its_poll(
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
            drop(rt);
            let text = std::fs::read_to_string(&path)?;
            assert!(text.len() <= 1024 * 1024 + 1024, "{} bytes", text.len());
            let events = events(&text);
            let stops = events
                .iter()
                .filter(|e| e["name"] == "trace stopped")
                .count();
            assert_eq!(stops, 1);
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
    let deadline = Instant::now() + util::LIMIT;
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
    let events = events(&killed);
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
    let _ = std::fs::remove_file(&path);
    Ok(())
}

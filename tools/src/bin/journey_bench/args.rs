//! The command line: which servers to measure, and how long each part of a cell lasts.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use ripple_tools::Result;

/// One server of the journey.
pub struct Model {
    /// The example that is the server (`cargo build --release --example NAME`).
    pub example: String,
    /// Its name in the report's tables and charts.
    pub label: String,
    /// What limits how many clients it serves at once: said first when some of them starve.
    pub limit: Option<&'static str>,
}

impl Model {
    /// The eight servers, in the order the teaching documents tell them.
    fn journey() -> Vec<Model> {
        let model = |example: &str, label: &str, limit| Model {
            example: example.into(),
            label: label.into(),
            limit,
        };
        vec![
            model(
                "journey_blocking",
                "1 blocking",
                Some("serves one client at a time"),
            ),
            model("journey_fork", "2 fork", None),
            model(
                "journey_thread_per_connection",
                "3 thread per connection",
                None,
            ),
            model(
                "journey_thread_pool",
                "4 thread pool (8)",
                Some("8 workers serve 8 clients at a time"),
            ),
            model("journey_busy_poll", "5 busy poll", None),
            model("journey_event_loop", "6 event loop", None),
            model("journey_tomcat_nio", "7 Tomcat NIO", None),
            model("journey_ripple", "8 ripple", None),
        ]
    }

    /// The journey's model called `example`, or a plain one for any other example.
    fn named(example: &str) -> Model {
        Model::journey()
            .into_iter()
            .find(|m| m.example == example)
            .unwrap_or_else(|| Model {
                example: example.into(),
                label: example.into(),
                limit: None,
            })
    }
}

/// The command line.
pub struct Args {
    /// `--quick`: shorter windows.
    pub quick: bool,
    /// `--models a,b`: the servers to measure (default: the journey).
    pub models: Vec<Model>,
    /// Whether `--models` was given: the run measures only some servers.
    pub partial: bool,
    /// `--out DIR`: where the report goes.
    pub out: Option<PathBuf>,
}

impl Args {
    /// Parses `[--quick] [--models NAME,NAME...] [--out DIR]`.
    pub fn parse() -> Result<Args> {
        let mut args = Args {
            quick: false,
            models: Model::journey(),
            partial: false,
            out: None,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            // `--name value` and `--name=value` alike.
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (word, None),
            };
            let mut value = || inline.clone().or_else(|| words.next());
            match name.as_str() {
                "--quick" if inline.is_none() => args.quick = true,
                "--models" => {
                    let names = value().ok_or("--models needs a list of examples")?;
                    args.models = names.split(',').map(str::trim).map(Model::named).collect();
                    args.partial = true;
                }
                "--out" => args.out = Some(value().ok_or("--out needs a folder")?.into()),
                _ => {
                    return Err(format!(
                        "unknown argument {name:?}; usage: journey_bench [--quick] \
                         [--models NAME,NAME...] [--out DIR]"
                    )
                    .into())
                }
            }
        }
        Ok(args)
    }

    /// Whether this run's report is the committed one: the whole journey, full length. Only
    /// such a run writes to `docs/` when no `--out` is given.
    pub fn is_committed_run(&self) -> bool {
        !self.quick && !self.partial
    }

    /// The command that reproduces this run, for the report.
    pub fn command() -> String {
        let words: Vec<String> = std::env::args().skip(1).collect();
        let mut command = String::from("cargo run --release -p ripple-tools --bin journey_bench");
        if !words.is_empty() {
            let _ = write!(command, " -- {}", words.join(" "));
        }
        command
    }
}

/// How long each part of a cell lasts: the full run or `--quick`.
pub struct Plan {
    /// Full load before the measured windows.
    pub warmup: Duration,
    /// Measured windows in a row; the figures come from the one least disturbed by others.
    pub windows: usize,
    /// The length of each.
    pub window: Duration,
    /// How long each set-up phase may take at most: connecting every connection, then getting
    /// a first echo on each.
    pub setup_timeout: Duration,
    /// Priming also gives up after this long without a new first echo: a server that serves
    /// only some clients then costs this rather than the whole set-up time.
    pub stall: Duration,
}

impl Plan {
    /// The plan of a full run, or of a quick one.
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::from_millis(250),
                windows: 2,
                window: Duration::from_millis(400),
                setup_timeout: Duration::from_secs(5),
                stall: Duration::from_secs(1),
            }
        } else {
            Plan {
                warmup: Duration::from_secs(1),
                windows: 3,
                window: Duration::from_millis(1_500),
                setup_timeout: Duration::from_secs(10),
                stall: Duration::from_secs(2),
            }
        }
    }
}

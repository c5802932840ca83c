//! The runtime's layers import only the layers below them.
//!
//! `runtime/src/` is read bottom up: the task core and the small modules any layer may use, then
//! the reactor and the timers, the driver that joins them, the schedulers, and the runtime on top
//! (see the crate docs in `runtime/src/lib.rs`). These tests read every source file, resolve each
//! `crate::` and `super::` path in its code (comments and `#[cfg(test)]` modules are left out) to
//! the top-level module it names, and check it against the allow-list of the file's own layer.
//! They also check that no two top-level modules import each other, directly or round a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Which top-level modules each top-level module of `runtime/src` may import. A module that is
/// not listed here fails the test until it is given a place.
const ALLOWED: &[(&str, &[&str])] = &[
    // The task core and the modules any layer may use: they import nothing of the crate, but
    // the slab the task registry is built on.
    ("context", &[]),
    ("coop", &[]),
    ("metrics", &[]),
    ("slab", &[]),
    ("trace", &[]),
    ("task_core", &[]),
    // The reactor and the timers.
    ("reactor", &["context", "coop", "trace"]),
    ("time", &["context"]),
    // The driver joins them.
    (
        "driver",
        &["context", "metrics", "reactor", "time", "trace"],
    ),
    // The schedulers see the driver, the task core and the shared modules.
    (
        "scheduler",
        &[
            "context",
            "coop",
            "driver",
            "metrics",
            "slab",
            "task_core",
            "trace",
        ],
    ),
    // The runtime facade sits on top of all of it.
    (
        "runtime",
        &[
            "context",
            "coop",
            "driver",
            "metrics",
            "scheduler",
            "task_core",
            "trace",
        ],
    ),
];

#[test]
fn every_layer_of_the_runtime_imports_only_the_layers_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src");
    let imports = imports_of_tree(&root);
    assert!(
        imports.len() > 10,
        "found only {} modules under {}: is the tree still there?",
        imports.len(),
        root.display()
    );
    let broken = check(&imports);
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_two_modules_of_the_runtime_import_each_other_round_a_loop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src");
    let graph = module_graph(&imports_of_tree(&root));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import loop: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_catches_an_upward_import_a_climbing_super_and_a_loop() {
    let mut imports = BTreeMap::new();
    imports.insert(
        PathBuf::from("reactor/source.rs"),
        file_imports(
            "reactor/source.rs",
            "use super::key::SourceKey;\n\
             // use crate::scheduler::Nothing; (a comment)\n\
             use crate::runtime::Handle;\n\
             fn f() { crate::coop::consume_budget(cx); }\n",
        ),
    );
    imports.insert(
        PathBuf::from("time/mod.rs"),
        file_imports(
            "time/mod.rs",
            "pub mod error {\n    pub use super::timeout::Elapsed;\n}\n\
             use super::scheduler::Shared;\n",
        ),
    );
    imports.insert(
        PathBuf::from("coop.rs"),
        file_imports(
            "coop.rs",
            "use crate::{\n    context::Scoped,\n    driver::Driver,\n};\n",
        ),
    );
    imports.insert(
        PathBuf::from("driver/mod.rs"),
        file_imports(
            "driver/mod.rs",
            "use crate::reactor::Reactor;\n#[cfg(test)]\nmod tests { use crate::runtime::X; }\n",
        ),
    );
    let broken = check(&imports);
    assert_eq!(
        broken,
        [
            "coop.rs imports `context` (layer `coop` may import: )",
            "coop.rs imports `driver` (layer `coop` may import: )",
            "reactor/source.rs imports `runtime` (layer `reactor` may import: context, coop, trace)",
            "time/mod.rs imports `scheduler` (layer `time` may import: context)",
        ]
    );

    imports.insert(
        PathBuf::from("reactor/mod.rs"),
        file_imports("reactor/mod.rs", "use crate::driver::Driver;\n"),
    );
    let cycle = find_cycle(&module_graph(&imports)).expect("the loop is found");
    assert!(
        cycle.contains(&"driver".to_string()) && cycle.contains(&"reactor".to_string()),
        "{cycle:?}"
    );
}

/// The top-level modules each source file under `root` imports, by the file's path from `root`.
fn imports_of_tree(root: &Path) -> BTreeMap<PathBuf, BTreeSet<String>> {
    let mut files = Vec::new();
    collect_rs(root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(root).expect("under root").to_path_buf();
            let text = fs::read_to_string(&path).expect("readable source");
            let imports = file_imports(&relative.to_string_lossy(), &text);
            (relative, imports)
        })
        .collect()
}

/// Every `.rs` file below `dir`.
fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `reactor/key.rs` and `reactor/mod.rs` to
/// `reactor`, `coop.rs` to `coop`, `lib.rs` to `lib` (the crate root).
fn top_module(file: &str) -> String {
    let first = file.split('/').next().unwrap_or(file);
    first.trim_end_matches(".rs").to_string()
}

/// The module path of a file: `reactor/key.rs` is `reactor::key`, `reactor/mod.rs` is
/// `reactor`, `lib.rs` the root.
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The top-level modules that the code of `file` (its text is `text`) names through
/// `crate::` and `super::` paths, leaving out its own module, comments and `#[cfg(test)]`
/// modules (which sit at the end of a file by convention).
fn file_imports(file: &str, text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let own = top_module(file);
    let mut found = BTreeSet::new();
    // Inline modules (`mod error { ... }`) deepen the path that `super::` climbs from; each is
    // kept with the brace depth it opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for line in logical_lines(code) {
        let line = line.as_str();
        let mut here = module_path(file);
        here.extend(inline.iter().map(|(name, _)| name.clone()));
        for (at, _) in line.match_indices("crate::") {
            // `crate::` as a path start, not the tail of `ripple_crate::` or similar.
            if line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            found.extend(segments(&line[at + "crate::".len()..]));
        }
        for (at, _) in line.match_indices("super::") {
            if line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            // Climb one module per `super::`, then name what follows.
            let mut path = here.clone();
            let mut rest = &line[at..];
            while let Some(after) = rest.strip_prefix("super::") {
                path.pop();
                rest = after;
            }
            match path.first() {
                Some(top) => {
                    found.insert(top.clone());
                }
                None => found.extend(segments(rest)),
            }
        }
        let opened = line
            .trim_start()
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ");
        if let Some(rest) = opened.strip_prefix("mod ") {
            if let Some(name) = first_segment(rest).filter(|_| line.contains('{')) {
                inline.push((name, depth));
            }
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
        while inline.last().is_some_and(|(_, at)| depth <= *at) {
            inline.pop();
        }
    }
    found.remove(&own);
    found
}

/// The code of `text` without comments, one line per line of code, but a `use` that rustfmt
/// spread over several lines joined into one.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim_end();
        if let Some(statement) = open.as_mut() {
            statement.push(' ');
            statement.push_str(line.trim());
            if line.contains(';') {
                lines.extend(open.take());
            }
            continue;
        }
        let starts_use = line
            .trim_start()
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ")
            .starts_with("use ");
        if starts_use && !line.contains(';') {
            open = Some(line.to_string());
        } else {
            lines.push(line.to_string());
        }
    }
    lines.extend(open);
    lines
}

/// The modules that the path `rest` (what follows `crate::`) starts with: one name, or each
/// first name of a `{...}` group.
fn segments(rest: &str) -> Vec<String> {
    let Some(group) = rest.strip_prefix('{') else {
        return first_segment(rest).into_iter().collect();
    };
    let mut names = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if at_start && !c.is_whitespace() => {
                at_start = false;
                names.extend(first_segment(&group[i..]));
            }
            _ => {}
        }
    }
    names
}

/// The first path segment of `rest`, if it starts with a name.
fn first_segment(rest: &str) -> Option<String> {
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Each import that the allow-list forbids, as `file imports `module` (layer ... may
/// import: ...)`. The crate root may import anything.
fn check(imports: &BTreeMap<PathBuf, BTreeSet<String>>) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut broken = Vec::new();
    for (file, names) in imports {
        let file = file.to_string_lossy();
        let layer = top_module(&file);
        if layer == "lib" {
            continue;
        }
        let Some(may) = allowed.get(layer.as_str()) else {
            broken.push(format!(
                "{file} is in module `{layer}`, which has no place in the layers"
            ));
            continue;
        };
        for name in names {
            if !may.contains(&name.as_str()) {
                broken.push(format!(
                    "{file} imports `{name}` (layer `{layer}` may import: {})",
                    may.join(", ")
                ));
            }
        }
    }
    broken
}

/// Which top-level modules each top-level module imports, over all of its files.
fn module_graph(
    imports: &BTreeMap<PathBuf, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, names) in imports {
        let module = top_module(&file.to_string_lossy());
        if module == "lib" {
            continue;
        }
        graph
            .entry(module)
            .or_default()
            .extend(names.iter().cloned());
    }
    graph
}

/// A loop in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    /// Depth-first search; `path` is the current chain, `done` the modules fully explored.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

//! The runtime's layers import only the layers below them, and no module imports another round
//! a loop.
//!
//! `runtime/src/` is read bottom up: the task core and the small modules any layer may use, then
//! the reactor and the timers, the driver that joins them, the schedulers, and the runtime on top
//! (see the crate docs in `runtime/src/lib.rs`). These tests parse every source file with `syn`,
//! resolve each `crate::`, `super::` and `self::` path in its code (in `use` items, expressions,
//! types, patterns, everywhere; items under `#[cfg(test)]` are left out) to the module it names,
//! and check:
//!
//! - the top-level module it names against the allow-list of the file's own layer;
//! - that no file imports another round a loop (a module's file may name its own children, which
//!   it declares and re-exports; everything else counts);
//! - that nothing hides a path from these checks: a glob import of the crate root (`use
//!   crate::*`), or another name for the crate root (`use crate as root`, `extern crate self as
//!   root`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use syn::visit::{self, Visit};

/// Which top-level modules each top-level module of `runtime/src` may import. A module that is
/// not listed here fails the test until it is given a place.
const ALLOWED: &[(&str, &[&str])] = &[
    // The task core and the modules any layer may use import nothing of the crate but the
    // facade that swaps std's synchronisation types for loom's (loom.rs).
    ("context", &[]),
    ("coop", &[]),
    ("loom", &[]),
    ("metrics", &[]),
    ("slab", &[]),
    ("trace", &[]),
    ("task_core", &["loom"]),
    // Helpers of the unit tests (only tests build them).
    ("testing", &["loom", "task_core"]),
    // The reactor and the timers.
    ("reactor", &["context", "coop", "loom", "trace"]),
    ("time", &["context"]),
    // The driver joins them.
    (
        "driver",
        &["context", "loom", "metrics", "reactor", "time", "trace"],
    ),
    // The schedulers see the driver, the task core and the shared modules.
    (
        "scheduler",
        &[
            "context",
            "coop",
            "driver",
            "loom",
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

/// The parsed source of `runtime/src`.
fn runtime_tree() -> Tree {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src");
    let mut files = Vec::new();
    collect_rs(&root, &mut files);
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            let relative = path.strip_prefix(&root).expect("under root");
            let text = fs::read_to_string(path).expect("readable source");
            (relative.to_string_lossy().into_owned(), text)
        })
        .collect();
    let tree = Tree::parse(&sources);
    assert!(
        tree.files.len() > 10,
        "found only {} files under {}: is the tree still there?",
        tree.files.len(),
        root.display()
    );
    tree
}

#[test]
fn every_layer_of_the_runtime_imports_only_the_layers_below_it() {
    let broken = runtime_tree().check_layers();
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_two_modules_of_the_runtime_import_each_other_round_a_loop() {
    let tree = runtime_tree();
    if let Some(cycle) = find_cycle(&tree.top_module_graph()) {
        panic!("import loop between layers: {}", cycle.join(" -> "));
    }
    if let Some(cycle) = find_cycle(&tree.file_graph()) {
        panic!("import loop between files: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_catches_upward_imports_in_every_form_and_loops() {
    let tree = Tree::parse(&[
        (
            "reactor/source.rs".into(),
            "use super::key::SourceKey;\n\
             // use crate::scheduler::Nothing; (a comment is not an import)\n\
             /// A doc comment naming `#[cfg(test)]` hides nothing.\n\
             fn f() { crate::coop::consume_budget(cx); crate::runtime::Handle::current(); }\n\
             #[cfg(test)]\nmod tests { use crate::runtime::Tested; }\n"
                .into(),
        ),
        (
            "reactor/key.rs".into(),
            "pub(super) use crate::{\n    context::Scoped,\n    scheduler::Shared as X,\n};\n"
                .into(),
        ),
        (
            "time/mod.rs".into(),
            "pub mod error {\n    pub use super::timeout::Elapsed;\n}\n\
             fn g() -> super::driver::Driver { todo!() }\n"
                .into(),
        ),
        ("time/timeout.rs".into(), "pub struct Elapsed;\n".into()),
        (
            "driver/mod.rs".into(),
            "use super::*;\nuse crate as root;\nuse crate::reactor::Reactor;\n".into(),
        ),
        (
            "reactor/mod.rs".into(),
            "use crate::driver::Driver;\n".into(),
        ),
    ]);
    assert_eq!(
        tree.check_layers(),
        [
            "driver/mod.rs: `crate as root` gives the crate root another name",
            "driver/mod.rs: a glob import of the crate root hides what it imports",
            "reactor/key.rs imports `scheduler` (layer `reactor` may import: context, coop, loom, trace)",
            "reactor/mod.rs imports `driver` (layer `reactor` may import: context, coop, loom, trace)",
            "reactor/source.rs imports `runtime` (layer `reactor` may import: context, coop, loom, trace)",
            "time/mod.rs imports `driver` (layer `time` may import: context)",
        ]
    );
    let cycle = find_cycle(&tree.top_module_graph()).expect("the loop is found");
    assert!(
        cycle.contains(&"driver".to_string()) && cycle.contains(&"reactor".to_string()),
        "{cycle:?}"
    );

    let siblings = Tree::parse(&[
        (
            "reactor/mod.rs".into(),
            "mod a; mod b; pub use a::A;\n".into(),
        ),
        (
            "reactor/a.rs".into(),
            "use super::b::B; pub struct A;\n".into(),
        ),
        (
            "reactor/b.rs".into(),
            "use super::a::A; pub struct B;\n".into(),
        ),
    ]);
    assert!(
        find_cycle(&siblings.top_module_graph()).is_none(),
        "one module, no loop between modules"
    );
    let cycle = find_cycle(&siblings.file_graph()).expect("the files' loop is found");
    assert!(cycle.contains(&"reactor/a.rs".to_string()), "{cycle:?}");
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

/// The module path of a file: `reactor/key.rs` is `reactor::key`, `reactor/mod.rs` is
/// `reactor`, `lib.rs` the crate root.
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

/// What one file's code names.
#[derive(Debug, Default)]
struct FileImports {
    /// The module paths it names, resolved from the crate root (`["reactor", "key"]`...).
    modules: BTreeSet<Vec<String>>,
    /// Forms that hide what is imported.
    hidden: Vec<String>,
}

/// The files of a tree and what each names.
#[derive(Debug)]
struct Tree {
    /// By path from the source root.
    files: BTreeMap<String, FileImports>,
}

impl Tree {
    /// Parses `sources` (path from the source root, text). A file that does not parse fails.
    fn parse(sources: &[(String, String)]) -> Tree {
        let files = sources
            .iter()
            .map(|(path, text)| {
                let file = syn::parse_file(text)
                    .unwrap_or_else(|err| panic!("{path} does not parse: {err}"));
                let mut walker = Walker {
                    module: module_path(path),
                    imports: FileImports::default(),
                };
                walker.visit_file(&file);
                (path.clone(), walker.imports)
            })
            .collect();
        Tree { files }
    }

    /// Each import that the allow-list forbids, and each form that hides imports. The crate root
    /// may import anything.
    fn check_layers(&self) -> Vec<String> {
        let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
        let mut broken = Vec::new();
        for (file, imports) in &self.files {
            broken.extend(imports.hidden.iter().map(|why| format!("{file}: {why}")));
            let Some(layer) = module_path(file).first().cloned() else {
                continue;
            };
            let Some(may) = allowed.get(layer.as_str()) else {
                broken.push(format!(
                    "{file} is in module `{layer}`, which has no place in the layers"
                ));
                continue;
            };
            let named: BTreeSet<&String> =
                imports.modules.iter().filter_map(|m| m.first()).collect();
            for name in named {
                if *name != layer && !may.contains(&name.as_str()) {
                    broken.push(format!(
                        "{file} imports `{name}` (layer `{layer}` may import: {})",
                        may.join(", ")
                    ));
                }
            }
        }
        broken.sort();
        broken
    }

    /// Which top-level modules each top-level module names, over all of its files.
    fn top_module_graph(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, imports) in &self.files {
            let Some(module) = module_path(file).first().cloned() else {
                continue;
            };
            let edges = graph.entry(module.clone()).or_default();
            for named in imports.modules.iter().filter_map(|m| m.first()) {
                if *named != module {
                    edges.insert(named.clone());
                }
            }
        }
        graph
    }

    /// Which files each file names, leaving out the names a module's file gives its own
    /// children (which it declares, and may re-export).
    fn file_graph(&self) -> BTreeMap<String, BTreeSet<String>> {
        let by_module: BTreeMap<Vec<String>, &String> = self
            .files
            .keys()
            .map(|file| (module_path(file), file))
            .collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, imports) in &self.files {
            let here = module_path(file);
            let edges = graph.entry(file.clone()).or_default();
            for named in &imports.modules {
                // The file that defines the named path: its longest prefix that is a file.
                let target = (0..=named.len())
                    .rev()
                    .find_map(|n| by_module.get(&named[..n]).copied());
                let Some(target) = target else { continue };
                let target_module = module_path(target);
                let is_child = target_module.len() > here.len() && target_module.starts_with(&here);
                if target != file && !is_child {
                    edges.insert(target.clone());
                }
            }
        }
        graph
    }
}

/// Walks one file's syntax tree, resolving the paths its code names.
struct Walker {
    /// The module being walked: the file's, deepened by inline `mod x { ... }` blocks.
    module: Vec<String>,
    /// What was found.
    imports: FileImports,
}

impl Walker {
    /// Resolves a path that starts with `crate`, `super` or `self` to the module path it names
    /// from the crate root; `None` for any other path (std, a dependency, a local name).
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let mut resolved = match segments.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super" | "self") => self.module.clone(),
            _ => return None,
        };
        let mut rest = &segments[usize::from(segments[0] == "crate")..];
        while let Some(first) = rest.first() {
            match first.as_str() {
                "super" => {
                    resolved.pop();
                }
                "self" => {}
                _ => break,
            }
            rest = &rest[1..];
        }
        resolved.extend(rest.iter().cloned());
        Some(resolved)
    }

    /// Records the module that `segments` names, if it is one of the crate's.
    fn name(&mut self, segments: &[String]) {
        if let Some(path) = self.resolve(segments) {
            if !path.is_empty() {
                self.imports.modules.insert(path);
            }
        }
    }

    /// Records every path of a `use` tree under `prefix`.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                prefix.push(name.ident.to_string());
                self.name(prefix);
                prefix.pop();
            }
            syn::UseTree::Rename(rename) => {
                prefix.push(rename.ident.to_string());
                if self.resolve(prefix).is_some_and(|p| p.is_empty()) {
                    let named = prefix.join("::");
                    self.imports.hidden.push(format!(
                        "`{named} as {}` gives the crate root another name",
                        rename.rename
                    ));
                }
                self.name(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => match self.resolve(prefix) {
                Some(path) if path.is_empty() => self
                    .imports
                    .hidden
                    .push("a glob import of the crate root hides what it imports".into()),
                Some(_) => self.name(prefix),
                None => {}
            },
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

/// Whether `attrs` hold `#[cfg(test)]` or `#[cfg(all(test, ...))]`: code that only tests
/// build.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        if !attr.path().is_ident("cfg") {
            return false;
        }
        let Ok(meta) = attr.parse_args::<syn::Meta>() else {
            return false;
        };
        match meta {
            syn::Meta::Path(path) => path.is_ident("test"),
            syn::Meta::List(list) if list.path.is_ident("all") => list
                .parse_args_with(
                    syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
                )
                .is_ok_and(|items| items.iter().any(|item| item.path().is_ident("test"))),
            _ => false,
        }
    })
}

/// The attributes of an item, for the kinds that can carry `#[cfg(test)]` here.
fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

impl<'ast> Visit<'ast> for Walker {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test_only(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        // An inline module deepens the path `super::` climbs from.
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            visit::visit_item_mod(self, item);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        if item.ident == "self" {
            self.imports
                .hidden
                .push("`extern crate self` gives the crate root another name".into());
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.name(&segments);
        visit::visit_path(self, path);
    }
}

/// A loop in `graph`, as the nodes along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    /// Depth-first search; `path` is the current chain, `done` the nodes fully explored.
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

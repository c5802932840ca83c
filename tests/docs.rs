//! The documentation's links must not rot.
//!
//! These tests read `README.md` and every markdown file under `docs/` and check each relative
//! link `[text](path#anchor)`: the path exists (resolved from the markdown file's folder), the
//! anchor names a heading of the linked markdown file (by GitHub's slug rules), and when the link
//! text names a code item in backticks and the target is a `.rs` file, as in
//! ``[`Reactor::wait`](../runtime/src/reactor/mod.rs)``, the item's last segment (`wait`) is
//! defined in that file (`fn wait`, `struct wait`, ...). Links to `http(s)://` and `mailto:` are
//! not followed. Links inside code blocks, code spans and HTML comments are not links.
//!
//! A failure lists every broken link as `file:line`.
//!
//! One more check keeps the guide's numbers honest: each figure it quotes from the measured
//! report, `docs/journey.md` (listed in `JOURNEY_QUOTES`), must be in that report's table and
//! still in the chapter.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// A link found in a markdown file.
#[derive(Debug)]
struct Link {
    /// The 1-based line the link starts on.
    line: usize,
    /// What is between the brackets.
    text: String,
    /// What is between the parentheses, without a title.
    target: String,
}

/// Which property of the links a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The linked file or folder exists.
    Target,
    /// The `#anchor` names a heading (or a line, `#L12`, of a non-markdown file).
    Anchor,
    /// A code item named in the link text is defined in the linked `.rs` file.
    Item,
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    assert_no_broken_links(Check::Target);
}

#[test]
fn every_anchor_in_the_docs_names_a_heading() {
    assert_no_broken_links(Check::Anchor);
}

#[test]
fn every_code_item_the_docs_link_to_is_defined_in_the_linked_file() {
    assert_no_broken_links(Check::Item);
}

#[test]
fn the_checker_reports_each_broken_link_with_its_file_and_line() {
    let root = TempTree::new("broken");
    root.write(
        "README.md",
        "# Top\n\nSee [the guide](docs/guide.md) and [gone](docs/gone.md).\n\
         [wait](docs/guide.md#waiting) and [nowhere](docs/guide.md#nowhere).\n\
         [`Reactor::wait`](src/reactor.rs) [`Reactor::sleep`](src/reactor.rs)\n\
         [web](https://example.com/missing) [mail](mailto:a@b.c)\n",
    );
    root.write(
        "docs/guide.md",
        "# Guide\n\n## Waiting\n\n[back](../README.md#top)\n",
    );
    root.write(
        "src/reactor.rs",
        "impl Reactor {\n    pub fn wait(&self) {}\n}\n",
    );

    let files = markdown_files(&root.0);
    assert_eq!(broken_links(&root.0, &files, Check::Target).len(), 1);
    let broken: Vec<String> = [Check::Target, Check::Anchor, Check::Item]
        .into_iter()
        .flat_map(|check| broken_links(&root.0, &files, check))
        .collect();
    let expected = [
        "README.md:3: [gone](docs/gone.md)",
        "README.md:4: [nowhere](docs/guide.md#nowhere)",
        "README.md:5: [`Reactor::sleep`](src/reactor.rs)",
    ];
    assert_eq!(broken.len(), expected.len(), "{broken:#?}");
    for (report, start) in broken.iter().zip(expected) {
        assert!(
            report.starts_with(start),
            "{report:?} should start with {start:?}"
        );
    }
}

#[test]
fn links_inside_code_and_comments_are_not_links() {
    let text = "A [real](a.md) link.\n\
                ```rust\nlet x = [fake](b.md);\n```\n\
                Inline `[fake](c.md)` code, ``[fake](d.md)`` too.\n\
                <!-- [fake](e.md) -->\n\
                [two\nlines](f.md \"title\") and [angle](<g h.md>) and ![img](i.svg)\n\
                \\[escaped](j.md) [ref][r]\n\n[r]: k.md\n";
    let found: Vec<(usize, String)> = links(text)
        .into_iter()
        .map(|link| (link.line, link.target))
        .collect();
    assert_eq!(
        found,
        [
            (1, "a.md".to_string()),
            (7, "f.md".to_string()),
            (8, "g h.md".to_string()),
            (8, "i.svg".to_string()),
            (9, "k.md".to_string()),
            (11, "k.md".to_string()),
        ]
    );
}

#[test]
fn headings_become_github_anchors() {
    let text = "# ripple\n## A tour of the code\n### Follow one read\n\
                ## `Reactor::wait`: the *epoll* call!\n## Limits, honestly\n\
                ## 다중 접속 서버\n## Limits, honestly\n```\n# not a heading\n```\n\
                Setext title\n============\n";
    assert_eq!(
        anchors(text),
        [
            "ripple",
            "a-tour-of-the-code",
            "follow-one-read",
            "reactorwait-the-epoll-call",
            "limits-honestly",
            "다중-접속-서버",
            "limits-honestly-1",
            "setext-title",
        ]
    );
}

#[test]
fn code_items_are_found_by_their_last_segment() {
    assert_eq!(item_name("`Reactor::wait`").as_deref(), Some("wait"));
    assert_eq!(item_name("`Async<T>`").as_deref(), Some("Async"));
    assert_eq!(
        item_name("the `Context::park()` step").as_deref(),
        Some("park")
    );
    assert_eq!(item_name("`ripple::main!`").as_deref(), Some("main"));
    assert_eq!(item_name("`cargo run`"), None);
    assert_eq!(item_name("`1_blocking.rs`"), None);
    assert_eq!(item_name("no code"), None);
    let source = "pub(crate) fn wait(&self) {}\n// fn parked()\nconst EVENT_INTERVAL: u32 = 61;\n\
                  macro_rules! read_half {}\nfn waiter() {}\n";
    assert!(defines(source, "wait"));
    assert!(defines(source, "EVENT_INTERVAL"));
    assert!(defines(source, "read_half"));
    assert!(!defines(source, "parked"), "comments define nothing");
    assert!(!defines(source, "wai"));
}

/// Fails with the list of links in `README.md` and `docs/` that break `check`.
fn assert_no_broken_links(check: Check) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = markdown_files(root);
    assert!(
        files.contains(&root.join("README.md")),
        "README.md not found in {}",
        root.display()
    );
    let broken = broken_links(root, &files, check);
    assert!(
        broken.is_empty(),
        "{} broken link(s) ({check:?}):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// `README.md` and every `.md` file under `docs/`, sorted.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    files.retain(|f| f.is_file());
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// One line per link in `files` that breaks `check`: `file:line: [text](target): why`.
fn broken_links(root: &Path, files: &[PathBuf], check: Check) -> Vec<String> {
    let mut broken = Vec::new();
    for file in files {
        let text = fs::read_to_string(file).expect("a markdown file is readable UTF-8");
        for link in links(&text) {
            if let Some(why) = problem(root, file, &link, check) {
                broken.push(format!(
                    "{}:{}: [{}]({}): {why}",
                    shown(root, file),
                    link.line,
                    link.text,
                    link.target
                ));
            }
        }
    }
    broken
}

/// What is wrong with `link`, found in `file` under `root`, as far as `check` goes.
fn problem(root: &Path, file: &Path, link: &Link, check: Check) -> Option<String> {
    let target = link.target.trim();
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(percent_decode(anchor))),
        None => (target, None),
    };
    let path = percent_decode(path.split('?').next().unwrap_or(path));
    let resolved = match path.strip_prefix('/') {
        // GitHub resolves a leading `/` from the repository's root.
        Some(from_root) => root.join(from_root),
        None if path.is_empty() => file.to_path_buf(),
        None => file.parent().expect("a file has a folder").join(&path),
    };
    let exists = resolved.exists();
    match check {
        Check::Target => (!exists).then(|| format!("{} does not exist", shown(root, &resolved))),
        Check::Anchor => {
            let anchor = anchor?;
            if !resolved.is_file() {
                return None;
            }
            let is_markdown = resolved.extension().is_some_and(|e| e == "md");
            let contents = fs::read_to_string(&resolved).ok()?;
            if is_markdown {
                let known = anchors(&contents);
                (!known.contains(&anchor)).then(|| {
                    format!(
                        "no heading has the anchor #{anchor} (known: {})",
                        known.join(", ")
                    )
                })
            } else {
                match line_anchor(&anchor) {
                    Some(line) if line <= contents.lines().count() => None,
                    Some(_) => Some(format!("#{anchor} is past the end of the file")),
                    None => Some(format!("#{anchor} is not a line anchor (#L12 or #L12-L20)")),
                }
            }
        }
        Check::Item => {
            if !exists || resolved.extension().map_or(true, |e| e != "rs") {
                return None;
            }
            let name = item_name(&link.text)?;
            let source = fs::read_to_string(&resolved).ok()?;
            (!defines(&source, &name)).then(|| {
                format!(
                    "{} defines no `{name}` (fn, struct, enum, trait, const, type, mod, static, \
                     macro_rules!)",
                    shown(root, &resolved)
                )
            })
        }
    }
}

/// `path` as the reader knows it: relative to `root`, with `.` and `..` resolved.
fn shown(root: &Path, path: &Path) -> String {
    let mut parts: Vec<Component<'_>> = Vec::new();
    for part in path.strip_prefix(root).unwrap_or(path).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.iter().collect::<PathBuf>().display().to_string()
}

/// The line a GitHub line anchor (`L12` or `L12-L20`) points at; its last line for a range.
fn line_anchor(anchor: &str) -> Option<usize> {
    let mut last = None;
    for part in anchor.split('-') {
        last = Some(part.strip_prefix('L')?.parse().ok()?);
    }
    last
}

/// Every link in a markdown text: inline `[text](target)`, images, reference definitions
/// `[label]: target`, and uses `[text][label]` of a known label. Code and comments are skipped.
fn links(text: &str) -> Vec<Link> {
    let chars: Vec<char> = blank_code_blocks_and_comments(text).chars().collect();
    let line_of = |at: usize| 1 + chars[..at].iter().filter(|&&c| c == '\n').count();
    let mut found = Vec::new();

    // Reference definitions: `[label]: target` at the start of a line.
    let mut definitions = HashMap::new();
    let mut at_line_start = true;
    for (i, &c) in chars.iter().enumerate() {
        if at_line_start && c == '[' {
            if let Some(close) = closing_bracket(&chars, i) {
                let rest: String = chars[close + 1..]
                    .iter()
                    .take_while(|&&c| c != '\n')
                    .collect();
                if let Some(target) = rest.strip_prefix(':') {
                    let label: String = chars[i + 1..close].iter().collect();
                    let target = destination(target.trim_start());
                    definitions.insert(label.to_lowercase(), target.clone());
                    found.push(Link {
                        line: line_of(i),
                        text: label,
                        target,
                    });
                }
            }
        }
        at_line_start = c == '\n' || (at_line_start && c == ' ');
    }

    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '`' => i = after_code_span(&chars, i),
            '[' => {
                if let Some(close) = closing_bracket(&chars, i) {
                    let text: String = chars[i + 1..close].iter().collect();
                    let target = match chars.get(close + 1) {
                        Some('(') => chars[close + 2..]
                            .iter()
                            .position(|&c| c == ')' || c == '\n')
                            .map(|end| {
                                let inner: String =
                                    chars[close + 2..close + 2 + end].iter().collect();
                                destination(inner.trim())
                            }),
                        Some('[') => closing_bracket(&chars, close + 1).and_then(|end| {
                            let label: String = chars[close + 2..end].iter().collect();
                            let label = if label.is_empty() { &text } else { &label };
                            definitions.get(&label.to_lowercase()).cloned()
                        }),
                        _ => None,
                    };
                    if let Some(target) = target {
                        found.push(Link {
                            line: line_of(i),
                            text,
                            target,
                        });
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    found.sort_by_key(|link| link.line);
    found
}

/// A link destination without its title: `<a b.md> "t"` gives `a b.md`, `a.md "t"` gives `a.md`.
fn destination(inner: &str) -> String {
    match inner.strip_prefix('<') {
        Some(rest) => rest.split('>').next().unwrap_or(rest).to_string(),
        None => inner.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// The index of the `]` that closes the `[` at `open`, skipping code spans and nested brackets.
fn closing_bracket(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '`' => i = after_code_span(chars, i),
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            // A blank line ends the paragraph, and with it any link text.
            '\n' if chars.get(i + 1) == Some(&'\n') => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// For a run of backticks at `start`: the index of the last backtick of the code span it opens,
/// or of the run itself when nothing closes it (then the backticks are plain text).
fn after_code_span(chars: &[char], start: usize) -> usize {
    let run = chars[start..].iter().take_while(|&&c| c == '`').count();
    let mut i = start + run;
    while i < chars.len() {
        if chars[i] == '`' {
            let len = chars[i..].iter().take_while(|&&c| c == '`').count();
            if len == run {
                return i + len - 1;
            }
            i += len;
        } else {
            i += 1;
        }
    }
    start + run - 1
}

/// `text` with fenced code blocks and HTML comments replaced by spaces, line breaks kept, so
/// that positions and line numbers stay the same.
fn blank_code_blocks_and_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<String> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|&c| c == '`' || c == '~')
            .collect();
        let is_fence =
            marker.len() >= 3 && marker.chars().all(|c| c == marker.as_bytes()[0] as char);
        let in_code = match &fence {
            Some(open) => {
                if is_fence
                    && marker.starts_with(open.as_str())
                    && trimmed[marker.len()..].trim().is_empty()
                {
                    fence = None;
                }
                true
            }
            None if is_fence => {
                fence = Some(marker);
                true
            }
            None => false,
        };
        if in_code {
            out.extend(line.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
        } else {
            out.push_str(line);
        }
    }
    // HTML comments, which may span lines.
    let mut blanked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(start) = rest.find("<!--") {
        blanked.push_str(&rest[..start]);
        let end = rest[start..]
            .find("-->")
            .map_or(rest.len(), |e| start + e + 3);
        blanked.extend(
            rest[start..end]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' }),
        );
        rest = &rest[end..];
    }
    blanked.push_str(rest);
    blanked
}

/// The anchors GitHub gives a markdown text: one per heading (ATX `#` or setext), with `-1`,
/// `-2`... for repeats, plus explicit `id="..."` and `name="..."` attributes.
fn anchors(text: &str) -> Vec<String> {
    let text = blank_code_blocks_and_comments(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut headings = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes)
            && line.len() - trimmed.len() < 4
            && trimmed[hashes..]
                .chars()
                .next()
                .map_or(true, |c| c == ' ' || c == '\t')
        {
            let title = trimmed[hashes..].trim().trim_end_matches('#').trim();
            headings.push(title.to_string());
        } else if let Some(&under) = lines.get(i + 1) {
            let under = under.trim();
            let setext = !under.is_empty()
                && (under.chars().all(|c| c == '=') || under.chars().all(|c| c == '-'));
            if setext && !line.trim().is_empty() && hashes == 0 {
                headings.push(line.trim().to_string());
            }
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = Vec::new();
    for heading in headings {
        let slug = slug(&heading);
        let count = seen.entry(slug.clone()).or_insert(0);
        anchors.push(match *count {
            0 => slug,
            n => format!("{slug}-{n}"),
        });
        *count += 1;
    }
    for attribute in ["id=\"", "name=\""] {
        for (at, _) in text.match_indices(attribute) {
            let value = &text[at + attribute.len()..];
            anchors.extend(value.split('"').next().map(str::to_string));
        }
    }
    anchors
}

/// GitHub's anchor for a heading: the rendered text (links reduced to their text, code to its
/// content), lowercased, without punctuation other than `-` and `_`, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](url)` renders as `text`.
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find("](").map(|c| open + c);
        let end = close.and_then(|c| rest[c..].find(')').map(|e| c + e));
        match (close, end) {
            (Some(close), Some(end)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..close]);
                rest = &rest[end + 1..];
            }
            _ => break,
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The item a link text names in its first code span, by its last path segment:
/// `` `Reactor::wait` `` gives `wait`, `` `Async<T>` `` gives `Async`. `None` when the text has no
/// code span or the span is not a Rust path (a command, a file name).
fn item_name(text: &str) -> Option<String> {
    let code = text.split('`').nth(1)?.trim();
    // Drop generics (`Async<T>`), then a call's arguments and a macro's `!`.
    let mut path = String::new();
    let mut depth = 0;
    for c in code.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            _ if depth == 0 => path.push(c),
            _ => {}
        }
    }
    let path = path.split('(').next().unwrap_or("").trim_end_matches('!');
    let is_ident = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    let segments: Vec<&str> = path.split("::").collect();
    segments
        .iter()
        .all(|s| is_ident(s))
        .then(|| segments.last().map(|s| s.to_string()))?
}

/// Whether `source` defines `name` as an fn, struct, enum, trait, const, type, mod, static or
/// macro, outside comments.
fn defines(source: &str, name: &str) -> bool {
    const KEYWORDS: [&str; 10] = [
        "fn",
        "struct",
        "enum",
        "trait",
        "const",
        "type",
        "mod",
        "static",
        "macro_rules!",
        "mut",
    ];
    let is_ident_char = |c: char| c.is_alphanumeric() || c == '_';
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .any(|line| {
            line.match_indices(name).any(|(at, _)| {
                let after = line[at + name.len()..].chars().next();
                if after.is_some_and(is_ident_char) {
                    return false;
                }
                let before = line[..at].trim_end();
                if before.len() == at {
                    return false; // No space between the keyword and the name.
                }
                KEYWORDS.iter().any(|keyword| {
                    before.strip_suffix(keyword).is_some_and(|head| {
                        let head_ok = !head.chars().next_back().is_some_and(is_ident_char);
                        // `mut` counts only in `static mut NAME`.
                        head_ok && (*keyword != "mut" || head.trim_end().ends_with("static"))
                    })
                })
            })
        })
}

/// `%20`-style escapes decoded (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A scratch folder for the checker's own tests, removed when dropped.
struct TempTree(PathBuf);

impl TempTree {
    /// A fresh, empty folder named after `name` and this process.
    fn new(name: &str) -> TempTree {
        let dir = std::env::temp_dir().join(format!("ripple-docs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("the temporary folder can be created");
        TempTree(dir)
    }

    /// Writes `contents` to `path` inside the tree, creating folders as needed.
    fn write(&self, path: &str, contents: &str) {
        let path = self.0.join(path);
        fs::create_dir_all(path.parent().expect("a file has a folder")).expect("mkdir");
        fs::write(path, contents).expect("the file can be written");
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The chapters that quote `docs/journey.md`.
const CH4: &str = "04-non-blocking-and-polling.md";
const CH6: &str = "06-event-loop.md";
const CH7: &str = "07-tomcat-nio.md";

/// Figures the guide quotes from the measured report, `docs/journey.md`: the chapter that quotes
/// it, the report's table (the start of its heading), the model (the start of its row), the
/// number of connections (its column), and the figure as the chapter writes it.
const JOURNEY_QUOTES: &[(&str, &str, &str, &str, &str)] = &[
    (CH4, "Throughput", "5 busy poll", "1", "36,041"),
    (CH4, "Throughput", "8 ripple", "1", "10,173"),
    (CH4, "Throughput", "2 fork", "1", "12,324"),
    (CH4, "Throughput", "5 busy poll", "10", "130,980"),
    (CH4, "Throughput", "5 busy poll", "100", "155,480"),
    (CH4, "p99", "5 busy poll", "1", "55 µs"),
    (CH4, "p99", "1 blocking", "1", "128 µs"),
    (CH4, "Server CPU, %", "5 busy poll", "1", "99%"),
    (CH4, "Server CPU, %", "2 fork", "1", "35%"),
    (CH4, "Server CPU, %", "7 Tomcat", "1", "63%"),
    (CH6, "Server CPU, ms", "8 ripple", "10", "6.78"),
    (CH6, "Server CPU, ms", "6 event loop", "10", "9.48"),
    (CH6, "Server CPU, ms", "8 ripple", "100", "6.50"),
    (CH6, "Server CPU, ms", "6 event loop", "100", "8.52"),
    (CH6, "Server CPU, ms", "8 ripple", "1", "38.4"),
    (CH6, "Server CPU, ms", "6 event loop", "1", "36.1"),
    (CH6, "Throughput", "8 ripple", "10", "145,945"),
    (CH6, "Throughput", "6 event loop", "10", "104,096"),
    (CH7, "Server CPU, ms", "7 Tomcat", "1", "59.4"),
    (CH7, "Server CPU, ms", "6 event loop", "1", "36.1"),
    (CH7, "Server CPU, ms", "7 Tomcat", "10", "13.0"),
    (CH7, "Server CPU, ms", "6 event loop", "10", "9.48"),
    (CH7, "Server CPU, ms", "7 Tomcat", "100", "8.59"),
    (CH7, "Server CPU, ms", "6 event loop", "100", "8.52"),
    (CH7, "Server CPU, ms", "7 Tomcat", "1,000", "11.0"),
    (CH7, "Server CPU, ms", "6 event loop", "1,000", "10.3"),
    (CH7, "Server CPU, ms", "7 Tomcat", "5,000", "11.5"),
    (CH7, "Server CPU, ms", "6 event loop", "5,000", "12.0"),
    (CH7, "Throughput", "7 Tomcat", "10", "76,305"),
    (CH7, "Throughput", "6 event loop", "10", "104,096"),
    (CH7, "Throughput", "7 Tomcat", "100", "115,050"),
    (CH7, "Throughput", "6 event loop", "100", "104,484"),
    (CH7, "Throughput", "7 Tomcat", "1,000", "90,465"),
    (CH7, "Throughput", "6 event loop", "1,000", "94,105"),
    (CH7, "Throughput", "7 Tomcat", "5,000", "83,051"),
    (CH7, "Throughput", "6 event loop", "5,000", "79,380"),
];

#[test]
fn figures_the_guide_quotes_from_the_journey_report_are_in_the_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let journey = fs::read_to_string(root.join("docs/journey.md")).expect("docs/journey.md");
    let mut wrong = Vec::new();
    for &(chapter, table, model, connections, figure) in JOURNEY_QUOTES {
        let path = root.join("docs/guide").join(chapter);
        let text = fs::read_to_string(&path).expect("the chapter exists");
        let cell = journey_cell(&journey, table, model, connections);
        if cell.as_deref() != Some(figure) {
            wrong.push(format!(
                "docs/journey.md, {table} / {model} / {connections}: {cell:?}, not {figure:?}"
            ));
        }
        if !text.contains(figure) {
            wrong.push(format!("docs/guide/{chapter} no longer quotes {figure:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The cell of a table of `docs/journey.md`: the table under the first `###` heading that starts
/// with `table`, the row whose first cell starts with `model`, the column headed `connections`.
fn journey_cell(journey: &str, table: &str, model: &str, connections: &str) -> Option<String> {
    let cells = |line: &str| -> Vec<String> {
        let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
        inner.split('|').map(|c| c.trim().to_string()).collect()
    };
    let mut lines = journey
        .lines()
        .skip_while(|line| !line.starts_with(&format!("### {table}")))
        .skip(1)
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'));
    let header = cells(lines.next()?);
    let column = header.iter().position(|c| c == connections)?;
    lines
        .map(cells)
        .find(|row| row[0].starts_with(model))
        .and_then(|row| row.get(column).cloned())
}

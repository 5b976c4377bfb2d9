//! The reading guide (`CHAPTERS.md`) speaks of the code as it is.
//!
//! Three mechanical checks, so that a rename in `src/` cannot leave the guide
//! behind:
//!
//! * every chapter's module title (`//! # Chapter N — …`, the first line of
//!   `src/chNN_*.rs` or `src/chNN_*/mod.rs`) is, word for word, the guide's
//!   heading for that chapter (`## Chapter N — …`), and every chapter the
//!   guide has a heading for has a module;
//! * every `Type::item` the guide names in its running text (inside
//!   backticks, outside the fenced code blocks, which are doctests and
//!   compiled anyway) exists in `src/`: a `fn item`, a `const item`, an
//!   enum variant or a struct field `item` inside an `impl`, `trait`,
//!   `enum` or `struct` block of `Type`. Names that belong to Rust's standard library, asyncio or tokio
//!   (the guide compares with them, chiefly in its last table) are listed
//!   in [`NOT_OURS`].
//!
//! * every file the guide or a README names by its path (`` `src/…` ``,
//!   `` `tests/…` ``, `` `examples/…` ``, `` `.ci/…` ``, in backticks) exists, so
//!   that moving a chapter into a folder cannot leave a reader looking for
//!   a file that is gone. A path with a `*` or an `NN` in it stands for a
//!   family of files and is not looked up.
//!
//! The check is textual and relies on rustfmt's layout (a block closes with
//! a `}` at the indentation of the line that opened it). It is meant to be
//! simple and to fail loudly, not to parse Rust.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Types the guide names that are not this crate's: the standard library's,
/// tokio's, asyncio's. A `Type::item` whose type is listed here is not
/// looked up in `src/`.
const NOT_OURS: &[&str] = &[
    // Rust's standard library.
    "Arc",
    "Box",
    "Duration",
    "Future",
    "Instant",
    "Pin",
    "Waker",
    "Shutdown",
    "UnixStream",
    // tokio (the guide's comparison table).
    "Builder",
    "JoinSet",
    "Runtime",
    "AsyncBufReadExt",
    "AsyncReadExt",
    "AsyncWriteExt",
];

/// Names of tokio's that share a type name with ours (tokio's `Handle` is
/// its runtime's handle, ours the event loop's): the guide's last table
/// names them in its tokio column.
const TOKIO_ITEMS: &[&str] = &[
    "Handle::current",
    "Handle::try_current",
    "Handle::spawn",
    "Handle::spawn_blocking",
];

/// First path segments that mark a path as someone else's
/// (`tokio::time::Instant::now`, `std::pin::pin`).
const FOREIGN_ROOTS: &[&str] = &[
    "std", "core", "alloc", "tokio", "runtime", "futures", "asyncio",
];

/// Names the guide still uses for code that has a different name now,
/// each to be fixed in the guide (then removed from here). The test fails
/// if a name listed here exists in `src/`, or is no longer in the guide,
/// so the list cannot go stale: it only ever shrinks.
const KNOWN_STALE: &[&str] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn guide() -> String {
    fs::read_to_string(root().join("CHAPTERS.md")).expect("CHAPTERS.md is readable")
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The chapter number of a `src/` entry named `chNN_…` (file or folder).
fn chapter_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("ch")?.get(..2)?;
    name.get(2..)?.chars().nth(2).filter(|&c| c == '_')?;
    digits.parse().ok()
}

/// `(N, the module's title line)` for every chapter module in `src/`.
fn module_titles() -> Vec<(u32, String)> {
    let mut titles = Vec::new();
    for entry in fs::read_dir(root().join("src")).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(number) = chapter_number(&name) else {
            continue;
        };
        let file = if path.is_dir() {
            path.join("mod.rs")
        } else {
            path.clone()
        };
        let text = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let first = text.lines().next().unwrap_or_default().to_owned();
        titles.push((number, first));
    }
    titles.sort();
    titles
}

#[test]
fn every_chapter_module_has_the_title_of_its_section_in_the_guide() {
    let guide = guide();
    let headings: Vec<&str> = guide
        .lines()
        .filter(|line| line.starts_with("## Chapter "))
        .collect();
    let titles = module_titles();
    assert!(
        titles.len() >= 10,
        "found only {} chapter modules",
        titles.len()
    );
    let mut wrong = Vec::new();
    for (number, first_line) in &titles {
        let prefix = format!("//! # Chapter {number} — ");
        let Some(title) = first_line.strip_prefix(&prefix) else {
            wrong.push(format!(
                "chapter {number}: the module's first line should start `{prefix}`, it is `{first_line}`"
            ));
            continue;
        };
        let heading = format!("## Chapter {number} — {title}");
        if !headings.contains(&heading.as_str()) {
            let guide_has = headings
                .iter()
                .find(|h| h.starts_with(&format!("## Chapter {number} ")))
                .copied()
                .unwrap_or("(no heading)");
            wrong.push(format!(
                "chapter {number}: the module says `{title}`, the guide says `{guide_has}`"
            ));
        }
    }
    for heading in &headings {
        let number: u32 = heading["## Chapter ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a chapter heading without a number: `{heading}`"));
        if !titles.iter().any(|(n, _)| *n == number) {
            wrong.push(format!(
                "the guide has `{heading}` but src/ has no chapter {number} module"
            ));
        }
    }
    assert!(wrong.is_empty(), "titles disagree:\n{}", wrong.join("\n"));
}

/// The guide without its fenced code blocks.
fn running_text(guide: &str) -> String {
    let mut text = String::new();
    let mut in_fence = false;
    for line in guide.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// `pub `, `pub(crate) `, `pub(super) `, `pub(in a::b) ` taken off the front.
fn strip_visibility(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix("pub(") {
        return rest
            .split_once(')')
            .map_or(text, |(_, after)| after.trim_start());
    }
    text.strip_prefix("pub ").unwrap_or(text)
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A name the guide uses: `path::Type::item`, with the path's first
/// segment (if any) kept to tell someone else's paths from ours.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Named {
    root: Option<String>,
    ty: String,
    item: String,
}

impl Named {
    fn shown(&self) -> String {
        format!("{}::{}", self.ty, self.item)
    }
}

/// Every `Type::item` inside one inline code span.
fn names_in_span(span: &str) -> Vec<Named> {
    let chars: Vec<char> = span.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i + 1 < chars.len() {
        if !(chars[i] == ':' && chars[i + 1] == ':') {
            i += 1;
            continue;
        }
        // The item after `::`.
        let after: String = chars[i + 2..]
            .iter()
            .take_while(|&&c| is_ident_char(c))
            .collect();
        // The type before `::`, skipping one level of `<…>` generics.
        let mut end = i;
        if end > 0 && chars[end - 1] == '>' {
            let mut depth = 0;
            while end > 0 {
                end -= 1;
                match chars[end] {
                    '>' => depth += 1,
                    '<' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut start = end;
        while start > 0 && is_ident_char(chars[start - 1]) {
            start -= 1;
        }
        let ty: String = chars[start..end].iter().collect();
        // The path's first segment, walking back over `a::b::`.
        let mut root = None;
        let mut back = start;
        while back >= 2 && chars[back - 1] == ':' && chars[back - 2] == ':' {
            let seg_end = back - 2;
            let mut seg_start = seg_end;
            while seg_start > 0 && is_ident_char(chars[seg_start - 1]) {
                seg_start -= 1;
            }
            root = Some(chars[seg_start..seg_end].iter().collect::<String>());
            back = seg_start;
        }
        if ty.starts_with(|c: char| c.is_ascii_uppercase()) && !after.is_empty() {
            names.push(Named {
                root,
                ty,
                item: after,
            });
        }
        i += 2;
    }
    names
}

/// Every `Type::item` the guide's running text names.
fn guide_names() -> BTreeSet<Named> {
    let text = running_text(&guide());
    let mut names = BTreeSet::new();
    for (n, piece) in text.split('`').enumerate() {
        // Odd pieces are inside backticks (a code span never holds one).
        if n % 2 == 1 && !piece.contains('\n') {
            names.extend(names_in_span(piece));
        }
    }
    names
}

/// One block of source that can hold a type's items: its header (the
/// lines up to the opening brace) and its body.
struct Block {
    header: String,
    body: Vec<String>,
}

/// Every `impl`, `trait`, `enum` and `struct` block in `src/`.
fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    for file in rust_files(&root().join("src")) {
        let text = fs::read_to_string(&file).expect("a source file is readable");
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let trimmed = line.trim_start();
            let item = strip_visibility(trimmed);
            let opens = ["impl ", "impl<", "trait ", "enum ", "struct "]
                .iter()
                .any(|start| item.starts_with(start));
            if !opens {
                i += 1;
                continue;
            }
            let indent = &line[..line.len() - trimmed.len()];
            // The header runs to the line that opens the block.
            let mut header = String::new();
            let mut j = i;
            while j < lines.len() {
                header.push_str(lines[j].trim());
                header.push(' ');
                if lines[j].trim_end().ends_with('{') || lines[j].trim_end().ends_with(';') {
                    break;
                }
                j += 1;
            }
            if header.trim_end().ends_with(';') || header.trim_end().ends_with("{}") {
                i = j + 1;
                continue;
            }
            let close = format!("{indent}}}");
            let mut body = Vec::new();
            let mut k = j + 1;
            while k < lines.len() && lines[k].trim_end() != close {
                body.push(lines[k].to_owned());
                k += 1;
            }
            blocks.push(Block { header, body });
            i = j + 1;
        }
    }
    blocks
}

/// The type a block's header is about: `impl<…> Trait for Type<…>` and
/// `impl<…> Type<…>` give `Type`; `trait Type` and `enum Type` give `Type`.
fn header_type(header: &str) -> Option<String> {
    let head = header.split(" where ").next().unwrap_or(header);
    let head = head.trim_end().trim_end_matches('{').trim_end();
    let subject = if let Some(rest) = head.strip_prefix("impl") {
        // Skip the impl's own generics, then take what follows ` for `.
        let rest = skip_generics(rest.trim_start());
        match rest.rsplit_once(" for ") {
            Some((_, ty)) => ty.trim().to_owned(),
            None => rest.trim().to_owned(),
        }
    } else {
        let rest = strip_visibility(head);
        let rest = rest
            .strip_prefix("trait ")
            .or_else(|| rest.strip_prefix("enum "))
            .or_else(|| rest.strip_prefix("struct "))?;
        rest.to_owned()
    };
    // `crate::a::Type<T>` → `Type`.
    let base = subject.split('<').next()?.trim();
    let name = base.rsplit("::").next()?.trim().trim_start_matches('&');
    Some(name.split(':').next()?.trim().to_owned())
}

/// `<…> rest` → `rest` (nested angle brackets allowed).
fn skip_generics(text: &str) -> &str {
    if !text.starts_with('<') {
        return text;
    }
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return &text[at + 1..];
                }
            }
            _ => {}
        }
    }
    text
}

/// Whether a block body defines `item`: a function, a constant, an
/// associated type, a field (in a struct), or (for a capitalised item, in
/// an enum) a variant.
fn defines(body: &[String], item: &str) -> bool {
    let names_item = |rest: &str| {
        rest.strip_prefix(item)
            .is_some_and(|after| !after.starts_with(is_ident_char))
    };
    body.iter().any(|line| {
        let mut t = strip_visibility(line.trim_start());
        for qualifier in ["const ", "async ", "unsafe "] {
            if let Some(rest) = t.strip_prefix(qualifier) {
                // `const fn` and `const NAME` both: only strip `const ` if a
                // `fn` follows, else keep it to read `const NAME` below.
                if qualifier != "const " || rest.starts_with("fn ") {
                    t = rest;
                }
            }
        }
        let declared = ["fn ", "const ", "type "]
            .iter()
            .any(|keyword| t.strip_prefix(keyword).is_some_and(names_item));
        let variant = item.starts_with(|c: char| c.is_ascii_uppercase()) && names_item(t);
        let field = t
            .strip_prefix(item)
            .is_some_and(|after| after.starts_with(':') && !after.starts_with("::"));
        declared || variant || field
    })
}

#[test]
fn every_type_and_item_the_guide_names_exists_in_the_source() {
    let names = guide_names();
    assert!(
        names.len() > 40,
        "found only {} names in the guide",
        names.len()
    );
    let blocks = blocks();
    let known_types: BTreeSet<String> = blocks
        .iter()
        .filter_map(|b| header_type(&b.header))
        .collect();
    let mut missing = Vec::new();
    let mut stale_but_present = Vec::new();
    for name in &names {
        let foreign = name
            .root
            .as_deref()
            .is_some_and(|root| FOREIGN_ROOTS.contains(&root));
        if foreign
            || NOT_OURS.contains(&name.ty.as_str())
            || TOKIO_ITEMS.contains(&name.shown().as_str())
        {
            continue;
        }
        let found = blocks.iter().any(|block| {
            header_type(&block.header).as_deref() == Some(name.ty.as_str())
                && defines(&block.body, &name.item)
        });
        let shown = name.shown();
        match (found, KNOWN_STALE.contains(&shown.as_str())) {
            (true, true) => stale_but_present.push(shown),
            (false, false) if known_types.contains(&name.ty) => {
                missing.push(format!("`{shown}`: `{}` has no item `{}`", name.ty, name.item))
            }
            (false, false) => missing.push(format!(
                "`{shown}`: no `impl`, `trait` or `enum` of `{}` in src/ (if it is not ours, add it to NOT_OURS)",
                name.ty
            )),
            _ => {}
        }
    }
    let named: BTreeSet<String> = names.iter().map(Named::shown).collect();
    let fixed: Vec<&str> = KNOWN_STALE
        .iter()
        .copied()
        .filter(|stale| !named.contains(*stale))
        .collect();
    assert!(
        fixed.is_empty(),
        "listed in KNOWN_STALE but the guide no longer names them (remove them from the list): {fixed:?}"
    );
    assert!(
        stale_but_present.is_empty(),
        "listed in KNOWN_STALE but present in src/ (remove them from the list): {stale_but_present:?}"
    );
    assert!(
        missing.is_empty(),
        "CHAPTERS.md names what src/ does not have:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_name_finder_reads_paths_generics_and_foreign_roots() {
    let found = names_in_span("JoinHandle::from_slot(slot, id) and Wheel<T>::insert");
    let shown: Vec<String> = found.iter().map(Named::shown).collect();
    assert_eq!(shown, ["JoinHandle::from_slot", "Wheel::insert"]);
    let tokio = names_in_span("tokio::time::Instant::now()");
    assert_eq!(tokio[0].root.as_deref(), Some("tokio"));
    assert_eq!(tokio[0].shown(), "Instant::now");
    assert!(
        names_in_span("ch04_timer::now()").is_empty(),
        "a module path is not a type"
    );
    assert_eq!(
        header_type("impl<F, T, E> Future for TryGather<F, T> where F: Future {").as_deref(),
        Some("TryGather")
    );
    assert_eq!(
        header_type("impl<W: ArcWake> VTable<W> {").as_deref(),
        Some("VTable")
    );
    assert_eq!(header_type("pub enum Place {").as_deref(), Some("Place"));
    assert!(defines(
        &["    pub fn insert(&mut self) {".into()],
        "insert"
    ));
    assert!(defines(&["    Due,".into()], "Due"));
    assert!(defines(&["    queue: Mutex<Queue>,".into()], "queue"));
    assert!(defines(&["    pub const fn new() -> Self {".into()], "new"));
    assert!(defines(&["    pub(super) fn push(&self) {".into()], "push"));
    assert_eq!(
        header_type("pub(super) enum Stage<F: Future> {").as_deref(),
        Some("Stage")
    );
    assert!(!defines(
        &["    pub fn insert_many(&mut self) {".into()],
        "insert"
    ));
}

/// The paths inside backticks in `text` that start with one of the
/// project's folders, a trailing `:line` or `/` taken off; families of
/// files (`src/chNN_*.rs`) are left out.
fn named_paths(text: &str) -> Vec<String> {
    const FOLDERS: &[&str] = &["src/", "tests/", "examples/", ".ci/"];
    let mut paths = Vec::new();
    // Split at backticks: the odd pieces are the code spans.
    for span in text.split('`').skip(1).step_by(2) {
        let Some(first) = span.split_whitespace().next() else {
            continue;
        };
        if !FOLDERS.iter().any(|folder| first.starts_with(folder)) {
            continue;
        }
        if first.contains('*') || first.contains("NN") {
            continue;
        }
        // `src/ch05_event_loop/` names a folder; `tests/x.rs:12` a line.
        let path = first.split(':').next().unwrap_or(first);
        paths.push(path.trim_end_matches('/').to_string());
    }
    paths
}

#[test]
fn every_file_the_guide_and_the_readmes_name_exists() {
    let mut missing = Vec::new();
    for doc in ["CHAPTERS.md", "README.md", "README.ko.md"] {
        let text = fs::read_to_string(root().join(doc))
            .unwrap_or_else(|e| panic!("cannot read {doc}: {e}"));
        for path in named_paths(&text) {
            if !root().join(&path).exists() {
                missing.push(format!("{doc} names `{path}`, which does not exist"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_path_finder_takes_files_and_folders_and_skips_families() {
    let found = named_paths(
        "see `src/ch06_join/cell.rs` and `src/ch05_event_loop/` and \
         `tests/guide.rs:12`, not `src/chNN_*.rs`, `cargo test` or `Stage::Future`",
    );
    assert_eq!(
        found,
        [
            "src/ch06_join/cell.rs",
            "src/ch05_event_loop",
            "tests/guide.rs"
        ]
    );
}

//! The import graph of the workspace's crates, drawn from the code (docs/book/src/layout.md
//! draws it): no file of `src/`, `envs/src/` or `agents/src/` imports, directly or through
//! others, a file that imports it; and the root crate's layers point one way, each using only
//! the layers below it.
//!
//! A file's imports are every module path it names: `use` trees (`use crate::run::{files,
//! log::RunLog}`), paths in the code (`crate::system::files::read_text(..)`), `super::` and a
//! parent's paths into its own child modules (`checkpoint::save` in `run/mod.rs`). A path
//! leads to the deepest module it names that is a file. Comments, strings and `#[cfg(test)]`
//! modules written inline are left out (a test may use anything).
//!
//! `cargo test --test layout -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The root crate's top-level modules, lowest layer first: each may use only those before it
/// (and itself). `lib.rs` declares them and is left out.
const ROOT_LAYERS: [&[&str]; 8] =
    [&["system"], &["config"], &["train"], &["plot"], &["run"], &["agent", "sweep"], &["commands"], &["cli"]];

/// A module path inside its crate (`["run", "checkpoint"]`; empty for the crate root).
type ModulePath = Vec<String>;

/// The crate rooted at `root` (its `src/`): every file's module path.
fn modules(root: &Path) -> BTreeMap<ModulePath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut module: ModulePath =
                relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                module.pop();
            }
            // Binary roots (`main.rs`, `src/bin/*.rs`) are not modules of the library.
            if path.file_name().is_some_and(|n| n == "main.rs") || relative.starts_with("bin") {
                continue;
            }
            out.insert(module, path);
        }
    }
    out
}

/// `text` without comments, string and character literals, and inline `#[cfg(test)]`
/// modules.
fn code_of(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|&c| c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body + rest[body..].find(&close).map_or(rest.len() - body, |end| end + close.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\'' && is_char_literal(rest) {
            let end = rest[1..].find('\'').unwrap() + 2;
            i += end;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    remove_test_modules(&out)
}

/// Whether `rest` (starting with `'`) opens a character literal rather than a lifetime.
fn is_char_literal(rest: &str) -> bool {
    let mut chars = rest[1..].chars();
    match chars.next() {
        Some('\\') => true,
        Some(_) => chars.next() == Some('\''),
        None => false,
    }
}

/// `code` without `#[cfg(test)] mod NAME { ... }` blocks.
fn remove_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let Some(open) = trimmed.starts_with("mod ").then(|| trimmed.find(['{', ';'])).flatten() else {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        };
        if trimmed.as_bytes()[open] == b';' {
            rest = &trimmed[open + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = trimmed.len();
        for (index, c) in trimmed[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + index + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &trimmed[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths of a `use` tree (`crate::run::{self, files, log::{A, B}}`), each as its
/// segments.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    fn parse(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let tree = tree.trim();
        // Split at the first top-level `{`.
        match tree.find('{') {
            None => {
                let mut path = prefix.to_vec();
                let head = tree.split(" as ").next().unwrap_or(tree);
                path.extend(head.split("::").map(str::trim).filter(|s| !s.is_empty() && *s != "*").map(str::to_owned));
                if path.last().is_some_and(|s| s == "self") {
                    path.pop();
                }
                out.push(path);
            }
            Some(open) => {
                let mut path = prefix.to_vec();
                path.extend(tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
                let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
                let mut depth = 0;
                let mut start = 0;
                for (index, c) in inner.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            parse(&inner[start..index], &path, out);
                            start = index + 1;
                        }
                        _ => {}
                    }
                }
                if !inner[start..].trim().is_empty() {
                    parse(&inner[start..], &path, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    parse(tree, &[], &mut out);
    out
}

/// Every module path `code` (of the module `me`) names, absolute in its crate, each with
/// the names it may continue with.
fn named_paths(code: &str, me: &ModulePath, children: &BTreeSet<String>) -> Vec<ModulePath> {
    let mut paths = Vec::new();
    let absolute = |segments: &[String]| -> Option<ModulePath> {
        let (first, rest) = segments.split_first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => me.clone(),
            "super" => {
                let mut base = me.clone();
                base.pop();
                base
            }
            name if children.contains(name) => {
                let mut base = me.clone();
                base.push(name.to_owned());
                base
            }
            _ => return None,
        };
        let mut rest = rest;
        while first == "super" && rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    };
    // `use` statements, whole trees; a re-export (`pub use`) is a name, not a use.
    let mut rest = code;
    let mut uses = Vec::new();
    // The code without its re-exports, for the paths in it.
    let mut without_reexports = String::new();
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        if before.ends_with("pub") || before.ends_with(')') && before.contains("pub(") {
            without_reexports.push_str(&rest[..at]);
        } else {
            uses.push(after[..end].to_owned());
            without_reexports.push_str(&rest[..at + 3 + end]);
        }
        rest = &after[end..];
    }
    without_reexports.push_str(rest);
    let code = without_reexports.as_str();
    for tree in &uses {
        for segments in expand_use_tree(tree) {
            if let Some(path) = absolute(&segments) {
                paths.push(path);
            }
        }
    }
    // Paths in the code: `crate::a::b`, `super::a`, `child::a`.
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut segments = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segments.push(chars[start..j].iter().collect::<String>());
                if j + 2 < chars.len() && chars[j] == ':' && chars[j + 1] == ':' && is_ident(chars[j + 2]) {
                    j += 2;
                } else {
                    break;
                }
            }
            if segments.len() > 1
                && let Some(path) = absolute(&segments)
            {
                paths.push(path);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    paths
}

/// The names `code` (of the module `me`) re-exports with `pub use`, each with the absolute
/// path it stands for.
fn reexported(code: &str, me: &ModulePath, children: &BTreeSet<String>) -> Vec<(String, ModulePath)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        if before.ends_with("pub") || before.ends_with(')') && before.contains("pub(") {
            for segments in expand_use_tree(&after[..end]) {
                let resolved = named_paths(&format!("use {};", segments.join("::")), me, children);
                if let (Some(target), Some(name)) = (resolved.into_iter().next(), segments.last()) {
                    out.push((name.clone(), target));
                }
            }
        }
        rest = &after[end..];
    }
    out
}

/// `named` with every re-exported name on its way replaced by what it stands for.
fn through_reexports(mut named: ModulePath, reexports: &BTreeMap<ModulePath, ModulePath>) -> ModulePath {
    for _ in 0..8 {
        let Some((len, target)) =
            (1..=named.len()).rev().find_map(|len| reexports.get(&named[..len]).map(|target| (len, target)))
        else {
            break;
        };
        named = target.iter().cloned().chain(named[len..].iter().cloned()).collect();
    }
    named
}

/// The byte offset of the first `word` in `text` standing alone.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let at = from + at;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if before.is_none_or(|c| !is_ident(c)) && after.is_some_and(|c| c.is_whitespace()) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The files' import graph of the crate at `root`: module → the modules it imports.
fn graph(root: &Path) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    let modules = modules(root);
    // What each module re-exports (`pub use a::b::C;`): its path `module::C` → `a::b::C`.
    let mut reexports: BTreeMap<ModulePath, ModulePath> = BTreeMap::new();
    for (module, path) in &modules {
        let code = code_of(&std::fs::read_to_string(path).unwrap());
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m.last().unwrap().clone())
            .collect();
        for (alias, target) in reexported(&code, module, &children) {
            let mut name = module.clone();
            name.push(alias);
            reexports.insert(name, target);
        }
    }
    let mut graph = BTreeMap::new();
    for (module, path) in &modules {
        let code = code_of(&std::fs::read_to_string(path).unwrap());
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m.last().unwrap().clone())
            .collect();
        let mut imports = BTreeSet::new();
        for named in named_paths(&code, module, &children) {
            let named = through_reexports(named, &reexports);
            // The deepest module named that is a file.
            let target = (0..=named.len()).rev().map(|len| named[..len].to_vec()).find(|m| modules.contains_key(m));
            if let Some(target) = target
                && &target != module
                && !target.is_empty()
            {
                imports.insert(target);
            }
        }
        graph.insert(module.clone(), imports);
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn circles(graph: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Vec<Vec<ModulePath>> {
    struct State<'g> {
        graph: &'g BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        index: BTreeMap<&'g ModulePath, usize>,
        low: BTreeMap<&'g ModulePath, usize>,
        stack: Vec<&'g ModulePath>,
        on_stack: BTreeSet<&'g ModulePath>,
        out: Vec<Vec<ModulePath>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g ModulePath) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        for target in state.graph.get(node).into_iter().flatten() {
            let Some((target, _)) = state.graph.get_key_value(target) else { continue };
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(top);
                component.push(top.clone());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.out
}

fn name(module: &ModulePath) -> String {
    if module.is_empty() { "(crate root)".to_owned() } else { module.join("::") }
}

fn crate_root(crate_dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(crate_dir)
}

fn print(label: &str, graph: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) {
    println!("{label}:");
    for (module, imports) in graph {
        let imports: Vec<String> = imports.iter().map(name).collect();
        println!("  {} -> {}", name(module), imports.join(", "));
    }
}

#[test]
fn no_file_imports_a_file_that_imports_it() {
    let mut found = Vec::new();
    for crate_dir in ["src", "envs/src", "agents/src"] {
        let graph = graph(&crate_root(crate_dir));
        print(crate_dir, &graph);
        for circle in circles(&graph) {
            let members: Vec<String> = circle.iter().map(name).collect();
            let edges: Vec<String> = circle
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| circle.contains(to))
                        .map(move |to| format!("{} -> {}", name(from), name(to)))
                })
                .collect();
            found.push(format!("{crate_dir}: {} ({})", members.join(", "), edges.join("; ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_root_crates_layers_point_one_way() {
    let graph = graph(&crate_root("src"));
    let layer = |module: &ModulePath| {
        let top = module.first()?;
        ROOT_LAYERS.iter().position(|layer| layer.contains(&top.as_str()))
    };
    let mut wrong = Vec::new();
    for (module, imports) in &graph {
        if module.is_empty() {
            continue;
        }
        let Some(from) = layer(module) else {
            wrong.push(format!("{} is in no layer of ROOT_LAYERS", name(module)));
            continue;
        };
        for target in imports {
            match layer(target) {
                Some(to) if to < from || (to == from && target.first() == module.first()) => {}
                _ => wrong.push(format!("{} uses {}", name(module), name(target))),
            }
        }
    }
    assert!(wrong.is_empty(), "against the layers {ROOT_LAYERS:?}:\n{}", wrong.join("\n"));
}

/// The reader itself, on a made-up file: a `use` tree, paths in code, `super::`, a child,
/// and what it must not read (comments, strings, an inline test module).
#[test]
fn the_reader_finds_what_a_file_names_and_nothing_else() {
    let code = code_of(
        r#"
        //! See [`crate::nowhere`].
        use crate::run::{self, files::write_atomically, log::{A, B as C}};
        use super::sibling;
        pub mod child;
        fn f() { crate::system::messages::say("crate::in_a_string"); child::g(); let c = 'x'; }
        fn lifetimes<'a>(x: &'a str) -> &'a str { x }
        #[cfg(test)]
        mod tests { use crate::tested_only; }
        "#,
    );
    let me = vec!["train".to_owned(), "agent".to_owned()];
    let children = BTreeSet::from(["child".to_owned()]);
    let found: BTreeSet<String> = named_paths(&code, &me, &children).iter().map(|p| p.join("::")).collect();
    let expected: BTreeSet<String> = [
        "run",
        "run::files::write_atomically",
        "run::log::A",
        "run::log::B",
        "train::sibling",
        "system::messages::say",
        "train::agent::child::g",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(found, expected);
}

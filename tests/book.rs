//! The README and the book (`docs/book/src`) are tested like code, so that a renamed flag,
//! option, file or heading fails here rather than in a reader's hands:
//! - every code block names its language (rustdoc would take an unnamed one for Rust);
//! - every `sfess-agent` command line of a `sh` block parses with the tool's own definition
//!   ([`Cli`]), and a `train` line's configuration and a `sweep` line's file check;
//! - the JSON and TOML blocks parse, with the tool's own readers for a run's configuration
//!   and a sweep file; the Python blocks parse;
//! - every file with Rust blocks is a doctest (`include_str!` in a crate root), and the
//!   README's example is `examples/custom_reward.rs`;
//! - every relative link leads to a file, and every `#anchor` to a heading of it;
//!   `SUMMARY.md` lists every chapter and the README links to each.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command as Process, Stdio};

use clap::Parser;
use serde_json::Value;
use sfess_agent::cli::{Cli, Command, with_env_options};
use sfess_agent::config::TrainConfig;
use sfess_agent::run::figures::SubsetFile;
use sfess_agent::sweep::spec::SweepSpec;
use sfess_envs::registry::Registry;

/// The book's chapters, relative to the repository.
const BOOK: &str = "docs/book/src";
/// The languages a block may name; all but `rust` are ignored by rustdoc.
const LANGUAGES: [&str; 6] = ["rust", "sh", "json", "toml", "text", "python"];
/// What a placeholder of a synopsis (`--steps N`, `--out DIR`) or a `$VAR` becomes.
const PLACEHOLDER: &str = "1";
/// How the samples name a checkout of sfess-agent (`PATH/TO/sfess-agent/envs`).
const CHECKOUT: &str = "PATH/TO/sfess-agent";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Markdown file: its path relative to the repository, and its text.
struct Doc {
    path: PathBuf,
    text: String,
}

/// The README and every Markdown file of the book.
fn docs() -> Vec<Doc> {
    let mut paths = vec![PathBuf::from("README.md")];
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(root().join(BOOK))
        .expect("the book's folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| Path::new(BOOK).join(path.file_name().unwrap()))
        .collect();
    chapters.sort();
    paths.extend(chapters);
    paths
        .into_iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(root().join(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Doc { path, text }
        })
        .collect()
}

/// A fenced code block.
struct Block {
    /// Where it opens: `README.md:41`.
    at: String,
    /// The first word of its info string (`rust` of `rust,no_run`).
    lang: String,
    /// The rest (`no_run`).
    attrs: Vec<String>,
    /// Its lines, without the fence's indentation, each with its line number.
    lines: Vec<(usize, String)>,
}

impl Block {
    fn body(&self) -> String {
        self.lines.iter().map(|(_, line)| format!("{line}\n")).collect()
    }
}

/// The fenced blocks of `doc`, and the lines outside them (the prose: headings, links).
fn parse(doc: &Doc) -> (Vec<Block>, Vec<(usize, String)>) {
    let (mut blocks, mut prose) = (Vec::new(), Vec::new());
    let mut open: Option<(usize, Block)> = None;
    for (index, line) in doc.text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match open.take() {
            None if trimmed.starts_with("```") => {
                let mut info = trimmed.trim_start_matches('`').split([',', ' ']).filter(|w| !w.is_empty());
                let lang = info.next().unwrap_or("").to_owned();
                let attrs = info.map(str::to_owned).collect();
                let at = format!("{}:{number}", doc.path.display());
                open = Some((indent, Block { at, lang, attrs, lines: Vec::new() }));
            }
            None => prose.push((number, line.to_owned())),
            Some((_, block)) if trimmed.starts_with("```") && trimmed.trim_end().chars().all(|c| c == '`') => {
                blocks.push(block);
            }
            Some((fence, mut block)) => {
                let cut = line.len() - line.trim_start_matches(' ').len();
                block.lines.push((number, line[cut.min(fence)..].to_owned()));
                open = Some((fence, block));
            }
        }
    }
    assert!(open.is_none(), "{}: a code block is never closed", doc.path.display());
    (blocks, prose)
}

/// Every block of every doc.
fn all_blocks() -> Vec<Block> {
    docs().iter().flat_map(|doc| parse(doc).0).collect()
}

#[test]
fn every_code_block_names_its_language() {
    let blocks = all_blocks();
    let unnamed: Vec<String> = blocks
        .iter()
        .filter(|b| !LANGUAGES.contains(&b.lang.as_str()))
        .map(|b| format!("{}: ```{} (use one of {})", b.at, b.lang, LANGUAGES.join(", ")))
        .collect();
    assert!(unnamed.is_empty(), "code blocks without a known language:\n{}", unnamed.join("\n"));
    let mut counts = BTreeMap::new();
    for block in &blocks {
        *counts.entry(block.lang.as_str()).or_insert(0) += 1;
    }
    eprintln!("book: code blocks by language: {counts:?}");
}

// ---- shell ------------------------------------------------------------------------------

/// One word of a shell command line.
#[derive(Debug, Default)]
struct Word {
    text: String,
    /// Part of it was quoted or escaped: brackets and capitals in it are its own.
    quoted: bool,
    /// A placeholder or a variable was put in.
    substituted: bool,
}

/// A command of a `sh` block: its words, where it is, and whether a placeholder of a
/// synopsis was put in.
#[derive(Debug)]
struct ShellCommand {
    at: String,
    words: Vec<String>,
    substituted: bool,
}

/// The commands of one logical line, split as the shell splits them: quotes, escapes,
/// comments, `|`, `&&`, `;`, redirections. For synopses, an unquoted optional group's
/// brackets (`[--steps N]`) are dropped, `...` is dropped, and an unquoted placeholder in
/// capitals (`N`, `DIR`) or a `$VAR` becomes [`PLACEHOLDER`].
fn split_commands(line: &str) -> Vec<(Vec<String>, bool)> {
    fn variable(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
        if chars.peek() == Some(&'{') {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        } else {
            while chars.peek().is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                chars.next();
            }
        }
    }
    struct State {
        commands: Vec<(Vec<String>, bool)>,
        word: Option<Word>,
        redirect: bool,
    }
    impl State {
        fn word(&mut self) -> &mut Word {
            self.word.get_or_insert_with(Word::default)
        }
        fn finish(&mut self) {
            let Some(mut word) = self.word.take() else { return };
            if std::mem::take(&mut self.redirect) {
                return;
            }
            if !word.quoted {
                let text = word.text.strip_prefix('[').unwrap_or(&word.text);
                let text = text.strip_suffix(']').unwrap_or(text).to_owned();
                if text.is_empty() || text == "..." {
                    return;
                }
                let placeholder = text.starts_with(|c: char| c.is_ascii_uppercase())
                    && text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                word.text = if placeholder { PLACEHOLDER.to_owned() } else { text };
                word.substituted |= placeholder;
            }
            let command = self.commands.last_mut().unwrap();
            command.0.push(word.text);
            command.1 |= word.substituted;
        }
    }
    let mut state = State { commands: vec![(Vec::new(), false)], word: None, redirect: false };
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => state.finish(),
            '#' if state.word.is_none() => break,
            '\'' => {
                let word = state.word();
                word.quoted = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.text.push(c);
                }
            }
            '"' => {
                state.word().quoted = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(next) = chars.next() {
                                state.word().text.push(next);
                            }
                        }
                        '$' => {
                            variable(&mut chars);
                            let word = state.word();
                            word.text.push_str(PLACEHOLDER);
                            word.substituted = true;
                        }
                        c => state.word().text.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(next) = chars.next() {
                    let word = state.word();
                    word.quoted = true;
                    word.text.push(next);
                }
            }
            '$' => {
                variable(&mut chars);
                let word = state.word();
                word.text.push_str(PLACEHOLDER);
                word.substituted = true;
            }
            '|' | '&' | ';' => {
                state.finish();
                while chars.peek().is_some_and(|c| matches!(c, '|' | '&')) {
                    chars.next();
                }
                state.commands.push((Vec::new(), false));
            }
            '>' | '<' => {
                // `2>` names a file descriptor: drop it with the redirection's target.
                if state.word.as_ref().is_some_and(|w| !w.quoted && w.text.chars().all(|c| c.is_ascii_digit())) {
                    state.word = None;
                }
                state.finish();
                if chars.peek() == Some(&'&') {
                    chars.next();
                }
                state.redirect = true;
            }
            c => state.word().text.push(c),
        }
    }
    state.finish();
    state.commands.into_iter().filter(|(words, _)| !words.is_empty()).collect()
}

/// The commands of every `sh` block, line continuations (`\`) joined.
fn shell_commands() -> Vec<ShellCommand> {
    let mut commands = Vec::new();
    for block in all_blocks().into_iter().filter(|b| b.lang == "sh") {
        let file = block.at.split(':').next().unwrap().to_owned();
        let mut logical: Option<(usize, String)> = None;
        for (number, line) in &block.lines {
            let (start, mut text) = logical.take().unwrap_or((*number, String::new()));
            match line.trim_end().strip_suffix('\\') {
                Some(head) => {
                    text.push_str(head);
                    text.push(' ');
                    logical = Some((start, text));
                }
                None => {
                    text.push_str(line);
                    for (words, substituted) in split_commands(&text) {
                        commands.push(ShellCommand { at: format!("{file}:{start}"), words, substituted });
                    }
                }
            }
        }
        assert!(logical.is_none(), "{}: the block ends in a line continuation", block.at);
    }
    commands
}

/// The program a command runs, its environment assignments (`FOO=1 cmd`) skipped.
fn program(words: &[String]) -> Option<(&str, &[String])> {
    let start = words.iter().position(|w| {
        !w.split_once('=')
            .is_some_and(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    })?;
    Some((words[start].as_str(), &words[start + 1..]))
}

/// A path of the samples inside this repository (`PATH/TO/sfess-agent/scripts/env.sh` is
/// `scripts/env.sh`).
fn in_checkout(path: &str) -> PathBuf {
    let path = path.strip_prefix(CHECKOUT).map_or(path, |p| p.trim_start_matches('/'));
    root().join(path.trim_start_matches("./"))
}

#[test]
fn every_sfess_agent_command_line_parses() {
    let registry = Registry::shipped();
    let commands = shell_commands();
    let (mut failures, mut parsed, mut configs, mut sweeps, mut files) = (Vec::new(), 0, 0, 0, 0);
    for command in &commands {
        let Some((program, args)) = program(&command.words) else { continue };
        let name = program.rsplit('/').next().unwrap_or(program);
        let fail = |failures: &mut Vec<String>, why: String| {
            failures.push(format!("{}: {}\n    {why}", command.at, command.words.join(" ")));
        };
        // The files other commands name: a script of this repository, an example.
        if program.starts_with("./scripts/") || program.starts_with("scripts/") || program == "source" {
            let script = if program == "source" { args.first().map(String::as_str).unwrap_or("") } else { program };
            files += 1;
            if !in_checkout(script).is_file() {
                fail(&mut failures, format!("no file {script} in the repository"));
            }
        }
        if program == "cargo"
            && let Some(i) = args.iter().position(|a| a == "--example")
        {
            let example = args.get(i + 1).map_or("", String::as_str);
            files += 1;
            if !["examples", "envs/examples", "agents/examples"]
                .iter()
                .any(|dir| root().join(dir).join(format!("{example}.rs")).is_file())
            {
                fail(&mut failures, format!("no example {example}"));
            }
        }
        // sfess-agent itself, and a binary of yours with its command line (own_env).
        if name != "sfess-agent" && name != "own_env" {
            continue;
        }
        let argv = std::iter::once("sfess-agent".to_owned()).chain(args.iter().cloned());
        let cli = match Cli::try_parse_from(with_env_options(&registry, argv)) {
            Ok(cli) => cli,
            Err(error) => {
                fail(&mut failures, error.to_string().trim_end().replace('\n', "\n    "));
                continue;
            }
        };
        parsed += 1;
        // The scripts a reward command runs.
        for piece in args.iter().flat_map(|a| a.split([' ', '='])).filter(|p| p.ends_with(".py")) {
            files += 1;
            if !in_checkout(piece).is_file() {
                fail(&mut failures, format!("no file {piece} in the repository"));
            }
        }
        match &cli.command {
            // A new run of a shipped environment: its configuration checks as train checks it.
            Command::Train(train) if train.resume.is_none() && train.config.is_none() && name == "sfess-agent" => {
                configs += 1;
                if let Err(error) = train.resolve(cli.device, &registry).and_then(|c| c.check(&registry)) {
                    fail(&mut failures, format!("its configuration does not check: {error:#}"));
                }
            }
            Command::Sweep(sweep) if sweep.action.is_none() => {
                let file = sweep.file.as_ref().expect("clap requires the file");
                sweeps += 1;
                if let Err(error) =
                    SweepSpec::read(&root().join(file)).and_then(|spec| spec.combinations(&registry).map(drop))
                {
                    fail(&mut failures, format!("its sweep file does not check: {error:#}"));
                }
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "command lines of the README and the book that fail:\n{}", failures.join("\n"));
    let synopses = commands.iter().filter(|c| c.substituted).count();
    eprintln!(
        "book: {} shell commands; {parsed} sfess-agent command lines parsed ({synopses} with placeholders), \
         {configs} train configurations and {sweeps} sweep files checked, {files} files found",
        commands.len()
    );
    // A parser that found nothing would pass: the docs have dozens of command lines.
    assert!(parsed >= 30, "only {parsed} sfess-agent command lines found");
}

#[test]
fn shell_lines_split_as_the_shell_splits_them() {
    let owned = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        split_commands("./sfess-agent train --reward-cmd 'python3 examples/score.py' -k 10   # a comment"),
        [(owned(&["./sfess-agent", "train", "--reward-cmd", "python3 examples/score.py", "-k", "10"]), false)]
    );
    assert_eq!(
        split_commands("sfess-agent sweep status DIR [--wait] [--sbatch-arg=--constraint=h100 ...] | tail -1 > out"),
        [
            (owned(&["sfess-agent", "sweep", "status", "1", "--wait", "--sbatch-arg=--constraint=h100"]), true),
            (owned(&["tail", "-1"]), false),
        ]
    );
    assert_eq!(
        split_commands(r#"a "$HOME/x" '[1, 2]' && b 2>/dev/null"#),
        [(owned(&["a", "1/x", "[1, 2]"]), true), (owned(&["b"]), false)]
    );
}

// ---- JSON, TOML, Python -----------------------------------------------------------------

/// A sample's JSON with its elisions (`[3, 17, ...]`, `[...]`) taken out.
fn without_elisions(text: &str) -> String {
    [(", ...", ""), (",...", ""), ("[...]", "[]"), ("{...}", "{}")]
        .iter()
        .fold(text.to_owned(), |text, (from, to)| text.replace(from, to))
}

#[test]
fn json_and_toml_samples_parse_with_the_tools_own_readers() {
    let registry = Registry::shipped();
    let packages = packages();
    let mut failures = Vec::new();
    let (mut json, mut documents, mut configs, mut toml, mut sweeps, mut manifests) = (0, 0, 0, 0, 0, 0);
    let mut subsets = 0;
    for block in all_blocks() {
        let mut fail = |why: String| failures.push(format!("{}: {why}", block.at));
        match block.lang.as_str() {
            "json" => {
                json += 1;
                // JSON lines: one document or several.
                for value in serde_json::Deserializer::from_str(&without_elisions(&block.body())).into_iter::<Value>() {
                    documents += 1;
                    match value {
                        Err(error) => fail(format!("not JSON: {error}")),
                        // What `show` writes: subset.json, read with its own type.
                        Ok(value) if value.get("rows").is_some() && value.get("contextual").is_some() => {
                            subsets += 1;
                            if let Err(error) = serde_json::from_value::<SubsetFile>(value) {
                                fail(format!("not a subset.json: {error}"));
                            }
                        }
                        // A run's configuration (config.json, a --config file).
                        Ok(value) if value.get("env").is_some() => {
                            configs += 1;
                            if let Err(error) = TrainConfig::from_json(&value.to_string(), &registry)
                                .and_then(|config| config.check(&registry))
                            {
                                fail(format!("not a configuration that checks: {error:#}"));
                            }
                        }
                        Ok(_) => {}
                    }
                }
            }
            "toml" => {
                toml += 1;
                match toml::from_str::<Value>(&block.body()) {
                    Err(error) => fail(format!("not TOML: {error}")),
                    // A sweep file: read and every combination checked, as `sweep` does.
                    Ok(value) if value.get("grid").is_some() => {
                        sweeps += 1;
                        if let Err(error) =
                            SweepSpec::from_value(value).and_then(|spec| spec.combinations(&registry).map(drop))
                        {
                            fail(format!("not a sweep file that checks: {error:#}"));
                        }
                    }
                    // A manifest of your own crate: its sfess-* dependencies are this
                    // repository's packages, at their folders.
                    Ok(value) if value.get("dependencies").is_some() => {
                        manifests += 1;
                        for section in ["dependencies", "build-dependencies"] {
                            let Some(Value::Object(deps)) = value.get(section) else { continue };
                            for (name, spec) in deps.iter().filter(|(name, _)| name.starts_with("sfess-")) {
                                let folder = spec.get("path").and_then(Value::as_str).map(in_checkout);
                                if folder.as_ref().and_then(|f| packages.get(f)) != Some(name) {
                                    fail(format!("[{section}] {name}: no package of that name at {folder:?}"));
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                }
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "samples that do not parse:\n{}", failures.join("\n"));
    eprintln!(
        "book: {json} JSON blocks ({documents} documents, {configs} configurations, {subsets} subset files), \
         {toml} TOML blocks ({sweeps} sweep files, {manifests} manifests)"
    );
    assert!(configs >= 1 && subsets >= 1 && sweeps >= 1 && manifests >= 1);
}

/// This repository's packages: folder → name.
fn packages() -> BTreeMap<PathBuf, String> {
    ["", "agents", "envs", "link"]
        .iter()
        .map(|dir| {
            let folder = root().join(dir);
            let manifest: toml::Table =
                toml::from_str(&std::fs::read_to_string(folder.join("Cargo.toml")).unwrap()).unwrap();
            let name = manifest["package"]["name"].as_str().unwrap().to_owned();
            (folder.components().collect(), name)
        })
        .collect()
}

#[test]
fn python_samples_parse() {
    let blocks: Vec<Block> = all_blocks().into_iter().filter(|b| b.lang == "python").collect();
    for block in &blocks {
        let mut python = Process::new("python3")
            .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs (the reward commands' tests need it too)");
        python.stdin.take().unwrap().write_all(block.body().as_bytes()).unwrap();
        let output = python.wait_with_output().unwrap();
        assert!(output.status.success(), "{}: not Python: {}", block.at, String::from_utf8_lossy(&output.stderr));
    }
    eprintln!("book: {} Python blocks parsed", blocks.len());
}

// ---- Rust -------------------------------------------------------------------------------

/// The Markdown files that a crate root includes as doctests (`include_str!`).
fn doctest_files() -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    for lib in ["src/lib.rs", "envs/src/lib.rs", "link/src/lib.rs"] {
        let text = std::fs::read_to_string(root().join(lib)).unwrap();
        let dir = Path::new(lib).parent().unwrap();
        for (_, rest) in text.match_indices("include_str!(\"").map(|(i, m)| text.split_at(i + m.len())) {
            let path = &rest[..rest.find('"').unwrap()];
            files.insert(normalize(&dir.join(path)).expect("inside the repository"));
        }
    }
    files
}

#[test]
fn every_rust_sample_is_a_doctest() {
    let included = doctest_files();
    let mut failures = Vec::new();
    let mut samples = 0;
    for doc in docs() {
        let rust: Vec<Block> = parse(&doc).0.into_iter().filter(|b| b.lang == "rust").collect();
        samples += rust.len();
        if !rust.is_empty() && !included.contains(&doc.path) {
            failures.push(format!("{}: has Rust samples but no crate includes it as a doctest", doc.path.display()));
        }
        for block in &rust {
            // A sample that does not run says why, in a hidden line (`# // no_run: ...`).
            for attr in block.attrs.iter().filter(|a| *a == "no_run" || *a == "ignore") {
                if !block.body().contains(&format!("// {attr}: ")) {
                    failures.push(format!("{}: {attr} without a `# // {attr}: why` line", block.at));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("book: {samples} Rust samples in {} doctest files", included.len());
}

#[test]
fn the_readmes_example_is_custom_reward() {
    let readme = docs().into_iter().next().unwrap();
    let rust: Vec<Block> = parse(&readme).0.into_iter().filter(|b| b.lang == "rust").collect();
    assert_eq!(rust.len(), 1, "the README shows one program");
    let example = std::fs::read_to_string(root().join("examples/custom_reward.rs")).unwrap();
    let program: String =
        example.lines().skip_while(|line| line.starts_with("//!")).map(|line| format!("{line}\n")).collect();
    let shown = rust[0].body();
    if let Some((number, (a, b))) = shown.lines().zip(program.lines()).enumerate().find(|(_, (a, b))| a != b) {
        panic!(
            "{}: line {} of the program is\n    {a}\nwhere examples/custom_reward.rs has\n    {b}",
            rust[0].at,
            number + 1
        );
    }
    assert_eq!(shown, program, "the README's program is examples/custom_reward.rs without its //! lines");
}

// ---- links ------------------------------------------------------------------------------

/// `path` with its `.` and `..` resolved, relative to the repository; `None` outside it.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(part) => out.push(part),
            _ => return None,
        }
    }
    Some(out.iter().collect())
}

/// The targets of the links and images (Markdown, and HTML `src="..."`) of the prose lines:
/// `(line, target)`. Inline code (which may span lines within a paragraph) is not searched; a
/// link's text may be code.
fn links(prose: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut in_code = false;
    for (number, line) in prose {
        if line.trim().is_empty() {
            in_code = false;
            continue;
        }
        if line.trim_start().starts_with("<!--") {
            continue;
        }
        let mut visible = String::new();
        for (i, part) in line.split('`').enumerate() {
            in_code ^= i > 0;
            if !in_code {
                visible.push_str(part);
            }
        }
        let line = visible;
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                links.push((*number, rest[..end].to_owned()));
            }
        }
        // HTML images (<img src="...">), which the README uses to size its pictures.
        for (i, _) in line.match_indices("src=\"") {
            let rest = &line[i + 5..];
            if let Some(end) = rest.find('"') {
                links.push((*number, rest[..end].to_owned()));
            }
        }
    }
    links
}

/// The anchor of a heading, as GitHub and mdBook make it: lowercase, spaces to `-`,
/// punctuation other than `-` and `_` dropped.
fn slug(heading: &str) -> String {
    let text = heading;
    // A link in a heading keeps its text only; code keeps its text.
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('[') {
        plain.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(end)) if close < end => {
                plain.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                plain.push('[');
                rest = after;
            }
        }
    }
    plain.push_str(rest);
    let plain = plain.replace('`', "");
    plain
        .trim()
        .chars()
        .flat_map(|c| match c {
            ' ' => vec!['-'],
            c if c.is_alphanumeric() || c == '-' || c == '_' => c.to_lowercase().collect(),
            _ => vec![],
        })
        .collect()
}

/// The anchors of a Markdown file's headings; a repeated heading gets `-1`, `-2`, ...
fn anchors(prose: &[(usize, String)]) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in prose {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let slug = slug(line[hashes..].trim());
        let count = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(if *count == 0 { slug } else { format!("{slug}-{count}") });
        *count += 1;
    }
    anchors
}

#[test]
fn headings_make_githubs_anchors() {
    assert_eq!(slug("From any language: `--env cmd`"), "from-any-language---env-cmd");
    assert_eq!(slug("On a GPU (H100)"), "on-a-gpu-h100");
    assert_eq!(
        slug("Black boxes: SFESS + VR against random and classical selections"),
        "black-boxes-sfess--vr-against-random-and-classical-selections"
    );
    assert_eq!(slug("Accuracy (tests, `agents/tests/distribution/`)"), "accuracy-tests-agentstestsdistribution");
    let prose = [(1, "## Set-up".to_owned()), (2, "## Set-up".to_owned()), (3, "#no heading".to_owned())];
    assert_eq!(anchors(&prose), BTreeSet::from(["set-up".to_owned(), "set-up-1".to_owned()]));
}

#[test]
fn every_relative_link_resolves_to_a_file_and_a_heading() {
    let docs = docs();
    let mut anchors_of: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut anchors_in = |path: &Path| -> BTreeSet<String> {
        anchors_of
            .entry(path.to_owned())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(root().join(path)).unwrap_or_default();
                anchors(&parse(&Doc { path: path.to_owned(), text }).1)
            })
            .clone()
    };
    let mut failures = Vec::new();
    let (mut checked, mut with_anchor) = (0, 0);
    for doc in &docs {
        let (_, prose) = parse(doc);
        for (number, target) in links(&prose) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let at = format!("{}:{number}: ({target})", doc.path.display());
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                Some(doc.path.clone())
            } else {
                normalize(&doc.path.parent().unwrap().join(path))
            };
            let Some(file) = file else {
                failures.push(format!("{at} leads outside the repository"));
                continue;
            };
            if !root().join(&file).exists() {
                failures.push(format!("{at}: no file {}", file.display()));
                continue;
            }
            if !anchor.is_empty() {
                with_anchor += 1;
                if file.extension().is_none_or(|e| e != "md") {
                    failures.push(format!("{at}: an anchor into a file that is not Markdown"));
                } else if !anchors_in(&file).contains(anchor) {
                    failures.push(format!("{at}: {} has no heading #{anchor}", file.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "links that lead nowhere:\n{}", failures.join("\n"));
    eprintln!("book: {checked} relative links resolved, {with_anchor} of them to a heading");
    assert!(checked >= 50, "only {checked} links found");
}

#[test]
fn summary_lists_every_chapter_and_the_readme_links_to_each() {
    let docs = docs();
    let chapters: BTreeSet<PathBuf> =
        docs.iter().map(|d| d.path.clone()).filter(|p| p.starts_with(BOOK) && !p.ends_with("SUMMARY.md")).collect();
    let linked = |doc: &Doc| -> Vec<PathBuf> {
        links(&parse(doc).1)
            .into_iter()
            .filter(|(_, target)| !target.contains("://"))
            .filter_map(|(_, target)| {
                let path = target.split('#').next().unwrap().to_owned();
                normalize(&doc.path.parent().unwrap().join(path))
            })
            .collect()
    };
    let summary = docs.iter().find(|d| d.path.ends_with("SUMMARY.md")).expect("docs/book/src/SUMMARY.md");
    let listed = linked(summary);
    let listed_set: BTreeSet<PathBuf> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), listed_set.len(), "SUMMARY.md lists a chapter twice");
    let missing: Vec<_> = chapters.difference(&listed_set).collect();
    let extra: Vec<_> = listed_set.difference(&chapters).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not in SUMMARY.md: {missing:?}; in it but not a chapter: {extra:?}"
    );
    let readme: BTreeSet<PathBuf> = linked(&docs[0]).into_iter().collect();
    let unlinked: Vec<_> = chapters.difference(&readme).collect();
    assert!(unlinked.is_empty(), "chapters the README's table of contents does not link: {unlinked:?}");
    eprintln!("book: {} chapters, all in SUMMARY.md and the README", chapters.len());
}

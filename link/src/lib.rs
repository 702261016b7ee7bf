//! # sfess-link: libtorch programs that start on their own
//!
//! A program that links libtorch (through `tch`, `sfess-agent` or `sfess-envs`) needs
//! libtorch's `lib/` folder on the loader path, or it stops at start with
//! `libtorch_cpu.so: cannot open shared object file`. [`link_libtorch`], called from a
//! build script, writes that folder into the program as an rpath instead, so it starts
//! without `LD_LIBRARY_PATH`.
//!
//! Your crate's `build.rs` is `fn main() { sfess_link::link_libtorch() }`, whose body is
//!
//! ```
//! sfess_link::link_libtorch();
//! ```
//!
//! and its `Cargo.toml`:
//!
//! ```toml
//! [build-dependencies]
//! sfess-link = { path = "PATH/TO/sfess-agent/link" }
//! ```
//!
//! # Why a build script of yours
//! Cargo passes the link arguments a build script prints (`cargo:rustc-link-arg`) to the
//! programs of *that* package only, never to its dependents', so `sfess-agent`'s own rpath
//! cannot reach your binary; there is no manifest key or dependency setting that would carry
//! it. Only your package's build script can add it to your binaries, tests and examples.
//!
//! # Where the folder comes from
//! `torch-sys` (`links = "tch"`) tells the build scripts of its direct dependents where
//! libtorch's `lib/` folder is, as `DEP_TCH_LIBTORCH_LIB`. `sfess-agent`, `sfess-envs` and
//! `sfess-agents` pass it on the same way (`links = "sfess_agent"` and so on, read as
//! `DEP_SFESS_AGENT_LIBTORCH_LIB`), so depending on any one of them is enough: your crate
//! needs no `torch-sys` line of its own. Building still needs what `torch-sys` reads
//! (`source scripts/env.sh` of an `sfess-agent` checkout sets it).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::path::Path;

/// What `torch-sys` calls libtorch's `lib/` folder in its build-script metadata.
const TORCH_SYS: &str = "DEP_TCH_LIBTORCH_LIB";

/// Adds, to every binary, test and example of the package whose build script calls it:
/// - an rpath to libtorch's `lib/` folder, so that the program starts without
///   `LD_LIBRARY_PATH`;
/// - `libtorch_cuda` as a needed library when libtorch has it, although nothing references
///   it directly (the linker's default `--as-needed` would drop it, and CUDA would then
///   never be available at run time on a GPU machine; the program still runs without a
///   GPU).
///
/// A package with a `links` key also passes the folder on to its own dependents
/// (`DEP_<LINKS>_LIBTORCH_LIB`), as `sfess-agent`'s packages do.
///
/// It never fails the build: when no dependency tells where libtorch is (the package
/// depends directly on none of `torch-sys`, `sfess-agent`, `sfess-envs` and
/// `sfess-agents`), it prints a cargo warning saying so, and the programs will need
/// `LD_LIBRARY_PATH`.
pub fn link_libtorch() {
    print_plan(None);
}

/// As [`link_libtorch`], but of the package's binaries only those named in `bins` get
/// `libtorch_cuda` (its tests and examples all do; the package must have examples, and its
/// benchmarks get none, as cargo refuses the line for a kind of target it lacks): a binary that never calls
/// libtorch then needs no libtorch library at all, and starts without loading one (the
/// `sfess-agent` binary, beside its engine `sfess-agent-engine`).
pub fn link_libtorch_into_bins(bins: &[&str]) {
    print_plan(Some(bins));
}

fn print_plan(bins: Option<&[&str]>) {
    let links = std::env::var("CARGO_MANIFEST_LINKS").ok();
    let mut plan = Plan::new(std::env::vars(), links.as_deref(), |dir| dir.join("libtorch_cuda.so").exists());
    plan.bins = bins.map(|bins| bins.iter().map(|bin| (*bin).to_owned()).collect());
    for line in plan.directives() {
        println!("{line}");
    }
}

/// What [`link_libtorch`] tells cargo, worked out from the build script's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// The variable that named the folder, and the folder (`None`: no dependency said).
    found: Option<(String, String)>,
    /// The package's `links` key.
    links: Option<String>,
    /// Whether the folder holds `libtorch_cuda.so`.
    cuda: bool,
    /// The binaries that link `libtorch_cuda` (`None`: every target).
    bins: Option<Vec<String>>,
}

impl Plan {
    /// `torch-sys`'s own variable first, then any other `DEP_*_LIBTORCH_LIB` (in the order of
    /// their names), so that the choice does not depend on the environment's order.
    fn new(
        vars: impl IntoIterator<Item = (String, String)>,
        links: Option<&str>,
        has_cuda: impl Fn(&Path) -> bool,
    ) -> Self {
        let mut candidates: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, value)| name.starts_with("DEP_") && name.ends_with("_LIBTORCH_LIB") && !value.is_empty())
            .collect();
        candidates.sort_by(|a, b| (a.0 != TORCH_SYS, &a.0).cmp(&(b.0 != TORCH_SYS, &b.0)));
        let found = candidates.into_iter().next();
        let cuda = found.as_ref().is_some_and(|(_, dir)| has_cuda(Path::new(dir)));
        Self { found, links: links.map(str::to_owned), cuda, bins: None }
    }

    /// The build-script lines, in order.
    fn directives(&self) -> Vec<String> {
        // Rerun only when the folder changes (not at every edit of the package's sources).
        let mut lines = vec![format!("cargo:rerun-if-env-changed={TORCH_SYS}")];
        let Some((variable, dir)) = &self.found else {
            lines.push(
                "cargo:warning=sfess-link: no dependency says where libtorch is (depend on sfess-agent, sfess-envs \
                 or torch-sys); programs of this package will need libtorch's lib/ folder on LD_LIBRARY_PATH"
                    .to_owned(),
            );
            return lines;
        };
        if variable != TORCH_SYS {
            lines.push(format!("cargo:rerun-if-env-changed={variable}"));
        }
        lines.push(format!("cargo:rustc-link-arg=-Wl,-rpath,{dir}"));
        if self.cuda {
            const CUDA: &str = "-Wl,--no-as-needed,-ltorch_cuda,--as-needed";
            match &self.bins {
                None => lines.push(format!("cargo:rustc-link-arg={CUDA}")),
                Some(bins) => {
                    for targets in ["tests", "examples"] {
                        lines.push(format!("cargo:rustc-link-arg-{targets}={CUDA}"));
                    }
                    lines.extend(bins.iter().map(|bin| format!("cargo:rustc-link-arg-bin={bin}={CUDA}")));
                }
            }
        }
        if self.links.is_some() {
            lines.push(format!("cargo:libtorch_lib={dir}"));
        }
        lines
    }
}

/// The book's chapter on a crate of your own as a doctest: its `build.rs` sample compiles
/// and runs against this crate.
#[cfg(doctest)]
#[doc = include_str!("../../docs/book/src/own-crate.md")]
struct OwnCrateChapter;

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn torch_sys_folder_becomes_an_rpath_and_cuda_is_kept() {
        let env = vars(&[("DEP_TCH_LIBTORCH_LIB", "/t/lib"), ("PATH", "/bin")]);
        let plan = Plan::new(env, None, |dir| dir == Path::new("/t/lib"));
        assert_eq!(
            plan.directives(),
            [
                "cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB",
                "cargo:rustc-link-arg=-Wl,-rpath,/t/lib",
                "cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed",
            ]
        );
    }

    #[test]
    fn only_the_named_binaries_get_cuda() {
        let env = vars(&[("DEP_TCH_LIBTORCH_LIB", "/t/lib")]);
        let mut plan = Plan::new(env, None, |_| true);
        plan.bins = Some(vec!["engine".to_owned()]);
        let lines = plan.directives();
        let cuda = "-Wl,--no-as-needed,-ltorch_cuda,--as-needed";
        assert!(lines.contains(&format!("cargo:rustc-link-arg-bin=engine={cuda}")), "{lines:?}");
        assert!(lines.contains(&format!("cargo:rustc-link-arg-tests={cuda}")), "{lines:?}");
        assert!(!lines.contains(&format!("cargo:rustc-link-arg={cuda}")), "{lines:?}");
        assert!(lines.contains(&"cargo:rustc-link-arg=-Wl,-rpath,/t/lib".to_owned()), "{lines:?}");
    }

    #[test]
    fn a_dependent_of_sfess_agent_finds_the_folder_passed_on() {
        let env = vars(&[("DEP_SFESS_ENVS_LIBTORCH_LIB", "/b"), ("DEP_SFESS_AGENT_LIBTORCH_LIB", "/a")]);
        let plan = Plan::new(env, None, |_| false);
        assert_eq!(
            plan.directives(),
            [
                "cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB",
                "cargo:rerun-if-env-changed=DEP_SFESS_AGENT_LIBTORCH_LIB",
                "cargo:rustc-link-arg=-Wl,-rpath,/a",
            ]
        );
    }

    #[test]
    fn torch_sys_wins_and_a_package_with_links_passes_the_folder_on() {
        let env = vars(&[("DEP_AAA_LIBTORCH_LIB", "/other"), ("DEP_TCH_LIBTORCH_LIB", "/t")]);
        let plan = Plan::new(env, Some("sfess_agent"), |_| false);
        let lines = plan.directives();
        assert!(lines.contains(&"cargo:rustc-link-arg=-Wl,-rpath,/t".to_owned()), "{lines:?}");
        assert_eq!(lines.last().map(String::as_str), Some("cargo:libtorch_lib=/t"));
        assert!(!lines.iter().any(|l| l.contains("/other")), "{lines:?}");
    }

    #[test]
    fn without_a_folder_it_warns_and_links_nothing() {
        let plan = Plan::new(vars(&[("DEP_TCH_LIBTORCH_LIB", ""), ("HOME", "/root")]), Some("x"), |_| true);
        let lines = plan.directives();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].starts_with("cargo:warning=") && lines[1].contains("LD_LIBRARY_PATH"), "{lines:?}");
    }
}

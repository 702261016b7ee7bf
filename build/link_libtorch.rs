//! Build script shared by every package of the workspace that links libtorch
//! (`build = "../build/link_libtorch.rs"`): an rpath to libtorch's `lib/` folder and
//! `libtorch_cuda` for every binary, test and example of the package, and the folder
//! passed on to dependents (see `link/src/lib.rs`, the crate `sfess-link`, which a crate
//! of your own calls the same way).
//!
//! The one exception: the `sfess-agent` binary never calls libtorch (it starts
//! `sfess-agent-engine` for the commands that do: `src/cli/front.rs`), so it does not get
//! `libtorch_cuda`, and starts without loading libtorch.

fn main() {
    if std::env::var("CARGO_PKG_NAME").is_ok_and(|name| name == "sfess-agent") {
        sfess_link::link_libtorch_into_bins(&["sfess-agent-engine"]);
    } else {
        sfess_link::link_libtorch();
    }
}

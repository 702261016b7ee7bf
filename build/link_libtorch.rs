//! Build script shared by every package of the workspace that links libtorch
//! (`build = "../build/link_libtorch.rs"`): an rpath to libtorch's `lib/` folder and
//! `libtorch_cuda` for every binary, test and example of the package, and the folder
//! passed on to dependents (see `link/src/lib.rs`, the crate `sfess-link`, which a crate
//! of your own calls the same way).

fn main() {
    sfess_link::link_libtorch();
}

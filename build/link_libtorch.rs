//! Build script shared by every package of the workspace that links libtorch
//! (`build = "../build/link_libtorch.rs"`).
//!
//! `torch-sys` (`links = "tch"`) tells its direct dependents where libtorch's
//! `lib/` folder is, as `DEP_TCH_LIBTORCH_LIB`. From it we add, to every binary,
//! test and example of the package:
//! - an rpath, so that the program starts without `LD_LIBRARY_PATH`;
//! - `libtorch_cuda` as a needed library even though nothing references it
//!   directly (the linker's default `--as-needed` would drop it, and CUDA would
//!   then never be available at run time on a GPU machine).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

//! Build script shared by every crate that links libtorch into a binary or test.
//!
//! torch-sys finds libtorch but sets no rpath on final binaries; it exports the library directory to
//! the build scripts of crates that depend on it directly (`DEP_TCH_LIBTORCH_LIB`: torch-sys
//! declares `links = "tch"`). Embedding it as an rpath means `cargo test` and the `quantpipe`
//! binary run with no LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

//! Link flags of the release binary for the device (aarch64 musl, linked by rust-lld): no
//! unwind tables (see cross/no-unwind-tables.ld). Only for `[[bin]]` targets of the release
//! profile, whose panics abort (Cargo.toml: `panic = "abort"`; build scripts are not told the
//! profile's panic strategy, so that line and this one go together). Test harnesses unwind to
//! report a failed assertion and keep their tables: `rustc-link-arg-bins` does not reach them.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cross/no-unwind-tables.ld");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("TARGET") == "aarch64-unknown-linux-musl" && var("PROFILE") == "release" {
        let script = format!("{}/cross/no-unwind-tables.ld", var("CARGO_MANIFEST_DIR"));
        println!("cargo:rustc-link-arg-bins=--no-eh-frame-hdr");
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
}

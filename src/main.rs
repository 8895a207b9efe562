//! The `lookout` binary (also installed as `mender-monitorctl` and `mender-monitord`).

fn main() {
    std::process::exit(lookout::cli::main());
}

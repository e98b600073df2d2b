//! The `lookout` binary: a thin edge over the library.

fn main() -> std::process::ExitCode {
    lookout::cli::main()
}

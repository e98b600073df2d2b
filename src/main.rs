//! The `lookout` binary: a thin edge over the library.

fn main() -> std::process::ExitCode {
    // First of all: rustls has two providers compiled in (lookout's ring; aws-lc-rs through the
    // `irc` crate's tokio-rustls), so nothing may build a TLS config before one is chosen.
    lookout::http::install_crypto_provider();
    lookout::cli::main()
}

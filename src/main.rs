//! `troupe`: the server and its command-line client (see [`troupe::cli::commands`]).

fn main() -> std::process::ExitCode {
    troupe::cli::commands::main()
}

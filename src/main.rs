fn main() -> std::process::ExitCode {
    descent::cli::main()
}

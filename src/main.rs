fn main() -> std::process::ExitCode {
    jcsql::cli::main()
}

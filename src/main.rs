use clap::Parser;

fn main() {
    let cli = tokenledger::cli::Cli::parse();
    match tokenledger::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(tokenledger::exit::FAILURE);
        }
    }
}

//! The `pushback` binary: parses flags, sets up logging and hands over to `pushback::app`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "pushback", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score the classifier and the deadline extractor on a labelled folder (labels.csv, deadlines.csv)
    Eval {
        dir: PathBuf,
        /// Rules file to use instead of the built-in default
        #[arg(long)]
        rules: Option<PathBuf>,
        /// One JSON object with every figure instead of the table
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval { dir, rules, json } => {
            pushback::app::eval::run(&dir, rules.as_deref(), json)
        }
    }
}

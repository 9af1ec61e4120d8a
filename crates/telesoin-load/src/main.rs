//! `telesoin-load`: the load generator of telesoin (see BENCHMARKS.md, and `bench/run` which
//! starts the servers and calls `telesoin-load run`).
//!
//! `run` makes the sessions through `/api/v1`, spreads the pairs over worker processes (each its
//! own 127.0.0.x source address, its open-files limit raised), joins them at a fixed rate, relays
//! timestamped messages at a fixed total rate, alternating windows with a PeerJS server when one
//! is given, and reports latencies, the servers' memory per socket and CPU per message, and the
//! ratios. `worker` is the process `run` starts; it is not meant to be run by hand.

mod run;
mod setup;
mod stats;
mod tls;
mod worker;

use std::net::IpAddr;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "telesoin-load",
    version,
    about = "Load generator for telesoin (and PeerJS)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a benchmark and print its report.
    Run(run::RunArgs),
    /// One worker process (started by `run`; commands on standard input).
    #[command(hide = true)]
    Worker {
        #[arg(long, value_enum)]
        target: worker::Target,
        /// `ws://HOST:PORT` or `wss://HOST:PORT`.
        #[arg(long)]
        base: String,
        /// The server's address.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// The local address the sockets are bound to.
        #[arg(long)]
        source: IpAddr,
        #[arg(long, value_enum, default_value = "auto")]
        admit: worker::Admit,
        /// Where the patients connect, when not `base` (`ws://HOST:PORT` of another node).
        #[arg(long)]
        patient_base: Option<String>,
        #[arg(long)]
        patient_addr: Option<std::net::SocketAddr>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(run::run(args)),
        Cmd::Worker {
            target,
            base,
            addr,
            source,
            admit,
            patient_base,
            patient_addr,
        } => {
            // One thread per worker: several workers share the cores with the servers.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(worker::run(worker::Options {
                    target,
                    base,
                    addr,
                    source,
                    admit,
                    patient: patient_base.zip(patient_addr),
                }))
        }
    }
}

//! `cargo run --release -p stack`: the whole shop in one process.

use clap::Parser;

fn main() {
    let config = stack::Config::parse();
    bus_schema::runtime::main(stack::run(config, bus_schema::runtime::shutdown_signal()));
}

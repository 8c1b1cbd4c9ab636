//! `gateway`: the gateway on its own (the stack launcher runs it in-process).

use clap::Parser;

fn main() {
    let config = gateway::Config::parse();
    bus_schema::runtime::main(async move {
        let app = gateway::build(config).await?;
        app.run_until_stopped(bus_schema::runtime::shutdown_signal())
            .await
    });
}

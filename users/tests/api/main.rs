//! The users service through both doors, against a real nats-server and a real SQLite
//! file in a temp dir, in one test binary by feature: [`accounts`], [`verify`], [`bus`]
//! (the NATS door), [`doors`] (what the HTTP door refuses, health, the OpenAPI document)
//! and [`instances`] (several instances, and upgrades).

mod accounts;
mod bus;
mod doors;
mod helpers;
mod instances;
mod verify;

//! The auth service through both doors, with the real users service and a real
//! nats-server, in one test binary by feature: [`login`], [`verify`] (tokens checked),
//! [`keys`] (the published keys, rotation, logout), [`throttling`] and [`doors`] (bad
//! input, discovery, health, the OpenAPI document).

mod doors;
mod helpers;
mod keys;
mod login;
mod throttling;
mod verify;

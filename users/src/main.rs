//! `users`: the users service on its own (the stack launcher runs it in-process).

// The system allocator on purpose: users' memory is the argon2 workers' blocks, and
// mimalloc kept 30 MB more of it under a login storm (49.5 MB -> 77.9 MB peak).

fn main() {
    service_kit::runtime::serve(users::build);
}

//! `orders`: the orders service on its own (the stack launcher runs it in-process).

/// mimalloc: the request path allocates many small buffers, and glibc's malloc was
/// a sixth of the CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    service_kit::runtime::serve(orders::build);
}

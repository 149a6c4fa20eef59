//! The `vre` command: see `vre --help`.

/// A compact allocator for the simulator's many small JSON maps (glibc's
/// arenas left `vre sim serve` at 1,024 nodes near twice its live heap).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(vre::cli::main());
}

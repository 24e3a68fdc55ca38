//! `ofctl`: ovs-ofctl for ferrovs.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(ofctl::ofctl::main_with_args(&args));
}

//! `vsctl`: configure ferrovs through its OVSDB, with ovs-vsctl's vocabulary.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(ofctl::vsctl::main_with_args(&args));
}

fn main() {
    std::process::exit(shipit::run(std::env::args_os()));
}

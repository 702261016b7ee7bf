fn main() {
    sfess_link::link_libtorch();
}

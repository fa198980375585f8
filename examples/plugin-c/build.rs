fn main() {
    cc::Build::new().file("csrc/native.c").compile("native");
    println!("cargo:rerun-if-changed=csrc/native.c");
}

//! A plugin whose work is done by C code compiled through the `cc` crate.

use std::ffi::c_int;

extern "C" {
    fn native_flags() -> c_int;
}

#[no_mangle]
pub extern "C" fn plugin_entry() -> c_int {
    // SAFETY: native_flags takes no arguments and only uses its own file descriptor.
    unsafe { native_flags() }
}
